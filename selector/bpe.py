"""A small byte-level BPE tokenizer for proxy models, trained on a sample of the pool.

Tiny proxies spend most of their compute in the LM head, so a 49k vocabulary (SmolLM2's)
makes them ~2x slower than a 4k one trained on the pool itself (measured here).
Byte-level means no text is ever out of vocabulary, so target sets from any domain encode.

The result is saved as an HF tokenizer folder that ``AutoTokenizer.from_pretrained`` and
``PreTrainedTokenizerFast`` load, so a proxy checkpoint saved with it is a normal HF model.

Example::

    path = train_bpe(texts, "out/tok", vocab_size=4096)
    tok = load_tokenizer(path)
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from assay.errors import AssayError, ConfigError

EOS = "<|endoftext|>"
INSTALL_HINT = "pip install 'assay[select]' (needs tokenizers and transformers)"


def _sample(texts: Iterable[str], max_chars: int, max_doc_chars: int) -> list[str]:
    """The first ``max_chars`` characters of the input, each text cut at ``max_doc_chars``.

    Order is kept as given, so the same texts give the same tokenizer (the BPE trainer is
    deterministic for a fixed input; a caller wanting a random sample shuffles first).
    """
    out, total = [], 0
    for text in texts:
        if total >= max_chars:
            break
        piece = text[:max_doc_chars]
        out.append(piece)
        total += len(piece)
    return out


def train_bpe(
    texts: Iterable[str],
    out_dir: str | os.PathLike,
    *,
    vocab_size: int = 4096,
    max_chars: int = 4_000_000,
    max_doc_chars: int = 8_000,
    min_frequency: int = 2,
) -> Path:
    """Train a byte-level BPE on ``texts`` and save it as an HF tokenizer folder.

    Args:
        texts: training text, read in order up to ``max_chars`` characters.
        out_dir: folder to write (``tokenizer.json`` + ``tokenizer_config.json``).
        vocab_size: merges + 256 byte symbols + the EOS token.
        max_chars: characters read at most (a pool sample; BPE needs no more at 4k).
        max_doc_chars: characters read per text, so one long manual does not dominate.
        min_frequency: pairs seen fewer times are not merged.
    """
    if vocab_size < 300:
        raise ConfigError(f"--vocab-size must be >= 300 (256 bytes + merges), got {vocab_size}")
    try:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
        from transformers import PreTrainedTokenizerFast
    except ImportError as e:  # pragma: no cover - depends on the extra
        raise AssayError(
            f"BPE training needs tokenizers/transformers ({e})", hint=INSTALL_HINT
        ) from None

    sample = _sample(texts, max_chars, max_doc_chars)
    if not sample or not any(sample):
        raise AssayError("no text to train the proxy tokenizer on")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(sample, trainer=trainer, length=len(sample))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=EOS, bos_token=EOS, unk_token=None, pad_token=EOS
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(out))
    return out


def load_tokenizer(path: str | os.PathLike) -> Any:
    """An HF fast tokenizer from a folder (ours, or any model's); EOS is required."""
    try:
        from transformers import AutoTokenizer
    except ImportError as e:  # pragma: no cover
        raise AssayError(f"proxy tokenizers need transformers ({e})", hint=INSTALL_HINT) from None
    path = Path(path)
    if not path.exists():
        raise AssayError(f"tokenizer folder {path} does not exist")
    tok = AutoTokenizer.from_pretrained(str(path))
    if tok.eos_token_id is None:
        raise AssayError(
            f"tokenizer in {path} has no EOS token",
            hint="proxies separate documents with EOS; use a tokenizer that defines one",
        )
    return tok


def encode_texts(tokenizer: Any, texts: Sequence[str], batch: int = 256) -> list[list[int]]:
    """Token ids per text, without special tokens (EOS is added when packing)."""
    out: list[list[int]] = []
    for start in range(0, len(texts), batch):
        chunk = list(texts[start : start + batch])
        enc = tokenizer(chunk, add_special_tokens=False)["input_ids"]
        out.extend(enc)
    return out
