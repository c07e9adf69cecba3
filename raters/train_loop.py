"""The training loop shared by encoder and decoder raters, and the batching it needs.

AdamW over the given parameter groups, linear warmup then linear decay, gradient
clipping at 1.0, a validation loss every ``eval_every`` steps (default: each epoch),
early stopping after ``patience`` checks without improvement, and the best weights
restored at the end. Batches are rows of the training set; ``loss_of(rows)`` turns them
into a loss, so the loop knows nothing of heads, tokens or embeddings.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from assay.errors import ConfigError
from raters.train_config import TrainConfig

Log = Callable[[str], None]


def tokenize(tokenizer: Any, texts: list[str], max_tokens: int) -> list[list[int]]:
    """The window the engine reads under ``long_doc: head``: the same character pre-cut
    (:func:`raters.windows.cut_spans`), the first ``max_tokens`` tokens with the
    tokenizer's special tokens, so training sees what inference will."""
    from raters.encoder_formats import special_tokens
    from raters.spec import CHARS_PER_TOKEN
    from raters.windows import cut_spans

    prefix, suffix = special_tokens(tokenizer)
    body = max_tokens - len(prefix) - len(suffix)
    if body < 1:
        raise ConfigError(f"--max-tokens {max_tokens} leaves no room beside special tokens")
    pieces = []
    for text in texts:
        start, end = cut_spans(text, "head", CHARS_PER_TOKEN * max_tokens)[0]
        pieces.append(text[start:end])
    enc = tokenizer(pieces, add_special_tokens=False, return_attention_mask=False)
    return [prefix + x[:body] + suffix for x in enc["input_ids"]]


def pad(rows: list[list[int]], pad_id: int) -> tuple[Any, Any]:
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for j, r in enumerate(rows):
        ids[j, : len(r)] = torch.as_tensor(r)
        mask[j, : len(r)] = 1
    return ids, mask


def embed(module: Any, ids: list[list[int]], pad_id: int, device: str) -> np.ndarray:
    """Pooled embeddings of every document (frozen backbone), length-sorted batches."""
    import torch

    from raters.windows import plan_batches

    order, restore = plan_batches([len(x) for x in ids], batch_tokens=8192, max_batch_size=64)
    out = []
    module.eval()
    with torch.inference_mode():
        for batch in order:
            input_ids, attention = pad([ids[i] for i in batch], pad_id)
            out.append(module.embed(input_ids.to(device), attention.to(device)).float().cpu())
    return torch.cat(out).numpy()[restore]


def batch_plan(
    train_rows: np.ndarray, lengths: np.ndarray, cfg: TrainConfig, bucket: bool
) -> Callable[[int], list[np.ndarray]]:
    """Batches of one epoch, shuffled by (seed, epoch). With a backbone in the loop,
    rows of similar length share a batch (sorted within windows of 50 batches, then the
    batches shuffled): far less padding, still a random order."""
    size = cfg.batch_size
    assert size is not None

    def epoch(e: int) -> list[np.ndarray]:
        rng = np.random.default_rng([cfg.seed, e])
        rows = rng.permutation(train_rows)
        if bucket:
            window = size * 50
            rows = np.concatenate(
                [
                    chunk[np.argsort(-lengths[chunk], kind="stable")]
                    for chunk in np.array_split(rows, max(1, -(-len(rows) // window)))
                ]
            )
        batches = [rows[i : i + size] for i in range(0, len(rows), size)]
        return [batches[i] for i in rng.permutation(len(batches))]

    return epoch


def param_groups(module: Any, cfg: TrainConfig) -> list[dict[str, Any]]:
    """The heads at ``head_lr`` (``lr`` under ``head``), trainable backbone weights at ``lr``."""
    head_params = list(module.head.parameters())
    head_ids = {id(p) for p in head_params}
    body = [p for p in module.parameters() if p.requires_grad and id(p) not in head_ids]
    groups = [{"params": head_params, "lr": cfg.lr if cfg.method == "head" else cfg.head_lr}]
    if body:
        groups.append({"params": body, "lr": cfg.lr})
    return groups


def fit(
    module: Any,
    cfg: TrainConfig,
    groups: list[dict[str, Any]],
    batches: Callable[[int], list[np.ndarray]],
    loss_of: Callable[[np.ndarray], tuple[Any, list]],
    val_rows: np.ndarray,
    names: list[str],
    log: Log,
    independent: dict[str, tuple[int, int]] | None = None,
) -> dict[str, Any]:
    """The training loop with early stopping; leaves the best weights in ``module``.

    ``loss_of(rows)`` returns the batch loss and one loss (or None) per name in
    ``names`` (the heads); ``batches(epoch)`` the row batches of an epoch.

    ``independent`` (name -> rows ``[start, end)`` of ``module.head``): the heads share
    nothing but the linear layer's input (a frozen backbone), so each keeps the rows of
    its own best validation step, and training runs until no head has improved for
    ``patience`` checks. One shared stopping point would stop every head when the first
    one starts to overfit (a 10-way domain head does so long before a 2-way one)."""
    import torch

    assert cfg.epochs is not None and cfg.patience is not None
    optimizer = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
    steps_per_epoch = len(batches(0))
    total = steps_per_epoch * cfg.epochs
    warmup = int(cfg.warmup_frac * total)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    eval_every = cfg.eval_every or steps_per_epoch
    trainable = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    best = {"loss": float("inf"), "step": 0, "state": _snapshot(trainable)}
    best_rows: dict[str, dict[str, Any]] = {
        name: {"loss": float("inf"), "step": 0} for name in (independent or {})
    }
    evals: list[dict[str, Any]] = []
    step, seen, running, stale, stopped = 0, 0, [], 0, False
    for epoch in range(cfg.epochs):
        module.train()
        for batch in batches(epoch):
            loss, _ = loss_of(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for _, p in trainable], 1.0)
            optimizer.step()
            scheduler.step()
            step += 1
            seen += len(batch)
            running.append(loss.detach().item())
            if step % eval_every == 0 or step == total:
                val, per_head = validation_loss(module, loss_of, val_rows, names)
                evals.append(
                    {
                        "step": step,
                        "epoch": round(step / steps_per_epoch, 3),
                        "train_loss": round(float(np.mean(running)), 5),
                        "val_loss": round(val, 5),
                        "val_per_head": per_head,
                    }
                )
                running = []
                improved = False
                if independent is not None:
                    for name, (start, end) in independent.items():
                        loss_h = per_head.get(name, float("inf"))
                        if loss_h < best_rows[name]["loss"] - 1e-6:
                            best_rows[name] = {
                                "loss": loss_h,
                                "step": step,
                                "weight": module.head.weight[start:end].detach().clone(),
                                "bias": module.head.bias[start:end].detach().clone(),
                            }
                            improved = True
                elif val < best["loss"] - 1e-6:
                    best = {"loss": val, "step": step, "state": _snapshot(trainable)}
                    improved = True
                stale = 0 if improved else stale + 1
                if cfg.method != "head" or len(evals) % 25 == 1:
                    log(
                        f"step {step:,}/{total:,} epoch {step / steps_per_epoch:.2f}: "
                        f"train {evals[-1]['train_loss']:.4f} val {val:.4f}"
                    )
                module.train()
                if cfg.patience and stale >= cfg.patience:
                    stopped = True
                    break
        if stopped:
            break
    history: dict[str, Any] = {
        "steps": step,
        "steps_per_epoch": steps_per_epoch,
        "examples_seen": seen,
        "stopped_early": stopped,
    }
    with torch.no_grad():
        if independent is not None:
            for name, (start, end) in independent.items():
                if "weight" in best_rows[name]:
                    module.head.weight[start:end] = best_rows[name]["weight"]
                    module.head.bias[start:end] = best_rows[name]["bias"]
            history["best_step_per_head"] = {n: b["step"] for n, b in best_rows.items()}
            history["best_val_loss_per_head"] = {
                n: round(b["loss"], 5) for n, b in best_rows.items()
            }
            history["best_step"] = max(b["step"] for b in best_rows.values())
            log(
                "best validation loss per head: "
                + ", ".join(
                    f"{n} {b['loss']:.4f} at step {b['step']:,}" for n, b in best_rows.items()
                )
            )
        else:
            params = dict(trainable)
            for name, value in best["state"].items():
                params[name].copy_(value)
            history["best_step"] = best["step"]
            history["best_val_loss"] = round(best["loss"], 5)
            log(f"best validation loss {best['loss']:.4f} at step {best['step']:,}")
    return history | {"evals": evals}


def _snapshot(named: list[tuple[str, Any]]) -> dict[str, Any]:
    return {n: p.detach().to("cpu", copy=True) for n, p in named}


def validation_loss(
    module: Any, loss_of: Callable, rows: np.ndarray, names: list[str], size: int = 64
) -> tuple[float, dict[str, float]]:
    """Loss over the validation rows: per head, the mean of batch losses weighted by
    batch size; overall, the mean over heads (as the training loss)."""
    import torch

    module.eval()
    sums = np.zeros(len(names))
    counts = np.zeros(len(names))
    with torch.inference_mode():
        for i in range(0, len(rows), size):
            batch = rows[i : i + size]
            _, per_head = loss_of(batch)
            for k, loss in enumerate(per_head):
                if loss is not None:
                    sums[k] += float(loss) * len(batch)
                    counts[k] += len(batch)
    per = {n: round(float(s / c), 5) for n, s, c in zip(names, sums, counts, strict=True) if c}
    return float(np.mean(list(per.values()))), per


def logits_of(forward: Callable, rows: np.ndarray, size: int = 64) -> np.ndarray:
    import torch

    out = []
    with torch.inference_mode():
        for i in range(0, len(rows), size):
            out.append(forward(rows[i : i + size]).float().cpu().numpy())
    return np.concatenate(out)
