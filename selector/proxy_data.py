"""Token data for proxy models: documents drawn from groups by weights, packed into blocks.

A proxy run trains on ``tokens`` tokens drawn from groups in the proportions of a mixture.
Two things keep comparisons between mixtures low-noise (measured here):

- **fixed per-group quotas** (stratified): group g gets ``round(w_g * tokens)`` tokens,
  never a multinomial draw of documents, so two runs of one mixture differ only in which
  documents fill each quota;
- **common random numbers**: the documents of a group are visited in one order fixed by
  ``(seed, group)``, independent of the weights, so two mixtures with the same seed share
  their first documents per group and differ only in how far down each group they read.

A group whose quota exceeds its tokens is repeated (epochs > 1), which the search caps.

Example::

    pool = TokenPool.from_docs(ids_per_doc, groups_per_doc, eos_id=0)
    stream = pool.draw({"wiki": 0.7, "code": 0.3}, tokens=30_000, seed=1)
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from assay.errors import AssayError, ConfigError


@dataclass
class EvalSet:
    """A target validation set, tokenised: one EOS-separated stream."""

    stream: np.ndarray
    """Token ids (int64), documents joined by EOS."""
    n_text_tokens: int
    """Tokens of text (without EOS); with ``n_bytes`` it converts loss to bits per byte."""
    n_bytes: int
    """UTF-8 bytes of the target documents."""
    n_docs: int


def join_docs(docs: Sequence[Sequence[int]], eos_id: int) -> np.ndarray:
    """Concatenate token lists, each followed by EOS, into one int64 stream."""
    total = sum(len(d) + 1 for d in docs)
    out = np.empty(total, dtype=np.int64)
    pos = 0
    for d in docs:
        n = len(d)
        out[pos : pos + n] = d
        out[pos + n] = eos_id
        pos += n + 1
    return out


def make_eval_set(texts: Sequence[str], ids: Sequence[Sequence[int]], eos_id: int) -> EvalSet:
    if not texts:
        raise AssayError("a target validation set is empty")
    return EvalSet(
        stream=join_docs(ids, eos_id),
        n_text_tokens=sum(len(d) for d in ids),
        n_bytes=sum(len(t.encode("utf-8")) for t in texts),
        n_docs=len(texts),
    )


def pack_blocks(stream: np.ndarray, seq_len: int) -> np.ndarray:
    """Cut a stream into ``[n, seq_len]`` blocks; the partial tail is dropped."""
    n = len(stream) // seq_len
    if n == 0:
        raise AssayError(
            f"only {len(stream)} tokens to train on, fewer than one block of {seq_len}",
            hint="give the proxy more text or a smaller --seq-len",
        )
    return stream[: n * seq_len].reshape(n, seq_len)


def eval_blocks(stream: np.ndarray, seq_len: int) -> list[np.ndarray]:
    """Full blocks plus the tail (if it predicts anything): every target token is scored."""
    n = len(stream) // seq_len
    blocks = [stream[i * seq_len : (i + 1) * seq_len] for i in range(n)]
    if len(stream) - n * seq_len >= 2:
        blocks.append(stream[n * seq_len :])
    return blocks


def _group_seed(seed: int, group: str) -> int:
    """A per-group RNG seed from (seed, group name): independent of the group's weight."""
    digest = hashlib.sha256(f"{seed}\0{group}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


@dataclass
class TokenPool:
    """Tokenised documents by group; draws mixture samples from them."""

    docs: dict[str, list[np.ndarray]]
    """Token ids per document, per group (documents without EOS)."""
    eos_id: int
    tokens: dict[str, int] = field(init=False)
    """Tokens per group (text tokens + one EOS per document)."""

    def __post_init__(self) -> None:
        self.tokens = {g: int(sum(len(d) + 1 for d in ds)) for g, ds in self.docs.items()}

    @classmethod
    def from_docs(
        cls, ids: Sequence[Sequence[int]], groups: Sequence[str], eos_id: int
    ) -> TokenPool:
        docs: dict[str, list[np.ndarray]] = {}
        for d, g in zip(ids, groups, strict=True):
            docs.setdefault(g, []).append(np.asarray(d, dtype=np.int64))
        return cls(docs, eos_id)

    @property
    def names(self) -> list[str]:
        return sorted(self.docs)

    def quotas(self, weights: Mapping[str, float], tokens: int) -> dict[str, int]:
        """Tokens per group: largest-remainder rounding of ``w * tokens`` (sums to tokens)."""
        unknown = set(weights) - set(self.docs)
        if unknown:
            raise AssayError(f"mixture names groups not in the pool: {sorted(unknown)}")
        names = [g for g in self.names if weights.get(g, 0.0) > 0]
        raw = np.array([weights[g] for g in names], dtype=np.float64)
        raw = raw / raw.sum() * tokens
        base = np.floor(raw).astype(np.int64)
        order = np.argsort(-(raw - base), kind="stable")
        base[order[: tokens - int(base.sum())]] += 1
        return dict(zip(names, base.tolist(), strict=True))

    def draw(self, weights: Mapping[str, float], tokens: int, seed: int) -> np.ndarray:
        """A token stream of exactly ``tokens`` tokens with fixed per-group quotas.

        Each group's documents are read in an order fixed by ``(seed, group)`` (repeating
        with a fresh order after each pass), whole documents until the quota is met, the
        last one cut. The group pieces are then interleaved at document granularity in an
        order fixed by ``seed``, so no block is all one group by construction.
        """
        pieces: list[np.ndarray] = []
        for g, quota in self.quotas(weights, tokens).items():
            rng = np.random.default_rng(_group_seed(seed, g))
            docs = self.docs[g]
            left = quota
            while left > 0:
                for i in rng.permutation(len(docs)):
                    doc = np.append(docs[i], self.eos_id)
                    pieces.append(doc[:left])
                    left -= len(pieces[-1])
                    if left <= 0:
                        break
        order = np.random.default_rng(seed).permutation(len(pieces))
        stream = np.concatenate([pieces[i] for i in order]) if pieces else np.zeros(0, np.int64)
        assert len(stream) == tokens, (len(stream), tokens)
        return stream


@dataclass
class GroupedDocs:
    """The search pool: documents with their group, read from a corpus or an artifact."""

    texts: list[str]
    ids: list[str]
    groups: list[str]
    n_tokens: list[int] | None
    """Per-document ``n_tokens`` when the input has that column (annotated corpora)."""
    provenance: dict = field(default_factory=dict)
    """What was read: path, kind, manifest hash, rows dropped for a missing group."""


def _group_key(value: object) -> str | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _from_tables(
    rows: list[dict], group_by: str, text_field: str, id_field: str, where: str
) -> tuple[GroupedDocs, int]:
    texts, ids, groups, toks = [], [], [], []
    missing = 0
    has_tokens = bool(rows) and "n_tokens" in rows[0]
    for row in rows:
        g = _group_key(row.get(group_by))
        if g is None:
            missing += 1
            continue
        texts.append(row[text_field])
        ids.append(str(row[id_field]))
        groups.append(g)
        if has_tokens:
            toks.append(int(row.get("n_tokens") or 0))
    if not texts:
        raise AssayError(f"{where}: no document has a value in --group-by column {group_by!r}")
    return GroupedDocs(texts, ids, groups, toks if has_tokens else None), missing


def _read(pq: Any, path: Path, columns: tuple[str, ...]) -> list[dict]:
    """Rows of a shard with only the columns the search needs (not every score column)."""
    names = pq.read_schema(path).names
    return pq.read_table(
        path, columns=[c for c in dict.fromkeys(columns) if c in names]
    ).to_pylist()


def load_groups(
    source: str | os.PathLike,
    group_by: str,
    *,
    text_field: str = "text",
    id_field: str = "id",
    annotated: str | os.PathLike | None = None,
    keep_pruned: bool = False,
) -> GroupedDocs:
    """Documents and their group from a clusters folder, an annotated folder or a corpus.

    - clusters folder (``assay cluster -o``): ``group_by`` is one of its columns
      (``cluster``, ``cluster.topic``) or of the annotated folder it was made from (found
      in its manifest, or ``annotated``); clusters pruned for quality are left out unless
      ``keep_pruned``, as CLIMB does;
    - annotated folder (``assay annotate -o``): any column, e.g. ``domain`` or
      ``<rater>.domain``;
    - corpus files (JSONL, Parquet, ...): any field, e.g. the demo corpus's ``domain``.

    Rows without a group value are not used; their count is in ``provenance``.
    """
    import pyarrow.parquet as pq

    from assay import manifest as mf
    from assay.corpus import read_documents
    from assay.records import Fields

    path = Path(source)
    kind = None
    if path.is_dir() and (path / mf.MANIFEST).exists():
        kind = mf.read_manifest(path).get("kind")
    prov: dict = {"path": str(path.resolve()), "kind": kind or "corpus", "group_by": group_by}
    if kind == "clusters":
        from clustering.aligned import annotation_shards, check_aligned

        cm = mf.read_manifest(path, kind="clusters")
        ann = Path(annotated or cm["annotations"]["path"])
        check_aligned(annotation_shards(ann, id_field), cm["shards"], what="clusters", folder=path)
        am = mf.read_manifest(ann, kind="annotations")
        rows: list[dict] = []
        pruned = 0
        for name in am["shards"]:
            a = _read(pq, ann / name, (text_field, id_field, "n_tokens", group_by))
            c = pq.read_table(path / name).to_pylist()
            for ra, rc in zip(a, c, strict=True):
                if rc.get("cluster.pruned") and not keep_pruned:
                    pruned += 1
                    continue
                rows.append({**ra, **{k: v for k, v in rc.items() if k != "id"}})
        if rows and group_by not in rows[0]:
            raise ConfigError(
                f"--group-by {group_by!r} is not a column of {path} or {ann}",
                hint="use cluster, cluster.topic or an annotation column",
            )
        prov.update(
            annotations=str(ann.resolve()),
            pruned_rows=pruned,
            manifest_sha256=mf.sha256_of(path / mf.MANIFEST),
        )
    elif kind == "annotations":
        am = mf.read_manifest(path, kind="annotations")
        want = (text_field, id_field, "n_tokens", group_by)
        rows = [r for name in am["shards"] for r in _read(pq, path / name, want)]
        if rows and group_by not in rows[0]:
            raise ConfigError(
                f"--group-by {group_by!r} is not a column of {path}",
                hint="columns: " + ", ".join(pq.read_schema(path / am["shards"][0]).names),
            )
        prov["manifest_sha256"] = mf.sha256_of(path / mf.MANIFEST)
    elif kind is not None:
        raise AssayError(
            f"{path} holds a {kind!r} artifact; give a clusters or annotated "
            "folder, or corpus files"
        )
    else:
        rows = list(read_documents([source], Fields(text=text_field, id=id_field)))
        if rows and not any(group_by in r for r in rows[:100]):
            raise ConfigError(f"--group-by {group_by!r} is not a field of {path}")
    docs, missing = _from_tables(rows, group_by, text_field, id_field, str(path))
    prov["rows_without_group"] = missing
    docs.provenance = prov
    return docs


def target_name(path: str | os.PathLike) -> str:
    """``val/wiki.jsonl.gz`` -> ``wiki``."""
    name = Path(path).name
    for suffix in (".gz", ".zst", ".zstd", ".jsonl", ".ndjson", ".json", ".parquet"):
        name = name.removesuffix(suffix)
    return name or "target"


def load_targets(
    paths: Sequence[str | os.PathLike], *, text_field: str = "text", id_field: str = "id"
) -> dict[str, tuple[list[str], list[str]]]:
    """Target name -> (texts, ids) for each ``--target`` corpus."""
    from assay.corpus import read_documents
    from assay.records import Fields, doc_id

    out: dict[str, tuple[list[str], list[str]]] = {}
    for p in paths:
        name = target_name(p)
        if name in out:
            raise ConfigError(f"two --target sets are both named {name!r}; rename one file")
        docs = list(read_documents([p], Fields(text=text_field, id=id_field)))
        if not docs:
            raise AssayError(f"--target {p} holds no documents")
        texts = [d[text_field] for d in docs]
        ids = [str(d.get(id_field) or doc_id(d[text_field])) for d in docs]
        out[name] = (texts, ids)
    return out
