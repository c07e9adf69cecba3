"""``assay embed``: sentence-transformers embeddings of an annotated corpus.

One ``part-NNNNN.npy`` (float16, ``[rows, dim]``) per annotation shard, row for row, and
a ``manifest.json`` of kind ``embeddings``. Why ``.npy`` and not Parquet: clustering reads
embeddings as matrices — a random training sample, then every row in chunks — and a
``.npy`` file is memory-mapped with no decode or copy, while a Parquet fixed-size-list
column must be decompressed and copied on each read (and float16 vectors barely compress).
The ids that tie rows to documents stay in the annotation shards; the manifest records a
digest of each shard's ids so that a mismatch is refused (see ``clustering.aligned``).

Each shard is written atomically (temp file + rename) once it is embedded; a killed run
rerun with the same command skips the committed shards.

What we add to ``SentenceTransformer.encode`` (which already sorts each call's texts by
length and pads per batch): a whole shard per call (so the sort spans the shard); a
character pre-cut of very long texts (the model reads at most ``max_seq_length`` tokens,
so tokenising a 200,000-character document only to drop all but its head is waste); and
bf16 weights on request (AMX / GPU). ``benchmarks/embed_throughput.py`` measures both.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from assay import manifest as mf
from assay.annotate import Progress
from assay.errors import AssayError, ConfigError, ManifestMismatchError
from assay.ray_engine import RayConfig
from clustering.aligned import (
    annotation_shards,
    committed_npy,
    npy_name,
    save_npy_atomic,
    shards_record,
)

RUN_FILE = "_run.json"
CHARS_PER_TOKEN_CAP = 16  # pre-cut at 16 chars per model token: above any real text's ratio


class Embedder:
    """A local sentence-transformers model turning texts into unit vectors.

    Args:
        model: a named model (``all-minilm-l6-v2``) or a local sentence-transformers folder.
        device: ``auto`` | ``cpu`` | ``cuda[:N]``.
        dtype: ``auto`` (bf16 on GPU, fp32 on CPU) | ``float32`` | ``bfloat16`` | ``float16``.
        batch_size: texts per forward pass.
        max_tokens: tokens the model reads per text (``None``: the model's own
            ``max_seq_length``, 256 for MiniLM); fewer is faster, the head of a text still
            says what it is about.
        max_chars: characters kept per text before tokenising (``None``: 16 x the
            token limit, which never cuts what the model would read).
        normalize: unit-length vectors (k-means on them is then cosine k-means).

    Example::

        Embedder("all-minilm-l6-v2").encode(["A text.", "Another one."])  # (2, 384) float32
    """

    def __init__(
        self,
        model: str = "all-minilm-l6-v2",
        *,
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int = 64,
        max_tokens: int | None = None,
        max_chars: int | None = None,
        normalize: bool = True,
    ) -> None:
        if batch_size <= 0:
            raise ConfigError(f"--batch-size must be > 0, got {batch_size}")
        if max_tokens is not None and max_tokens <= 0:
            raise ConfigError(f"--max-tokens must be > 0, got {max_tokens}")
        if max_chars is not None and max_chars <= 0:
            raise ConfigError(f"--max-chars must be > 0, got {max_chars}")
        self.model_name = model
        self.device = device
        self.dtype = dtype
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self.max_chars = max_chars
        self.normalize = normalize
        self._model: Any = None
        self._path: Path | None = None

    def load(self) -> Embedder:
        if self._model is not None:
            return self
        from raters.device import pick_device, pick_dtype
        from raters.hub import resolve_model

        path = resolve_model(self.model_name)
        if not (path / "modules.json").exists():
            raise AssayError(
                f"{path} is not a sentence-transformers model folder (no modules.json)",
                hint="pass a folder saved by SentenceTransformer.save(), or all-minilm-l6-v2",
            )
        from sentence_transformers import SentenceTransformer

        device = pick_device(self.device)
        model = SentenceTransformer(str(path), device=device, local_files_only=True)
        if not self.normalize and type(model[-1]).__name__ == "Normalize":
            # all-MiniLM-L6-v2 ends in a Normalize module, which would make normalize=False
            # unit vectors anyway; without it the vectors are the raw mean-pooled states.
            del model[len(model) - 1]
        model.to(pick_dtype(self.dtype, device))
        model.eval()
        if self.max_tokens is not None:
            config = getattr(getattr(model[0], "auto_model", None), "config", None)
            limit = getattr(config, "max_position_embeddings", None)
            if limit is not None and self.max_tokens > limit:
                raise ConfigError(
                    f"--max-tokens {self.max_tokens} is more than the model's {limit}"
                )
            model.max_seq_length = self.max_tokens
        self._model, self._path, self.device = model, path, device
        if self.max_chars is None:
            self.max_chars = CHARS_PER_TOKEN_CAP * int(model.max_seq_length or 512)
        return self

    @property
    def dim(self) -> int:
        self.load()
        return int(self._model.get_embedding_dimension())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """``[len(texts), dim]`` float32 embeddings."""
        self.load()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        cut = [t[: self.max_chars] for t in texts]
        out = self._model.encode(
            cut,
            batch_size=self.batch_size,
            normalize_embeddings=False,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        out = np.asarray(out, dtype=np.float32)
        if self.normalize:  # in float32: a bf16 model's own normalisation is off by ~1e-3
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    def describe(self) -> dict[str, Any]:
        """Everything that changes the vectors (for the manifest and the resume check)."""
        from raters.hub import weights_sha256

        self.load()
        assert self._path is not None
        return {
            "name": self.model_name,
            "path": str(self._path),
            "weights_sha256": weights_sha256(self._path),
            "dim": self.dim,
            "max_seq_length": int(self._model.max_seq_length),
            "max_chars": self.max_chars,
            "dtype": str(next(self._model.parameters()).dtype).removeprefix("torch."),
            "normalize": self.normalize,
        }


def _describe(make_embedder: Callable[[], Embedder]) -> dict[str, Any]:
    return make_embedder().describe()


def _ray_desc(config: RayConfig) -> dict[str, Any]:
    return {
        "address": config.address or "local",
        "concurrency": config.concurrency,
        "num_cpus": config.num_cpus,
        "num_gpus": config.num_gpus,
    }


class ShardEmbedder:
    """One annotation shard file -> (float16 vectors, tokens, model description); what a
    Ray actor runs for ``assay embed --engine ray``. Built from a factory on the actor,
    so the model loads there (on its GPU) and never travels."""

    def __init__(self, make_embedder: Callable[[], Embedder], text_field: str) -> None:
        self.embedder = make_embedder().load()
        self.model = {k: v for k, v in self.embedder.describe().items() if k != "path"}
        self.text_field = text_field

    def __call__(self, path: str) -> tuple[np.ndarray, int, dict[str, Any]]:
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        names = pq.read_schema(path).names
        columns = [self.text_field] + (["n_tokens"] if "n_tokens" in names else [])
        table = pq.read_table(path, columns=columns)
        tokens = int(pc.sum(table.column("n_tokens")).as_py() or 0) if len(columns) > 1 else 0
        vectors = self.embedder.encode(table.column(self.text_field).to_pylist())
        return vectors.astype(np.float16), tokens, self.model


def _embed_on_ray(
    ray: RayConfig,
    worker: Callable[[], ShardEmbedder],
    annotated: Path,
    out: Path,
    shards: list[Any],
    start: int,
    expected: dict[str, Any],
    progress: Progress,
    seconds: dict[str, float],
    on_progress: Callable[[Progress], None] | None,
) -> None:
    """Shards ``start..`` embedded by Ray actors, committed here in order."""
    from assay.ray_files import map_files

    paths = [str(annotated / s.name) for s in shards[start:]]
    results = map_files(ray, worker, paths)
    try:
        _commit_in_order(results, out, shards, start, expected, progress, seconds, on_progress)
    finally:
        results.close()  # stop the actors now if we stop early (error, interrupt)


def _commit_in_order(
    results: Iterator[tuple[np.ndarray, int, dict[str, Any]]],
    out: Path,
    shards: list[Any],
    start: int,
    expected: dict[str, Any],
    progress: Progress,
    seconds: dict[str, float],
    on_progress: Callable[[Progress], None] | None,
) -> None:
    t_wait = time.perf_counter()
    for index, (vectors, tokens, actor_model) in enumerate(results, start=start):
        if actor_model != expected:
            changed = ", ".join(mf.diff_keys(expected, actor_model))
            raise ConfigError(
                f"the Ray actors loaded another model than this machine (differs in: {changed})",
                hint="pass --device/--dtype explicitly so every node loads the same model",
            )
        if vectors.shape[0] != shards[index].rows:
            raise AssayError(
                f"{shards[index].name}: {vectors.shape[0]} vectors for {shards[index].rows} rows"
            )
        t1 = time.perf_counter()
        save_npy_atomic(out / npy_name(index), vectors)
        seconds["encode"] += t1 - t_wait  # waiting on the actors: they read and encode
        seconds["write"] += time.perf_counter() - t1
        t_wait = time.perf_counter()
        progress.tokens += tokens
        progress.docs += vectors.shape[0]
        progress.bytes_done = progress.docs
        if on_progress:
            on_progress(progress)


def embed_corpus(
    annotated: str | os.PathLike,
    out: str | os.PathLike,
    embedder: Embedder,
    *,
    text_field: str = "text",
    overwrite: bool = False,
    on_progress: Callable[[Progress], None] | None = None,
    ray: RayConfig | None = None,
    make_embedder: Callable[[], Embedder] | None = None,
) -> dict[str, Any]:
    """Embed every document of an annotated folder; one float16 ``.npy`` per shard.

    With ``ray`` (and ``make_embedder``, a picklable factory of the same embedder, e.g.
    ``functools.partial(Embedder, "all-minilm-l6-v2")``), shards are embedded by a pool
    of Ray actors, one shard per call; the driver still commits them in order, so the
    output and resume are those of a local run.

    Returns the manifest. Example::

        embed_corpus("out/annotated", "out/embeddings", Embedder("all-minilm-l6-v2"))
    """
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    def pa_sum(column: Any) -> int:
        return int(pc.sum(column).as_py() or 0)

    annotated, out = Path(annotated), Path(out)
    ann_manifest = mf.read_manifest(annotated, kind="annotations")
    shards = annotation_shards(annotated)
    if ray is not None and make_embedder is None:
        raise ConfigError("embedding on Ray needs make_embedder (a factory of the Embedder)")
    if ray is None:
        model = embedder.describe()
    else:  # as the actors load it (their GPU, bf16 under auto); no model load here
        from assay.ray_engine import run_like_an_actor

        assert make_embedder is not None
        model = run_like_an_actor(ray, functools.partial(_describe, make_embedder))
    fingerprint = {
        "annotations": str(annotated.resolve()),
        "shards": shards_record(shards),
        # identity, not location: a rebuilt venv must not restart a finished run
        "model": {k: v for k, v in model.items() if k != "path"},
        "text_field": text_field,
    }
    if mf.prepare_run_folder(
        out,
        fingerprint,
        overwrite,
        what="an assay embeddings run",
        holds="embeddings of another model or input",
    ):
        return mf.read_manifest(out, kind="embeddings")

    done = committed_npy(out)
    if len(done) > len(shards):
        raise ManifestMismatchError(f"{out} holds more shards than {annotated}")
    for path, shard in zip(done, shards, strict=False):
        rows = np.load(path, mmap_mode="r").shape[0]
        if rows != shard.rows:
            raise ManifestMismatchError(f"{path} has {rows} rows, {shard.name} has {shard.rows}")
    progress = Progress(bytes_total=sum(s.rows for s in shards))
    progress.docs = progress.bytes_done = sum(s.rows for s in shards[: len(done)])
    resumed_from = len(done)
    seconds = {"read": 0.0, "encode": 0.0, "write": 0.0}
    has_tokens = "n_tokens" in pq.read_schema(annotated / shards[0].name).names if shards else False
    if ray is not None:
        assert make_embedder is not None
        worker = functools.partial(ShardEmbedder, make_embedder, text_field)
        _embed_on_ray(
            ray,
            worker,
            annotated,
            out,
            shards,
            len(done),
            fingerprint["model"],
            progress,
            seconds,
            on_progress,
        )
    local = range(len(done), len(shards)) if ray is None else range(0)
    for index in local:
        t0 = time.perf_counter()
        columns = [text_field, "n_tokens"] if has_tokens else [text_field]
        table = pq.read_table(annotated / shards[index].name, columns=columns)
        texts = table.column(text_field).to_pylist()
        if has_tokens:  # target-tokenizer tokens, for the progress line only
            progress.tokens += int(pa_sum(table.column("n_tokens")))
        t1 = time.perf_counter()
        vectors = embedder.encode(texts).astype(np.float16)
        t2 = time.perf_counter()
        save_npy_atomic(out / npy_name(index), vectors)
        seconds["read"] += t1 - t0
        seconds["encode"] += t2 - t1
        seconds["write"] += time.perf_counter() - t2
        progress.docs += len(texts)
        progress.bytes_done = progress.docs
        if on_progress:
            on_progress(progress)

    manifest = mf.new_manifest(
        "embeddings",
        annotations={
            "path": str(annotated.resolve()),
            "manifest_sha256": mf.sha256_of(annotated / mf.MANIFEST),
            "rows": ann_manifest["counts"]["rows"],
        },
        models=[model],
        config={"text_field": text_field, "batch_size": embedder.batch_size},
        engine={"engine": "local"} if ray is None else {"engine": "ray", **_ray_desc(ray)},
        counts={"rows": sum(s.rows for s in shards), "shards": len(shards), "dim": model["dim"]},
        shards=[{**s, "file": npy_name(i)} for i, s in enumerate(shards_record(shards))],
        storage={"format": "npy", "dtype": "float16", "layout": "[rows, dim], row-aligned"},
        timings={
            "resumed_from_shard": resumed_from,
            "seconds_this_run": {k: round(v, 3) for k, v in seconds.items()},
            "docs_per_second_this_run": round(
                (progress.docs - sum(s.rows for s in shards[:resumed_from]))
                / max(seconds["encode"], 1e-9),
                1,
            ),
        },
        run=fingerprint,
    )
    mf.write_json_atomic(out / mf.MANIFEST, manifest)
    (out / RUN_FILE).unlink(missing_ok=True)
    return manifest
