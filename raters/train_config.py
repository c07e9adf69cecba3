"""Settings of ``assay train-rater``: one typed dataclass, checked before any model loads."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from assay.errors import ConfigError

KINDS = ("encoder", "decoder")
METHODS = ("head", "lora", "full")
HEAD_TYPES = ("auto", "classification", "regression")
ADAPTER_MODES = ("merge", "keep")
# Per method: epochs, batch size, learning rate, patience (evaluations without a better
# validation loss). `head` trains a linear layer on cached embeddings, a convex problem
# where steps are nearly free: many epochs of small batches at a high rate, stopped by
# the validation loss (FineWeb-Edu ran 20 epochs of batch 256 at 3e-4 over 450k
# examples, ~35k steps; a few thousand labels need more epochs for as many steps).
# Backbone updates want small rates and few epochs.
DEFAULTS = {
    ("encoder", "head"): (300, 64, 5e-3, 20),
    ("encoder", "lora"): (4, 16, 5e-4, 2),
    ("encoder", "full"): (4, 16, 5e-5, 2),
    ("decoder", "lora"): (3, 4, 2e-4, 2),
    ("decoder", "full"): (3, 4, 2e-5, 2),
}


@dataclass(frozen=True)
class TrainConfig:
    """How to train a rater from a labels file (``None`` fields take the method's default)."""

    base: str = "all-minilm-l6-v2"
    """Base model: a named model (``all-minilm-l6-v2``, ``smollm2-135m``) or a folder."""
    kind: str = "encoder"
    """``encoder`` (backbone + pooled linear heads) or ``decoder`` (SFT on an answer
    template, :mod:`raters.train_decoder`)."""
    method: str | None = None
    """``head`` (frozen backbone, heads only), ``lora`` (peft LoRA + heads) or ``full``.
    Default: ``head`` for encoders, ``lora`` for decoders."""
    name: str | None = None
    """Rater name (column prefix); default: the output folder's name."""
    version: str = "1"
    """Recorded in every manifest next to the name."""
    heads: dict[str, str] = field(default_factory=dict)
    """Criterion -> ``classification`` | ``regression`` | ``auto`` (default ``auto``:
    classification when every label is a whole number on a scale of at most 11
    levels, else regression)."""
    criteria: tuple[str, ...] | None = None
    """Train only these criteria (default: every criterion in the labels)."""
    domain: bool = True
    """Train a domain head when the labels have domains."""
    max_tokens: int | None = None
    """Tokens per example: the document's head for encoders (default 256), the whole
    prompt + answer for decoders (default 1024; long texts keep head and tail)."""
    pooling: str = "mean"
    """Encoder pooling: ``mean`` (sentence-transformers' choice for MiniLM), ``cls`` or
    ``mean_cls`` (both, concatenated; see :mod:`raters.heads`)."""
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    """Learning rate of the backbone (lora/full) or of the heads (head)."""
    head_lr: float = 5e-3
    """Learning rate of the heads under lora/full (fresh layers learn faster)."""
    weight_decay: float = 0.01
    warmup_frac: float = 0.06
    """Share of the steps spent warming up linearly; then linear decay to 0."""
    patience: int | None = None
    """Evaluations without a lower validation loss before stopping."""
    eval_every: int | None = None
    """Steps between validations (default: once per epoch)."""
    val_frac: float = 0.1
    """Share of label groups held out for early stopping."""
    test_frac: float = 0.1
    """Share of label groups held out for the figures in metrics.json (0: none)."""
    seed: int = 0
    """Seeds the split, the initialisation and the batch order."""
    class_balance: float = 1.0
    """Loss weights (n / (k * count)) ** class_balance per class (regression: per score
    bin); 0 turns balancing off, 0.5 is milder for very skewed scores."""
    use_expected: bool = False
    """Regression heads learn the teacher's expected scores where present."""
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: tuple[str, ...] | None = None
    """Module names LoRA adapts (default: peft's choice for the architecture)."""
    adapter: str | None = None
    """LoRA output: ``merge`` (a fine-tuned backbone saved in the rater) or ``keep``
    (the adapter alone, applied to the named base model at load; a small folder).
    Default: ``merge`` for encoders, ``keep`` for decoders (vLLM serves adapters)."""
    device: str = "auto"
    threads: int | None = None
    """torch threads (default: torch's choice)."""
    description: str = ""

    def resolved(self) -> TrainConfig:
        """A copy with the method's defaults filled in, after validation."""
        self.validate()
        method = self.method or ("head" if self.kind == "encoder" else "lora")
        if (self.kind, method) not in DEFAULTS:
            raise ConfigError(
                f"--method {method} is not available for --kind {self.kind}",
                hint="decoders train with lora or full",
            )
        epochs, batch, lr, patience = DEFAULTS[(self.kind, method)]
        return dataclasses.replace(
            self,
            method=method,
            epochs=self.epochs or epochs,
            batch_size=self.batch_size or batch,
            lr=self.lr or lr,
            patience=self.patience if self.patience is not None else patience,
            max_tokens=self.max_tokens or (256 if self.kind == "encoder" else 1024),
            adapter=self.adapter or ("merge" if self.kind == "encoder" else "keep"),
        )

    def validate(self) -> None:
        from raters.heads import POOLINGS

        _choice(self.kind, "kind", KINDS)
        _choice(self.pooling, "pooling", POOLINGS)
        if self.method is not None:
            _choice(self.method, "method", METHODS)
        if self.adapter is not None:
            _choice(self.adapter, "adapter", ADAPTER_MODES)
        for name, kind in self.heads.items():
            if kind not in HEAD_TYPES:
                raise ConfigError(
                    f"--head {name}={kind}: the type must be one of {', '.join(HEAD_TYPES)}"
                )
        for flag, value in (
            ("epochs", self.epochs),
            ("batch-size", self.batch_size),
            ("eval-every", self.eval_every),
            ("threads", self.threads),
        ):
            if value is not None and value < 1:
                raise ConfigError(f"--{flag} must be > 0, got {value}")
        if self.max_tokens is not None and self.max_tokens < 8:
            raise ConfigError(f"--max-tokens must be >= 8, got {self.max_tokens}")
        if (self.lr is not None and self.lr <= 0) or self.head_lr <= 0:
            raise ConfigError("--lr and --head-lr must be > 0")
        if self.patience is not None and self.patience < 0:
            raise ConfigError(f"--patience must be >= 0, got {self.patience}")
        if not 0 <= self.warmup_frac < 1:
            raise ConfigError(f"--warmup-frac must be in [0, 1), got {self.warmup_frac}")
        if self.class_balance < 0:
            raise ConfigError(f"--class-balance must be >= 0, got {self.class_balance}")
        if self.lora_r < 1 or self.lora_alpha < 1 or not 0 <= self.lora_dropout < 1:
            raise ConfigError("--lora-r and --lora-alpha must be >= 1, --lora-dropout in [0, 1)")
        if not (0 < self.val_frac < 1 and 0 <= self.test_frac < 1):
            raise ConfigError(
                f"--val-frac must be in (0, 1) (early stopping needs it) and --test-frac in "
                f"[0, 1); got {self.val_frac}, {self.test_frac}"
            )
        if self.val_frac + self.test_frac >= 1:
            raise ConfigError("--val-frac + --test-frac must leave examples to train on")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _choice(value: Any, flag: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"--{flag} must be one of {', '.join(allowed)}, got {value!r}")
