"""The ``influence`` step of ``assay pipeline`` (MATES): a stage-1 proxy, probes of it,
the influence model, and ``influence.score`` for every pool document.

The pool's scores come from one of two paths; the step says which and why, and its
summary records it as ``features``:

``embeddings``: a ``method: head`` model is a ridge head on the frozen MiniLM's raw
mean-pooled states of each document's first ``max_tokens`` tokens, and the embed step
stored exactly those vectors, row for row, when (:func:`embedding_mismatches`)

* the encoder weights are the same (sha256) and it pools by the mean over tokens;
* ``embed.max_tokens`` equals ``influence.max_tokens`` (the head reads one window);
* the vectors are raw (``embed.normalize: false``): a unit vector has lost the norm that
  the head's linear function reads;
* they are row-aligned with the annotation shards.

Then the head is fitted on the probed documents' stored vectors and scores the pool from
the stored vectors: the pool is not encoded a second time (on the demo that pass took
as long as the embed step). The saved model (a float32 rater) gives the same scores from
the texts up to the vectors' precision: float16 storage, and a bfloat16 encoder under
``embed.dtype: auto`` on AMX CPUs.

``texts``: otherwise (``method: full``, the embed step skipped, any mismatch) the model
is fitted on the probed texts and the annotate engine scores the pool with the saved model
as a rater, as ``assay influence predict`` does.

Either way ``OUT/influence/scored`` is an annotated folder with the annotation shards'
rows and columns, shard for shard (clusters stay row-aligned), plus ``influence.score``
(the text path also adds the rater's ``influence.n_tokens`` and
``influence.scored_fraction``), which is what the select step reads.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from assay import manifest as mf
from assay.errors import AssayError, ConfigError, ManifestMismatchError
from assay.pipeline_context import FOLDERS, Context, proxy_config, require, target_file

# sentence-transformers modules a raw mean-pooled vector may pass through
_ST_MODULES = {"Transformer", "Pooling", "Normalize"}


def st_pooling(folder: Path) -> str:
    """How a sentence-transformers folder turns token states into a vector: ``mean``,
    another pooling mode, or what else stands in the way (a Dense layer, no config)."""
    try:
        modules = json.loads((folder / "modules.json").read_text())
    except (OSError, ValueError):
        return "unknown (no sentence-transformers modules.json)"
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    extra = sorted(set(kinds) - _ST_MODULES)
    if extra:
        return f"pooling with {', '.join(extra)} after it"
    pooling = next((m for m in modules if str(m.get("type", "")).endswith("Pooling")), None)
    if pooling is None:
        return "none"
    try:
        config = json.loads((folder / pooling.get("path", "") / "config.json").read_text())
    except (OSError, ValueError):
        return "unknown (no pooling config)"
    if isinstance(config.get("pooling_mode"), str):
        return "mean" if config["pooling_mode"] == "mean" else config["pooling_mode"]
    modes = sorted(
        k.removeprefix("pooling_mode_")
        for k, v in config.items()
        if k.startswith("pooling_mode_") and v is True
    )
    return "mean" if modes == ["mean_tokens"] else "+".join(modes) or "none"


def embedding_mismatches(
    embed_model: dict[str, Any], *, backbone: str, method: str, max_tokens: int
) -> list[str]:
    """Why the vectors an embeddings manifest's model entry describes are not the
    features of an influence head on ``backbone`` (an empty list: they are).

    Example::

        embedding_mismatches(manifest["models"][0], backbone="all-minilm-l6-v2",
                             method="head", max_tokens=128)  # []
    """
    from raters.hub import resolve_model, weights_sha256

    problems = []
    if method != "head":
        problems.append(f"influence.method is {method!r}: a fine-tuned encoder reads otherwise")
    if embed_model.get("normalize", True):
        problems.append("embed.normalize is true: unit vectors lost the norm the head reads")
    if embed_model.get("max_seq_length") != max_tokens:
        problems.append(
            f"embed.max_tokens is {embed_model.get('max_seq_length')}, "
            f"influence.max_tokens {max_tokens}"
        )
    path = resolve_model(backbone)
    if embed_model.get("weights_sha256") != weights_sha256(path):
        problems.append(
            f"the vectors are {embed_model.get('name')!r}'s, the head reads {backbone!r}'s"
        )
    else:
        stored = Path(str(embed_model.get("path", "")))
        pooling = st_pooling(stored if (stored / "modules.json").exists() else path)
        if pooling != "mean":
            problems.append(f"the embedder pools by {pooling}, the head by the mean")
    return problems


def reusable_embeddings(ctx: Context, annotated: Path, backbone: str) -> tuple[Path | None, str]:
    """The embed step's folder when its vectors are the head's features, else ``None``
    and the reason (for the step's output)."""
    from clustering.aligned import annotation_shards, check_aligned

    cfg = ctx.recipe.influence
    embeddings = ctx.artifact("embed")
    if embeddings is None:
        return None, "no embed step output (embed.skip)"
    manifest = mf.read_manifest(embeddings, kind="embeddings")
    problems = embedding_mismatches(
        manifest["models"][0], backbone=backbone, method=cfg.method, max_tokens=cfg.max_tokens
    )
    if manifest.get("config", {}).get("text_field", "text") != "text":
        problems.append("the embed step read another text field")
    try:
        check_aligned(
            annotation_shards(annotated), manifest["shards"], what="embeddings", folder=embeddings
        )
    except ManifestMismatchError as e:
        problems.append(str(e))
    return (None, "; ".join(problems)) if problems else (embeddings, "")


def score_from_embeddings(
    model: Any, annotated: Path, embeddings: Path, out: Path, model_dir: Path
) -> dict[str, Any]:
    """Write ``out``: the annotated shards plus ``<model.name>.score`` predicted from the
    stored vectors (:meth:`InfluenceModel.predict_features`); returns its manifest."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from assay.shards import shard_meta, shard_name, write_shard
    from clustering.aligned import load_embeddings

    started = time.perf_counter()
    am = mf.read_manifest(annotated, kind="annotations")
    em, arrays = load_embeddings(embeddings)
    staging = out.with_name(out.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    column = f"{model.name}.score"
    for i, (name, vectors) in enumerate(zip(am["shards"], arrays, strict=True)):
        if name != shard_name(i):  # the clusters check names: keep the annotation's
            raise AssayError(f"{annotated}: shard {i} is named {name}, expected {shard_name(i)}")
        table = pq.read_table(annotated / name)
        scores = model.predict_features(vectors).astype(np.float32)
        table = table.append_column(column, pa.array(scores, type=pa.float32()))
        write_shard(staging, i, table, shard_meta(annotated / name))
    manifest = mf.new_manifest(
        "annotations",
        inputs=[
            {"path": str((p / mf.MANIFEST).resolve()), "sha256": mf.sha256_of(p / mf.MANIFEST)}
            for p in (annotated, embeddings)
        ],
        models=[
            {
                "name": model.name,
                "class": "InfluenceModel",
                "model_path": str(model_dir),
                "features": "embeddings",
                "embeddings_model": {k: v for k, v in em["models"][0].items() if k != "path"},
                "params": model.get_params(),
            }
        ],
        tokenizer=am.get("tokenizer"),
        config=am.get("config", {}),
        counts={**am["counts"], "quarantined": 0},
        shards=list(am["shards"]),
        columns_stored_as_json=am.get("columns_stored_as_json", []),
        timings={"wall_seconds_this_run": round(time.perf_counter() - started, 3)},
    )
    mf.write_json_atomic(staging / mf.MANIFEST, manifest)
    if out.exists():
        shutil.rmtree(out)
    os.replace(staging, out)  # the folder appears whole: select never reads half of it
    return manifest


def step_influence(ctx: Context) -> dict[str, Any]:
    """MATES at pipeline scale: a stage-1 proxy, probes, the influence model, pool scores."""
    import pyarrow.parquet as pq

    from assay.corpus import read_documents
    from selector.influence_model import InfluenceModel
    from selector.influence_probe import ProbeConfig, probe_corpus, read_probes, sample_documents
    from selector.proxy_lm import train_proxy

    cfg, seed = ctx.recipe.influence, ctx.recipe.seed
    annotated = require(ctx, "annotate", "influence")
    am = mf.read_manifest(annotated, kind="annotations")
    rows = [
        r
        for s in am["shards"]
        for r in pq.read_table(annotated / s, columns=["id", "text", "n_tokens"]).to_pylist()
    ]
    target = [d["text"] for d in read_documents([target_file(ctx)])]
    if len(target) <= cfg.reference_docs:
        raise ConfigError(
            f"influence.reference_docs ({cfg.reference_docs}) must be below the "
            f"{len(target)} target documents (the rest measure the stage-1 proxy)"
        )
    reference, held = target[: cfg.reference_docs], target[cfg.reference_docs :]
    out = ctx.out / FOLDERS["influence"]
    proxy = proxy_config(cfg.proxy, ctx)
    # Stage 1 ("the model being trained"): a random slice of the pool, 1.5x the budget in
    # annotation tokens so the proxy's own BPE (which counts differently) does not run short.
    order = np.random.default_rng(seed).permutation(len(rows))
    take, total = [], 0
    for i in order:
        take.append(rows[i]["text"])
        total += int(rows[i]["n_tokens"] or 0)
        if total >= 1.5 * proxy.tokens:
            break
    mix = ctx.artifact("mix")
    tokenizer = mix / "mixture.search" / "tokenizer" if mix else None
    result = train_proxy(
        take,
        {"target": held},
        proxy,
        tokenizer_dir=tokenizer if tokenizer and tokenizer.exists() else None,
        save_dir=out / "proxy",
    )
    ctx.say(f"stage-1 proxy: target loss {result.metrics['target']['loss']:.4f}")
    docs = sample_documents(rows, cfg.probes, seed)
    probe_cfg = ProbeConfig(
        lr=cfg.lr, max_tokens=cfg.max_tokens, ref_tokens=cfg.max_tokens, threads=ctx.recipe.threads
    )
    pm = probe_corpus(
        docs, reference, out / "proxy", out / "probes", probe_cfg,
        inputs={"pool": str(annotated), "reference": target_file(ctx)}, overwrite=True,
    )  # fmt: skip
    table = read_probes(out / "probes")
    values = table["influence"].to_numpy(zero_copy_only=False).astype(np.float64)
    ok = np.isfinite(values)
    texts = [t for t, k in zip(table["text"].to_pylist(), ok, strict=True) if k]
    model = InfluenceModel(
        method=cfg.method, max_tokens=cfg.max_tokens, max_chunks=1, val_fraction=0.2,
        seed=seed, threads=ctx.recipe.threads,
    )  # fmt: skip
    embeddings, why = reusable_embeddings(ctx, annotated, model.backbone)
    features = None
    if embeddings is not None:  # the probed documents are pool rows: their vectors are stored
        from clustering.aligned import gather_rows, load_embeddings

        row_of = {str(r["id"]): i for i, r in enumerate(rows)}
        probed = [row_of[str(d)] for d, k in zip(table["id"].to_pylist(), ok, strict=True) if k]
        if all(rows[i]["text"] == t for i, t in zip(probed, texts, strict=True)):
            features = gather_rows(load_embeddings(embeddings)[1], np.asarray(probed))
        else:  # an id shared by two different texts: a row cannot be told from its id
            embeddings, why = None, "pool ids are not unique: probes do not map to rows"
    model.fit(texts, values[ok], features=features)
    model.save(out / "model")
    ctx.say(
        f"influence model ({cfg.method}): held-out Spearman {model.val_spearman_:.3f} "
        f"on {model.n_val_} of {int(ok.sum())} probes ({pm['counts']['negative']} help the target)"
    )
    scored = out / "scored"
    if embeddings is not None:
        m = score_from_embeddings(model, annotated, embeddings, scored, out / "model")
        ctx.say(
            f"influence.score of {m['counts']['rows']:,} pool documents from the embed step's "
            f"vectors ({embeddings}): the pool is not encoded again"
        )
    else:
        ctx.say(f"influence.score by encoding the pool's texts again: {why}")
        m = _score_texts(annotated, am, scored, out / "model", ctx.recipe.annotate.shard_size)
    summary = {
        "stage1_target_loss": result.metrics["target"]["loss"],
        "probes": int(ok.sum()),
        "heldout_spearman": model.val_spearman_,
        "rows": m["counts"]["rows"],
        "features": "texts" if embeddings is None else "embeddings",
        "features_why": why or None,
    }
    return {"artifact": scored, "summary": summary}


def _score_texts(
    annotated: Path, am: dict[str, Any], out: Path, model_dir: Path, shard_size: int
) -> dict[str, Any]:
    """The text path: the annotate engine with the saved model as a rater."""
    from assay.annotate import annotate
    from raters.encoder import load_rater_dir

    return annotate(
        [str(annotated / s) for s in am["shards"]],
        out,
        [load_rater_dir(model_dir, device="cpu")],
        shard_size=shard_size,  # same shards: clusters stay row-aligned
        tokenizer_name=am.get("tokenizer"),
        overwrite=True,
    )
