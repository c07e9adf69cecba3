"""Proxy language models: a tiny Llama-style causal LM trained on a sample, scored on targets.

Mixture search (RegMix, CLIMB), influence probing and score-weight learning all ask the
same question: "if a model trained on *this* data, how well would it model *that*?". The
answer here is a small ``LlamaForCausalLM`` (from scratch, or continued from a local HF
model such as SmolLM2-135M) trained for a token budget, then its loss in nats per token and
bits per byte on each target validation set.

The loop reads top to bottom (config, data, model, loop, eval, save) and runs unchanged on
CPU at toy sizes and on a GPU at real sizes (``device="auto"``, bf16 autocast).

Example::

    cfg = ProxyConfig(hidden=64, layers=2, heads=4, seq_len=256, tokens=30_000, seed=0)
    result = train_proxy(train_texts, {"wiki": wiki_val}, cfg)
    result.metrics["wiki"]["loss"]
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from assay.errors import AssayError, ConfigError
from selector.proxy_data import EvalSet, eval_blocks, join_docs, make_eval_set, pack_blocks

INSTALL_HINT = "pip install 'assay[select]' (proxies need torch and transformers)"


@dataclass
class ProxyConfig:
    """Size, budget and optimiser of one proxy run."""

    hidden: int = 64
    """Model width (``hidden_size``); ignored when ``init`` is a model."""
    layers: int = 2
    """Transformer blocks; ignored when ``init`` is a model."""
    heads: int = 4
    """Attention heads (head dim = hidden / heads); ignored when ``init`` is a model."""
    seq_len: int = 256
    """Tokens per training block (and per evaluation block)."""
    tokens: int = 30_000
    """Training budget in tokens; steps = tokens / (batch_size * seq_len), at least 1."""
    batch_size: int = 8
    """Blocks per optimiser step."""
    lr: float = 1e-2
    """Peak learning rate (AdamW). 1e-2 suits ~0.1-1M-parameter proxies trained for tens
    of steps (measured: 7.16 vs 7.69 nats at 3e-3); use ~3e-4 to continue a pretrained
    model."""
    warmup: int | None = None
    """Linear warmup steps, then 1/sqrt(step) decay; None = 10% of the steps."""
    seed: int = 0
    """Seeds the initial weights and the order of training blocks."""
    init: str = "scratch"
    """``scratch``, a named local model (``smollm2-135m``) or a folder with an HF model."""
    threads: int = 1
    """CPU threads (torch.set_num_threads); tiny models run fastest on 1 under load."""
    dtype: str = "float32"
    """``float32`` or ``bfloat16`` (autocast; weights stay float32)."""
    device: str = "auto"
    """``auto`` (CUDA when present), ``cpu`` or ``cuda[:N]``."""
    ffn: int | None = None
    """MLP width; None = 8/3 x hidden rounded up to a multiple of 32 (Llama's ratio)."""
    weight_decay: float = 0.1
    """AdamW weight decay."""
    vocab_size: int = 4096
    """Vocabulary of the BPE trained when no tokenizer is given (scratch only)."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        positive = {
            "hidden": self.hidden,
            "layers": self.layers,
            "heads": self.heads,
            "seq-len": self.seq_len,
            "tokens": self.tokens,
            "batch-size": self.batch_size,
            "threads": self.threads,
        }
        for flag, value in positive.items():
            if not isinstance(value, int) or value <= 0:
                raise ConfigError(f"--proxy-{flag} must be a positive integer, got {value!r}")
        if self.hidden % self.heads:
            raise ConfigError(
                f"--proxy-hidden ({self.hidden}) must be divisible by --proxy-heads ({self.heads})"
            )
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"--proxy-lr must be > 0, got {self.lr}")
        if self.warmup is not None and self.warmup < 0:
            raise ConfigError(f"--proxy-warmup must be >= 0, got {self.warmup}")
        if self.dtype not in ("float32", "bfloat16"):
            raise ConfigError(f"--proxy-dtype must be float32 or bfloat16, got {self.dtype!r}")
        if self.seq_len < 2:
            raise ConfigError("--proxy-seq-len must be >= 2")

    @property
    def steps(self) -> int:
        return max(1, self.tokens // (self.batch_size * self.seq_len))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ProxyResult:
    """What one proxy run measured."""

    metrics: dict[str, dict[str, float]]
    """Per target: ``loss`` (nats per token) and ``bpb`` (bits per UTF-8 byte)."""
    tokens_seen: int
    steps: int
    seconds: float
    curve: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    """(tokens seen, {target: loss}) every ``eval_every`` steps and at the end."""
    params: int = 0
    """Parameters outside the embeddings (and LM head)."""
    epochs: float = 0.0
    """Passes over the training sample the budget implied (>1 means repeated blocks)."""


def _torch() -> Any:
    try:
        import torch
    except ImportError as e:  # pragma: no cover - depends on the extra
        raise AssayError(f"proxy models need torch ({e})", hint=INSTALL_HINT) from None
    return torch


def resolve_device(name: str) -> str:
    torch = _torch()
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: no CUDA device here", hint="use --device cpu")
    return name


def build_model(config: ProxyConfig, vocab_size: int, eos_id: int) -> Any:
    """A fresh Llama-style model (seeded), or the ``init`` model loaded from disk."""
    torch = _torch()
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(config.seed)
    if config.init != "scratch":
        from raters.hub import resolve_model

        model = AutoModelForCausalLM.from_pretrained(str(resolve_model(config.init)))
        if model.get_input_embeddings().weight.shape[0] < vocab_size:
            raise ConfigError(
                f"--proxy-init model has a smaller vocabulary than the tokenizer ({vocab_size})",
                hint="leave --tokenizer unset to use the init model's own tokenizer",
            )
        return model
    ffn = config.ffn or -(-8 * config.hidden // 3 // 32) * 32
    cfg = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=config.hidden,
        intermediate_size=ffn,
        num_hidden_layers=config.layers,
        num_attention_heads=config.heads,
        num_key_value_heads=config.heads,
        max_position_embeddings=config.seq_len,
        tie_word_embeddings=True,  # at 4k x 64 the embeddings are most of a tiny model
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
        attention_dropout=0.0,
    )
    return LlamaForCausalLM(cfg)


def _non_embedding_params(model: Any) -> int:
    emb = {id(p) for p in model.get_input_embeddings().parameters()}
    emb |= {id(p) for p in model.get_output_embeddings().parameters()}
    return sum(p.numel() for p in model.parameters() if id(p) not in emb)


def evaluate(
    model: Any, targets: Mapping[str, EvalSet], seq_len: int, device: str, dtype: str
) -> dict[str, dict[str, float]]:
    """Mean loss per predicted token and bits per byte on each target."""
    torch = _torch()
    import torch.nn.functional as F

    model.eval()
    out: dict[str, dict[str, float]] = {}
    autocast = torch.autocast(device.split(":")[0], torch.bfloat16, enabled=dtype == "bfloat16")
    with torch.inference_mode(), autocast:
        for name, target in targets.items():
            nats, count = 0.0, 0
            blocks = eval_blocks(target.stream, seq_len)
            full = [b for b in blocks if len(b) == seq_len]
            groups = [np.stack(full[i : i + 16]) for i in range(0, len(full), 16)]
            groups += [b[None, :] for b in blocks if len(b) != seq_len]
            for arr in groups:
                x = torch.from_numpy(arr).to(device)
                logits = model(input_ids=x).logits.float()
                loss = F.cross_entropy(
                    logits[:, :-1].reshape(-1, logits.shape[-1]),
                    x[:, 1:].reshape(-1),
                    reduction="sum",
                )
                nats += float(loss)
                count += x[:, 1:].numel()
            mean = nats / max(count, 1)
            # bpb: the mean loss spread over the bytes that each text token stands for
            bpb = mean * target.n_text_tokens / max(target.n_bytes, 1) / math.log(2)
            out[name] = {"loss": mean, "bpb": bpb}
    model.train()
    return out


def train_proxy_tokens(
    train_stream: np.ndarray,
    targets: Mapping[str, EvalSet],
    config: ProxyConfig,
    *,
    vocab_size: int,
    eos_id: int,
    tokenizer: Any = None,
    save_dir: str | os.PathLike | None = None,
    eval_every: int | None = None,
) -> ProxyResult:
    """Train on an EOS-separated token stream; the token-level core of ``train_proxy``.

    The search tokenises its pool once and calls this for every proxy, so a hundred
    proxies do not re-tokenise the corpus a hundred times.
    """
    torch = _torch()
    device = resolve_device(config.device)
    blocks = pack_blocks(train_stream, config.seq_len)
    steps = config.steps
    warmup = config.warmup if config.warmup is not None else max(1, steps // 10)
    old_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        model = build_model(config, vocab_size, eos_id).to(device)
        model.train()
        decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
        no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
        opt = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": config.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=config.lr,
            betas=(0.9, 0.95),
        )

        def lr_at(step: int) -> float:  # warmup, then 1/sqrt decay (the usual small-LM recipe)
            if step < warmup:
                return config.lr * (step + 1) / warmup
            return config.lr * math.sqrt(max(warmup, 1) / (step + 1))

        rng = np.random.default_rng(config.seed)
        order = rng.permutation(len(blocks))
        cursor = 0
        autocast = torch.autocast(
            device.split(":")[0], torch.bfloat16, enabled=config.dtype == "bfloat16"
        )
        curve: list[tuple[int, dict[str, float]]] = []
        start = time.perf_counter()
        tokens_seen = 0
        for step in range(steps):
            idx = []
            while len(idx) < config.batch_size:
                if cursor == len(order):  # budget beyond the sample: a fresh pass
                    order, cursor = rng.permutation(len(blocks)), 0
                take = order[cursor : cursor + config.batch_size - len(idx)]
                idx.extend(take.tolist())
                cursor += len(take)
            x = torch.from_numpy(blocks[idx]).to(device)
            for group in opt.param_groups:
                group["lr"] = lr_at(step)
            with autocast:
                loss = model(input_ids=x, labels=x).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            tokens_seen += x.numel()
            if not math.isfinite(loss.item()):
                raise AssayError(
                    f"proxy loss became {loss.item()} at step {step}",
                    hint="lower --proxy-lr or use --proxy-dtype float32",
                )
            if eval_every and (step + 1) % eval_every == 0 and step + 1 < steps:
                m = evaluate(model, targets, config.seq_len, device, config.dtype)
                curve.append((tokens_seen, {k: v["loss"] for k, v in m.items()}))
        metrics = evaluate(model, targets, config.seq_len, device, config.dtype)
        seconds = time.perf_counter() - start
        curve.append((tokens_seen, {k: v["loss"] for k, v in metrics.items()}))
        if save_dir is not None:
            save_dir = Path(save_dir)
            save_dir.mkdir(parents=True, exist_ok=True)
            model.save_pretrained(str(save_dir))
            if tokenizer is not None:
                tokenizer.save_pretrained(str(save_dir))
        return ProxyResult(
            metrics=metrics,
            tokens_seen=tokens_seen,
            steps=steps,
            seconds=seconds,
            curve=curve,
            params=_non_embedding_params(model),
            epochs=tokens_seen / blocks.size,
        )
    finally:
        torch.set_num_threads(old_threads)


def prepare_tokenizer(
    train_texts: Sequence[str], config: ProxyConfig, tokenizer_dir: str | os.PathLike | None
) -> Any:
    """The tokenizer a proxy uses: the given folder, the init model's, or a fresh 4k BPE."""
    from selector.bpe import load_tokenizer, train_bpe

    if tokenizer_dir is not None:
        return load_tokenizer(tokenizer_dir)
    if config.init != "scratch":
        from raters.hub import resolve_model

        return load_tokenizer(resolve_model(config.init))
    with tempfile.TemporaryDirectory(prefix="assay-bpe-") as tmp:
        return load_tokenizer(train_bpe(train_texts, tmp, vocab_size=config.vocab_size))


def train_proxy(
    train_texts: Sequence[str],
    targets: Mapping[str, Sequence[str]],
    config: ProxyConfig,
    *,
    tokenizer_dir: str | os.PathLike | None = None,
    save_dir: str | os.PathLike | None = None,
    eval_every: int | None = None,
) -> ProxyResult:
    """Train a proxy on ``train_texts`` and measure it on each target's texts.

    Args:
        train_texts: the training sample, in order (documents are joined with EOS, cut into
            ``seq_len`` blocks, and read in a seeded order, repeating if the budget asks).
        targets: name -> validation texts.
        config: size, budget, optimiser, seed, init, device.
        tokenizer_dir: an HF tokenizer folder; None = the init model's tokenizer, or a
            4k byte-level BPE trained on ``train_texts`` (deterministic). Runs on different
            texts then have different tokenizers: compare them by ``bpb``, or train one
            tokenizer (``selector.bpe.train_bpe``) and pass it to every run, as the
            search does, to compare ``loss``.
        save_dir: if given, an HF checkpoint (model + tokenizer) that
            ``AutoModelForCausalLM`` / ``AutoTokenizer`` load.
        eval_every: also evaluate every N steps (the ``curve``).
    """
    from selector.bpe import encode_texts

    if not train_texts:
        raise AssayError("train_proxy got no training texts")
    if not targets:
        raise ConfigError("train_proxy needs at least one target validation set (--target)")
    tok = prepare_tokenizer(train_texts, config, tokenizer_dir)
    eos = int(tok.eos_token_id)
    stream = join_docs(encode_texts(tok, train_texts), eos)
    evals = {
        name: make_eval_set(list(texts), encode_texts(tok, list(texts)), eos)
        for name, texts in targets.items()
    }
    return train_proxy_tokens(
        stream,
        evals,
        config,
        vocab_size=len(tok),
        eos_id=eos,
        tokenizer=tok,
        save_dir=save_dir,
        eval_every=eval_every,
    )
