"""``assay export``: a selection folder -> one trainer format, per group, plus a manifest.

Every group of the selection (``group=<name>/``) becomes one unit of the output: a
folder of shards (``jsonl``, ``parquet``, ``mds``), an HF ``datasets`` folder (``hf``),
or a Megatron prefix ``<name>_text_document`` (``megatron``, the name as
:func:`selector.export.megatron.megatron_prefix` writes it, tokenised here with the
target tokenizer, an end-of-document token appended per document by default as
``preprocess_data.py --append-eod`` does), or OLMo-core token files
``data/<name>/part-NNNNN.npy`` (``olmo-core``, tokenised the same way, EOS always
appended: see :mod:`selector.export.olmo_core`). The blend that weights the groups as the
selection's realised mixture does is written under ``blend/<trainer>/`` by the mixture
exporters (:func:`selector.mix_export.export_mixture`, the code behind ``assay mix
export``), with the exported paths filled in: Megatron and NeMo for ``megatron``,
``interleave_datasets`` for ``hf``, MDS streams for ``mds``, a ``SourceMixtureList`` for
``olmo-core``. Every blend weights the groups by the token shares of the files as written
(EOS/EOD included for ``megatron`` and ``olmo-core``; converted to per-document
probabilities with the exported documents' mean length for ``hf`` and ``mds``), so one
pass over the blend reads each group once and every share is exactly available.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from assay import manifest as mf
from assay.errors import AssayError, ConfigError

FORMATS = ("jsonl", "parquet", "hf", "megatron", "mds", "olmo-core")
TOKENISED = ("megatron", "olmo-core")
KIND = "export"
# Trainer blend files written beside each export (formats of selector.mix_export).
BLENDS = {
    "megatron": ("megatron", "nemo"),
    "hf": ("hf",),
    "mds": ("mds",),
    "olmo-core": ("olmo-core",),
}


def write_blends(
    out: Path,
    mixture: Any,
    paths: dict[str, str],
    fmt: str,
    data_root: Path,
    written: dict[str, tuple[int, int]] | None = None,
) -> dict[str, Any]:
    """The realised mixture in each trainer's syntax, written into ``out/blend``, pointing
    at the exported data as it will lie under ``data_root`` (absolute paths).

    ``written`` (tokens, documents per group, as exported) replaces the selection's counts:
    the blend then weights the groups by the tokens the files hold, one pass each."""
    import dataclasses

    from selector.mix_export import export_mixture
    from selector.mixture import Mixture

    groups = [
        dataclasses.replace(g, paths=[str((data_root / paths[g.name]).resolve())])
        for g in mixture.groups
        if g.name in paths and g.weight > 0
    ]
    budget = mixture.budget_tokens
    if written is not None:
        budget = sum(written[g.name][0] for g in groups)
        groups = [
            dataclasses.replace(
                g,
                weight=written[g.name][0] / budget,
                tokens_available=written[g.name][0],
                docs_available=written[g.name][1],
                tokens_selected=written[g.name][0],
                docs_selected=written[g.name][1],
            )
            for g in groups
        ]
    mix = Mixture(
        groups=groups,
        group_by=mixture.group_by,
        budget_tokens=budget,
        method=mixture.method,
        provenance=mixture.provenance,
    )
    written = {}
    for trainer in BLENDS.get(fmt, ()):
        m = export_mixture(mix, trainer, out / "blend" / trainer)
        written[trainer] = [f"blend/{trainer}/{f}" for f in m["files"]]
    return written


def vocabulary_record(tokenizer: Any) -> dict[str, Any]:
    """The vocabulary's size, SHA-256 (of its sorted ``token: id`` pairs) and end token,
    so prefixes tokenised alike can be told from others whatever the tokenizer was called
    (``assay export-merge`` compares them)."""
    import hashlib
    import json

    pairs = sorted(tokenizer.get_vocab().items(), key=lambda kv: (kv[1], kv[0]))
    digest = hashlib.sha256(json.dumps(pairs, ensure_ascii=False).encode()).hexdigest()
    return {"size": len(tokenizer), "sha256": digest, "eos_token_id": tokenizer.eos_token_id}


def _write_megatron(
    shards: list[Path], prefix: Path, tokenizer: Any, append_eod: bool, text_field: str
) -> dict[str, int]:
    from selector.export.megatron import MegatronWriter
    from selector.export.tokens import iter_texts

    eod = tokenizer.eos_token_id
    if append_eod and eod is None:
        raise ConfigError(
            "--append-eod: the tokenizer has no end-of-sequence token",
            hint="pass --no-append-eod, or use a tokenizer with an eos_token",
        )
    docs = tokens = 0
    with MegatronWriter(prefix, vocab_size=len(tokenizer)) as writer:
        for texts, _ in iter_texts(shards, text_field):
            for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]:
                if append_eod:
                    ids = [*ids, eod]
                writer.add(ids)
                tokens += len(ids)
                docs += 1
    return {"docs": docs, "tokens": tokens}


def export_selection(
    selected: str | os.PathLike,
    out: str | os.PathLike,
    fmt: str,
    *,
    tokenizer: str | None = None,
    append_eod: bool = True,
    max_file_tokens: int | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write a selection in ``fmt`` (one of :data:`FORMATS`); returns the manifest.

    ``tokenizer`` (megatron, olmo-core) defaults to the one the selection counted tokens
    with; ``max_file_tokens`` (olmo-core) caps the tokens of one ``.npy`` file.
    Example::

        export_selection("out/selected", "out/megatron", "megatron")
    """
    from selector.export import files
    from selector.export import olmo_core as olmo
    from selector.export.megatron import check_prefixes, megatron_prefix
    from selector.select import read_selection
    from selector.select_write import commit_out, prepare_out

    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "olmo-core" and not append_eod:
        raise ConfigError(
            "--no-append-eod: OLMo-core finds documents by the EOS after each one",
            hint="drop --no-append-eod for --format olmo-core",
        )
    if max_file_tokens is not None:
        if fmt != "olmo-core":
            raise ConfigError("--max-file-tokens applies to --format olmo-core only")
        olmo.check_file_tokens(max_file_tokens)
    t0 = time.perf_counter()
    selected, out = Path(selected), Path(out)
    manifest, mixture = read_selection(selected)
    if fmt == "megatron":
        check_prefixes([g["name"] for g in manifest["groups"] if g["files"]])
    sel_tokenizer = manifest["tokens"]["tokenizer"]
    tok = tok_dir = None
    if fmt in TOKENISED:
        from transformers import AutoTokenizer

        from raters.hub import resolve_model

        tokenizer = tokenizer or sel_tokenizer
        tok_dir = resolve_model(tokenizer)
        tok = AutoTokenizer.from_pretrained(tok_dir)
        tok.model_max_length = 1 << 40  # whole documents; no truncation warning
        if fmt == "olmo-core" and tok.eos_token_id is None:
            raise ConfigError(
                f"--format olmo-core: tokenizer {tokenizer!r} has no end-of-sequence token; "
                "OLMo-core finds document boundaries by EOS",
                hint="pass --tokenizer with an eos_token",
            )
    elif fmt == "mds":  # fail before writing anything when the library is missing
        try:
            import streaming  # noqa: F401
        except ImportError as e:
            raise AssayError(
                f"--format mds needs mosaicml-streaming, which cannot be imported ({e})",
                hint=files.MDS_HINT,
            ) from None
    final, out = out, prepare_out(out, overwrite, kind=KIND)
    text_field = manifest.get("text_field", "text")
    groups = []
    for g in manifest["groups"]:
        if not g["files"]:
            continue
        shards = [selected / f for f in g["files"]]
        if fmt == "megatron":
            name = megatron_prefix(g["name"])
            stats = _write_megatron(shards, out / name, tok, append_eod, text_field)
            stats["selected_tokens"] = g["tokens_selected"]
        elif fmt == "olmo-core":
            folder = f"{olmo.DATA}/{olmo.group_folder(g['name'])}"
            cap = max_file_tokens or olmo.DEFAULT_FILE_TOKENS
            stats = olmo.write_group(shards, out / folder, tok, text_field, cap)
            stats["files"] = [f"{folder}/{f}" for f in stats["files"]]
            stats["selected_tokens"] = g["tokens_selected"]
            name = olmo.PATH_TEMPLATE.format(group=olmo.group_folder(g["name"]))
        else:
            name = Path(g["files"][0]).parent.name
            writer = {
                "jsonl": files.write_jsonl,
                "parquet": files.write_parquet,
                "hf": files.write_hf,
                "mds": files.write_mds,
            }[fmt]
            stats = writer(shards, out / name)
        groups.append({"name": g["name"], "path": name, **stats})
    # The blend weights the groups by what the exported files hold (tokens as written,
    # EOD included, for the tokenised formats; the selected tokens otherwise) and converts
    # to per-document units with the files' own mean length, not the pool's: one pass.
    selected_tokens = {g["name"]: g["tokens_selected"] for g in manifest["groups"]}
    written = {
        g["name"]: (g["tokens"] if fmt in TOKENISED else selected_tokens[g["name"]], g["docs"])
        for g in groups
    }
    paths = {g["name"]: g["path"] for g in groups}
    blend = write_blends(out, mixture, paths, fmt, final, written)
    counts = {"docs": sum(g["docs"] for g in groups), "groups": len(groups)}
    if fmt in TOKENISED:
        counts["tokens"] = sum(g["tokens"] for g in groups)
    result = mf.new_manifest(
        KIND,
        format=fmt,
        inputs={
            "selection": str(selected.resolve()),
            "selection_manifest_sha256": mf.sha256_of(selected / mf.MANIFEST),
        },
        tokenizer=tokenizer if fmt in TOKENISED else None,
        append_eod=append_eod if fmt in TOKENISED else None,
        vocabulary=vocabulary_record(tok) if fmt in TOKENISED else None,
        olmo_core=olmo.reader_config(tok, str(tok_dir)) if fmt == "olmo-core" else None,
        groups=groups,
        blend=blend,
        counts=counts,
        timings={"total_seconds": round(time.perf_counter() - t0, 3)},
    )
    mf.write_json_atomic(out / mf.MANIFEST, result)
    commit_out(out, final)
    return result
