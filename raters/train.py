"""``assay train-rater``: one encoder, many heads (criteria + domain), trained in one pass.

Reads top to bottom: labels and split, heads, model, data, loop, held-out figures, save.

- ``head``: the backbone is frozen (FineWeb-Edu's recipe). Its pooled embeddings are
  computed once, and the linear heads train on them for many cheap epochs. The rater
  folder is the heads alone (KB) plus the name of the backbone.
- ``lora``: peft LoRA adapters on the backbone + the heads, trained together; saved
  merged into a fine-tuned backbone (``--adapter merge``) or as the adapter alone
  (``--adapter keep``, applied to the base backbone at load).
- ``full``: every weight trains; the fine-tuned backbone is saved in the rater.

All three share the model (backbone -> pooling -> one linear layer, :mod:`raters.heads`)
and write an ``assay-heads`` rater that ``assay annotate`` loads; they differ only in
what trains. Loss: per head, class-weighted cross-entropy (classification, domain) or
bin-weighted squared error on the scale normalised to [0, 1] (regression); heads are
averaged. AdamW, linear warmup then linear decay; the validation loss is checked once
per epoch (or every ``eval_every`` steps) and training stops after ``patience`` checks
without improvement, keeping the best weights. The split is by label group
(:func:`raters.labels.assign_splits`), so corrupted copies of a held-out document are
held out too.

Output folder: ``rater.json``, ``heads.safetensors``, ``heads.json`` (+ ``backbone/`` or
the adapter files), ``train_log.json`` (config, loss curve, timings), ``metrics.json``
(held-out figures per head, with majority/mean baselines) and ``manifest.json`` (kind
``rater``). It is written to a temporary folder and renamed at the end.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from assay import manifest as mf
from assay.errors import AssayError, ConfigError
from raters.labels import SPLITS, LabelSet, assign_splits, read_labels
from raters.train_config import TrainConfig
from raters.train_heads import (
    HeadPlan,
    example_weights,
    heads_report,
    multihead_loss,
    plan_heads,
    targets,
)
from raters.train_loop import (
    Log,
    batch_plan,
    embed,
    fit,
    logits_of,
    pad,
    param_groups,
    tokenize,
)
from raters.train_output import (
    folder_size,
    prepare_out,
    rater_manifest,
    staging_dir,
    swap_in,
    write_spec,
)


def train_rater(
    labels_path: str | os.PathLike,
    out: str | os.PathLike,
    config: TrainConfig = TrainConfig(),
    *,
    overwrite: bool = False,
    log: Log = lambda message: None,
) -> dict[str, Any]:
    """Train a rater on a labels file and write it to ``out``; returns metrics.json.

    Example::

        train_rater("labels.jsonl", "raters/my-rater", TrainConfig(method="head"))
    """
    cfg = config.resolved()
    out = Path(out)
    prepare_out(out, overwrite)
    if cfg.kind == "decoder":
        from raters.train_decoder import train_decoder_rater

        return train_decoder_rater(labels_path, out, cfg, log=log)
    started = time.perf_counter()
    timings: dict[str, float] = {}

    # ---- labels, split, heads ----------------------------------------------------------
    labels = read_labels(labels_path)
    plans = plan_heads(labels, cfg.heads, cfg.criteria, cfg.domain)
    split = assign_splits(labels.groups, cfg.val_frac, cfg.test_frac, cfg.seed)
    rows = {s: np.flatnonzero(split == s) for s in SPLITS}
    for s in ("train", "val"):
        if len(rows[s]) == 0:
            raise ConfigError(
                f"the {s} split is empty ({len(labels)} examples, --val-frac {cfg.val_frac})",
                hint="label more documents or change --val-frac",
            )
    y, mask, weights = _targets(labels, plans, split == "train", cfg)
    log(
        f"{len(labels):,} examples: {len(rows['train']):,} train, {len(rows['val']):,} val, "
        f"{len(rows['test']):,} test; heads: "
        + ", ".join(f"{p.name} ({p.kind}, {p.end - p.start})" for p in plans)
    )

    # ---- model -------------------------------------------------------------------------
    import torch

    from raters.device import pick_device
    from raters.heads import heads_module, pooled_width
    from raters.hub import resolve_model, weights_sha256

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    device = pick_device(cfg.device)
    base_dir = resolve_model(cfg.base)
    tokenizer, backbone = _load_backbone(base_dir)
    hidden = int(backbone.config.hidden_size)
    n_logits = plans[-1].end
    head = torch.nn.Linear(pooled_width(hidden, cfg.pooling), n_logits)
    _init_head(head, plans, y, mask, split == "train")
    if cfg.method == "lora":
        backbone = _with_lora(backbone, cfg)
    elif cfg.method == "head":
        backbone.requires_grad_(False)
    module = heads_module(backbone, head, cfg.pooling).to(device)

    # ---- data --------------------------------------------------------------------------
    t0 = time.perf_counter()
    ids = tokenize(tokenizer, labels.texts, cfg.max_tokens)
    timings["tokenize_s"] = time.perf_counter() - t0
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    tensors = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in (("y", y), ("w", weights))}
    tensors["mask"] = torch.as_tensor(mask)

    if cfg.method == "head":
        t0 = time.perf_counter()
        embedded = embed(module, ids, pad_id, device)
        timings["embed_s"] = time.perf_counter() - t0
        log(f"embedded {len(ids):,} documents in {timings['embed_s']:.1f} s (backbone frozen)")
        features = torch.as_tensor(embedded)

        def forward(batch: np.ndarray) -> Any:
            return module.head(features[batch].to(device))

    else:

        def forward(batch: np.ndarray) -> Any:
            input_ids, attention = pad([ids[i] for i in batch], pad_id)
            return module(input_ids.to(device), attention.to(device))

    def loss_of(batch: np.ndarray) -> tuple[Any, list]:
        logits = forward(batch)
        return multihead_loss(
            logits,
            tensors["y"][batch].to(device),
            tensors["mask"][batch].to(device),
            tensors["w"][batch].to(device),
            plans,
        )

    lengths = np.array([len(x) for x in ids])
    batches = batch_plan(rows["train"], lengths, cfg, cfg.method != "head")

    # ---- loop --------------------------------------------------------------------------
    t0 = time.perf_counter()
    # Steps on cached embeddings are tiny matmuls: one thread is ~50x faster than two on
    # a busy 2-core machine (thread hand-offs dominate), and never slower.
    threads = torch.get_num_threads()
    if cfg.method == "head":
        torch.set_num_threads(1)
    try:
        groups = param_groups(module, cfg)
        names = [p.name for p in plans]
        independent = {p.name: (p.start, p.end) for p in plans} if cfg.method == "head" else None
        history = fit(module, cfg, groups, batches, loss_of, rows["val"], names, log, independent)
    finally:
        torch.set_num_threads(threads)
    timings["train_s"] = time.perf_counter() - t0
    examples = history["examples_seen"]
    timings["train_s_per_1k_examples"] = timings["train_s"] / max(examples, 1) * 1000

    # ---- held-out figures --------------------------------------------------------------
    module.eval()
    metrics: dict[str, Any] = {"splits": {s: len(rows[s]) for s in SPLITS}}
    for s in ("val", "test"):
        if len(rows[s]):
            logits = logits_of(forward, rows[s])
            metrics[s] = heads_report(logits, labels.subset(rows[s]), plans)

    # ---- save --------------------------------------------------------------------------
    staging = staging_dir(out)
    base_ref = cfg.base if cfg.base in _named() else str(base_dir.resolve())
    backbone_ref, adapter = base_ref, None
    backbone_sha = weights_sha256(base_dir)
    if cfg.method == "full" or (cfg.method == "lora" and cfg.adapter == "merge"):
        trained = backbone.merge_and_unload() if cfg.method == "lora" else backbone
        trained.save_pretrained(staging / "backbone", safe_serialization=True)
        tokenizer.save_pretrained(staging / "backbone")
        backbone_ref, backbone_sha = "backbone", weights_sha256(staging / "backbone")
    elif cfg.method == "lora":
        backbone.save_pretrained(staging)  # adapter_model.safetensors + adapter_config.json
        (staging / "README.md").unlink(missing_ok=True)  # peft's empty model-card template
        adapter = "."
    from raters.heads import save_heads

    save_heads(
        staging,
        head,
        {
            "pooling": cfg.pooling,
            "hidden_size": hidden,
            "num_labels": n_logits,
            "method": cfg.method,
            "adapter": adapter,
            "backbone_sha256": backbone_sha,
        },
    )
    spec = write_spec(staging, cfg, plans, backbone_ref, out.name, labels)
    timings["total_s"] = time.perf_counter() - started
    train_log = {
        "config": cfg.to_dict(),
        "heads": [p.spec_entry() if p.kind != "domain" else {"domain": p.labels} for p in plans],
        "split": {"seed": cfg.seed, "val_frac": cfg.val_frac, "test_frac": cfg.test_frac},
        "history": history,
        "timings": {k: round(v, 4) for k, v in timings.items()},
        "threads": torch.get_num_threads(),
        "device": device,
    }
    mf.write_json_atomic(staging / "train_log.json", train_log)
    mf.write_json_atomic(staging / "metrics.json", metrics)
    manifest = rater_manifest(
        spec.to_dict(), cfg, labels, rows, base_ref, base_dir, timings, staging
    )
    mf.write_json_atomic(staging / "manifest.json", manifest)
    swap_in(staging, out)
    log(f"wrote {out} ({folder_size(out) / 1e6:.2f} MB) in {timings['total_s']:.0f} s")
    return metrics


# ---- pieces, in the order train_rater uses them --------------------------------------------


def _targets(
    labels: LabelSet, plans: list[HeadPlan], train: np.ndarray, cfg: TrainConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``[n, heads]`` targets, masks and balanced loss weights."""
    n, h = len(labels), len(plans)
    y, mask, w = np.zeros((n, h)), np.zeros((n, h), dtype=bool), np.zeros((n, h))
    for k, plan in enumerate(plans):
        y[:, k], mask[:, k] = targets(labels, plan, cfg.use_expected)
        if not (mask[:, k] & train).any():
            raise ConfigError(f"head {plan.name!r} has no label in the training split")
        w[:, k] = example_weights(y[:, k], mask[:, k], train, plan, cfg.class_balance)
    return y, mask, w


def _load_backbone(base_dir: Path) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_dir, local_files_only=True)
    tokenizer.model_max_length = 1 << 40  # we cut windows ourselves
    backbone = AutoModel.from_pretrained(base_dir, local_files_only=True, dtype=torch.float32)
    if not hasattr(backbone.config, "hidden_size"):
        raise AssayError(f"--base {base_dir}: no hidden_size in its config (not an encoder?)")
    return tokenizer, backbone


def _init_head(head: Any, plans: list[HeadPlan], y: np.ndarray, mask: np.ndarray, train: Any):
    """Small weights; regression biases at the training mean, so the first steps learn
    the signal rather than the offset."""
    import torch

    with torch.no_grad():
        head.weight.normal_(0.0, 0.02)
        head.bias.zero_()
        for k, plan in enumerate(plans):
            if plan.kind == "regression":
                rows = mask[:, k] & train
                head.bias[plan.start] = float(y[rows, k].mean())


def _with_lora(backbone: Any, cfg: TrainConfig) -> Any:
    from peft import LoraConfig, get_peft_model

    targets_ = list(cfg.lora_targets) if cfg.lora_targets else None
    lora = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=targets_,
        bias="none",
    )
    try:
        return get_peft_model(backbone, lora)
    except ValueError as e:  # peft knows no default targets for this architecture
        raise ConfigError(
            f"--method lora: {e}", hint="name the modules to adapt with --lora-targets"
        ) from None


def _named() -> set[str]:
    from raters.hub import NAMED

    return set(NAMED)
