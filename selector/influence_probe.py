"""Oracle data influence (MATES probing): one optimizer step on a document, then the change
in loss on a reference set.

For each probed document: restore the checkpoint, take one optimizer step on the
document's first ``max_tokens`` tokens, measure the mean per-token loss on the reference
set, and record ``influence = loss_after - loss_before`` (negative: the document helps the
reference). MATES records the loss after the step and z-scores it later; the difference
is the same ranking and reads as a signed quantity.

Optimizer: the checkpoint's own state when its folder holds ``optimizer.pt`` (an AdamW
``state_dict`` saved beside the weights) and ``--optimizer auto``; otherwise the stated
default, plain SGD at ``--lr``, whose step changes the reference loss by about
``-lr * <grad(doc), grad(reference)>`` (the first-order influence). A fresh AdamW's first
step is ``lr * sign(grad)`` whatever the gradient's size, so it is not the default.

Batched: ``probe_many`` probes ``batch`` documents at once with ``torch.func``
(``selector.influence_probe_batched``), for SGD and Adam/AdamW (fresh or checkpoint state)
alike, equal to the one-at-a-time ``probe`` (the reference) to float32 rounding.
``batch=1`` runs the sequential path, for a model ``torch.func`` cannot transform; a model
too large for two copies of its weights within ``BATCH_PARAMS`` is probed sequentially.

Resumable: probes are committed in shards of ``shard_size`` (``part-NNNNN.parquet``,
atomic); rerunning the same command skips what is done and gives the same rows.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assay import manifest as mf
from assay.errors import AssayError, ConfigError

KIND = "influence_probes"
RUN_FILE = "_run.json"
OPTIMIZERS = ("auto", "sgd", "adamw")
# B copies of the weights and of the gradients are held at once: ~256 MiB in float32. Tiny
# proxies batch fully; a 100M model (per-call overhead negligible) runs sequentially.
BATCH_PARAMS = 1 << 26
INSTALL_HINT = "pip install 'assay[select]' (probing needs torch and transformers)"


@dataclass(frozen=True)
class ProbeConfig:
    """How each probe steps and measures."""

    optimizer: str = "auto"
    """``auto`` (the checkpoint's ``optimizer.pt`` if present, else ``sgd``), ``sgd`` or
    ``adamw`` (fresh state unless ``optimizer.pt`` exists)."""
    lr: float = 0.1
    """Learning rate of the probe step (``--lr``). The gradient is clipped to norm 1 (as in
    MATES), so with SGD it moves the weights by at most ``lr`` in L2 norm."""
    max_tokens: int = 256
    """Tokens of each probed document used for the step (its head)."""
    ref_tokens: int = 256
    """Tokens per reference document measured (its head)."""
    ref_batch: int = 16
    """Reference documents per forward pass."""
    shard_size: int = 64
    """Probes per committed shard (unit of resume)."""
    batch: int = 8
    """Documents probed at once with ``torch.func`` (``--probe-batch``); 1 = the sequential
    path. Capped at ``BATCH_PARAMS // parameters``: B copies of the weights and gradients
    are held at once."""
    threads: int = 1
    """CPU threads (torch.set_num_threads)."""
    device: str = "cpu"
    """``cpu``, ``cuda[:N]`` or ``auto``."""

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(
                f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}"
            )
        if not (self.lr > 0 and np.isfinite(self.lr)):
            raise ConfigError(f"--lr must be > 0, got {self.lr}")
        for flag, v in (
            ("max-tokens", self.max_tokens),
            ("ref-tokens", self.ref_tokens),
            ("ref-batch", self.ref_batch),
            ("shard-size", self.shard_size),
            ("probe-batch", self.batch),
            ("threads", self.threads),
        ):
            if v < 1:
                raise ConfigError(f"--{flag} must be >= 1, got {v}")


class Prober:
    """A causal LM, its start state, and the reference batches; ``probe(text)`` gives
    ``(influence, doc_loss)`` and leaves the model as it found it.

    Example::

        p = Prober("ckpt", reference_texts, ProbeConfig(lr=0.1))
        p.probe("some document")  # -> (-0.0123, 6.71)
    """

    def __init__(self, model_dir: str | os.PathLike, reference: Sequence[str], cfg: ProbeConfig):
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as e:  # pragma: no cover - depends on the extra
            raise AssayError(f"probing needs torch + transformers ({e})", hint=INSTALL_HINT) from e
        from raters.hub import resolve_model

        if not reference:
            raise ConfigError("--reference gave no documents")
        torch.set_num_threads(cfg.threads)
        self.cfg = cfg
        self.model_dir = resolve_model(model_dir)
        self.device = _device(cfg.device)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        self.tokenizer.model_max_length = 1 << 40
        self.model = AutoModelForCausalLM.from_pretrained(self.model_dir, dtype=torch.float32)
        self.model.to(self.device).train()
        # Dropout would make the step and the measurement random: probes are exact.
        for m in self.model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0
        named = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        self.names = [n for n, _ in named]
        self.params = [p for _, p in named]
        self.start = [p.detach().clone() for p in self.params]
        opt_file = self.model_dir / "optimizer.pt"
        self.opt_state = None
        kind = cfg.optimizer
        if kind in ("auto", "adamw") and opt_file.is_file():
            self.opt_state = torch.load(opt_file, map_location=self.device, weights_only=True)
            kind = "adamw"
        self.optimizer_kind = "sgd" if kind == "auto" else kind
        self._adam: tuple[list[Any], list[bool]] | None = None  # plan + used, on first need
        self.batch = min(cfg.batch, BATCH_PARAMS // sum(p.numel() for p in self.params))
        self.ref_batches = self._reference_batches(reference)
        self.loss_before = self.reference_loss()

    def _encode(self, texts: Sequence[str], limit: int) -> list[list[int]]:
        ids = self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        return [x[:limit] for x in ids]

    def _reference_batches(self, texts: Sequence[str]) -> list[tuple[Any, Any]]:
        import torch

        rows = [r for r in self._encode(texts, self.cfg.ref_tokens) if len(r) >= 2]
        if not rows:
            raise ConfigError("--reference documents are all shorter than 2 tokens")
        rows.sort(key=len)
        batches = []
        for i in range(0, len(rows), self.cfg.ref_batch):
            chunk = rows[i : i + self.cfg.ref_batch]
            width = max(len(r) for r in chunk)
            ids = torch.zeros((len(chunk), width), dtype=torch.long)
            labels = torch.full((len(chunk), width), -100, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for j, r in enumerate(chunk):
                ids[j, : len(r)] = torch.tensor(r)
                labels[j, : len(r)] = torch.tensor(r)
                mask[j, : len(r)] = 1
            batches.append((ids.to(self.device), labels.to(self.device), mask.to(self.device)))
        return batches

    def reference_loss(self) -> float:
        """Mean loss per predicted token over the whole reference set."""
        import torch

        total, count = 0.0, 0
        with torch.no_grad():
            for ids, labels, mask in self.ref_batches:
                logits = self.model(input_ids=ids, attention_mask=mask).logits[:, :-1]
                target = labels[:, 1:]
                loss = torch.nn.functional.cross_entropy(
                    logits.reshape(-1, logits.size(-1)).float(),
                    target.reshape(-1),
                    ignore_index=-100,
                    reduction="sum",
                )
                total += float(loss)
                count += int((target != -100).sum())
        return total / count

    def _optimizer(self) -> Any:
        import torch

        if self.optimizer_kind == "sgd":
            return torch.optim.SGD(self.params, lr=self.cfg.lr)
        opt = torch.optim.AdamW(self.params, lr=self.cfg.lr, weight_decay=0.0)
        if self.opt_state is not None:
            # load_state_dict keeps the given tensors (same dtype and device), and step()
            # updates them in place: without the copy every probe would start from the
            # state the previous probes left, not from the checkpoint's
            opt.load_state_dict(copy.deepcopy(self.opt_state))
            for group in opt.param_groups:
                group["lr"] = self.cfg.lr
        return opt

    def probe(self, text: str) -> tuple[float, float]:
        """One step on ``text``; returns (reference loss change, the document's loss)."""
        import torch

        ids = self._encode([text], self.cfg.max_tokens)[0]
        if len(ids) < 2:
            return float("nan"), float("nan")
        x = torch.tensor([ids], device=self.device)
        opt = self._optimizer()
        opt.zero_grad(set_to_none=True)
        out = self.model(input_ids=x, labels=x)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        opt.step()
        after = self.reference_loss()
        with torch.no_grad():  # restore the checkpoint for the next probe
            for p, p0 in zip(self.params, self.start, strict=True):
                p.copy_(p0)
        return after - self.loss_before, float(out.loss.detach())

    def probe_many(self, texts: Sequence[str]) -> list[tuple[float, float]]:
        """``probe`` of every text, ``self.batch`` at a time (``cfg.batch`` capped by model
        size; similar lengths together, to pad little); ``probe``'s values to float32
        rounding."""
        if self.batch < 2:
            return [self.probe(t) for t in texts]
        ids = self._encode(texts, self.cfg.max_tokens)
        out = [(float("nan"), float("nan"))] * len(ids)
        order = sorted((i for i, x in enumerate(ids) if len(x) >= 2), key=lambda i: len(ids[i]))
        for s in range(0, len(order), self.batch):
            chunk = order[s : s + self.batch]
            for i, r in zip(chunk, self._probe_batch([ids[i] for i in chunk]), strict=True):
                out[i] = r
        return out

    def _probe_batch(self, docs: list[list[int]]) -> list[tuple[float, float]]:
        from selector import influence_probe_batched as fb

        adam = None
        if self.optimizer_kind != "sgd":
            if self._adam is None:  # what the sequential path's optimizer would start from
                plan = fb.adam_plan(self._optimizer(), self.params)
                self._adam = (plan, fb.used_parameters(self.model, self.params, docs[0]))
            adam = self._adam
        stepped, doc_loss = fb.one_step_weights(
            self.model, self.names, self.start, docs, lr=self.cfg.lr, adam=adam
        )
        after = fb.losses_after(
            self.model, self.names, self.params, self.start, stepped, self.ref_batches,
            self.reference_loss,
        )  # fmt: skip
        return [(a - self.loss_before, float(d)) for a, d in zip(after, doc_loss, strict=True)]

    def describe(self) -> dict[str, Any]:
        from raters.hub import weights_sha256

        return {
            "model_path": str(self.model_dir),
            "weights_sha256": weights_sha256(self.model_dir),
            "optimizer": self.optimizer_kind,
            "optimizer_state": self.opt_state is not None,
            "batch": max(self.batch, 1),
            "reference_loss_before": self.loss_before,
        }


def _device(name: str) -> str:
    if name == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def sample_documents(
    records: Sequence[dict[str, Any]], n: int, seed: int, *, exclude: set[str] = frozenset()
) -> list[dict[str, Any]]:
    """``n`` documents drawn uniformly without replacement (seeded), in draw order."""
    pool = [r for r in records if str(r["id"]) not in exclude]
    if n < 1:
        raise ConfigError(f"-n/--probes must be >= 1, got {n}")
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(pool), size=min(n, len(pool)), replace=False)
    return [pool[i] for i in picks]


def probe_corpus(
    docs: Sequence[dict[str, Any]],
    reference: Sequence[str],
    model: str | os.PathLike,
    out: str | os.PathLike,
    cfg: ProbeConfig,
    *,
    inputs: dict[str, Any] | None = None,
    overwrite: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Probe every document of ``docs`` (dicts with ``id`` and ``text``); resumable.

    Writes ``part-NNNNN.parquet`` shards (``id``, ``text``, ``influence``, ``doc_loss``)
    and ``manifest.json``. ``inputs`` describes where docs and reference came from.
    """
    import pyarrow as pa

    from assay.shards import committed_shards, write_shard

    out = Path(out)
    t0 = time.perf_counter()
    fingerprint = {
        "model": str(Path(model)),
        # batch changes how, not what: a run may resume with another batch size
        "config": {k: v for k, v in asdict(cfg).items() if k != "batch"},
        "docs_sha1": _digest([str(d["id"]) for d in docs]),
        "reference_sha1": _digest(list(reference)),
    }
    mf.prepare_run_folder(
        out,
        fingerprint,
        overwrite,
        what="a probe run",
        holds="probes of a different command or input",
    )
    if (out / mf.MANIFEST).exists():
        return mf.read_manifest(out, kind=KIND)
    prober = Prober(model, reference, cfg)
    done = committed_shards(out)
    start = len(done) * cfg.shard_size
    for s in range(start, len(docs), cfg.shard_size):
        chunk = docs[s : s + cfg.shard_size]
        results = prober.probe_many([d["text"] for d in chunk])
        table = pa.table(
            {
                "id": [str(d["id"]) for d in chunk],
                "text": [d["text"] for d in chunk],
                "influence": pa.array([r[0] for r in results], pa.float64()),
                "doc_loss": pa.array([r[1] for r in results], pa.float64()),
            }
        )
        done.append(write_shard(out, len(done), table, {"rows": len(chunk)}))
        if on_progress:
            on_progress(min(s + cfg.shard_size, len(docs)), len(docs))
    import pyarrow.parquet as pq

    values = (
        np.concatenate(
            [pq.read_table(p, columns=["influence"])["influence"].to_numpy() for p in done]
        )
        if done
        else np.zeros(0)
    )
    manifest = mf.new_manifest(
        KIND,
        inputs=inputs or {},
        models=[prober.describe()],
        config=asdict(cfg),
        reference={"docs": len(reference), "sha1": fingerprint["reference_sha1"]},
        counts={
            "probes": int(values.size),
            "nan": int(np.isnan(values).sum()),
            "negative": int((values < 0).sum()),
        },
        influence={
            "mean": float(np.nanmean(values)) if values.size else None,
            "std": float(np.nanstd(values)) if values.size else None,
        },
        shards=[p.name for p in done],
        timings={"seconds_this_run": round(time.perf_counter() - t0, 3)},
        run=fingerprint,
    )
    mf.write_json_atomic(out / mf.MANIFEST, manifest)
    (out / RUN_FILE).unlink(missing_ok=True)
    return manifest


def read_probes(folder: str | os.PathLike) -> Any:
    """A finished probe folder as one Arrow table (``id``, ``text``, ``influence``, ...)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = Path(folder)
    manifest = mf.read_manifest(folder, kind=KIND)
    return pa.concat_tables([pq.read_table(folder / s) for s in manifest["shards"]])


def _digest(values: Sequence[str]) -> str:
    import hashlib

    h = hashlib.sha1()
    for v in values:
        h.update(v.encode("utf-8", errors="replace"))
        h.update(b"\0")
    return h.hexdigest()


__all__ = ["ProbeConfig", "Prober", "probe_corpus", "read_probes", "sample_documents"]
