"""Encoder raters: one forward pass per window gives every head (criteria + domain).

Built from a :class:`raters.spec.RaterSpec`::

    rater = load_rater_dir("models/edu-minilm")          # a folder with rater.json
    rater = EncoderRater.from_spec(RaterSpec.load("configs/raters/fineweb-edu.json")
                                   .with_model("/models/fineweb-edu-classifier"))
    rater.score(["A text ..."])  # {"educational_value": ..., "scored_fraction": ..., ...}

Columns per criterion ``c``: ``c`` (float32; regression: the value clipped to the scale;
classification: the expected score sum_k p(k) * value_k) and, for classification only,
``c.conf`` (probability of the most likely class) and ``c.label`` when the classes have
names. Regression heads have no ``.conf``: a constant would claim a confidence the model
does not give. Domain head: ``domain`` (str) and ``domain.prob``. Always:
``scored_fraction`` (characters read / characters in the text) and ``n_tokens``
(see :class:`raters.windows.DocWindows`). ``chunks`` aggregates windows by a
token-weighted mean of the probabilities (so of the expected scores) and of the clipped
regression values. An empty text is scored as the model's output for an empty window.

The engine: texts are sorted by (pre-cut) length and cut into groups; a background
thread tokenises the next group while the model runs the current one; within a group,
windows are sorted and batched under a token budget and padded only to each batch's
longest; ``torch.inference_mode``; bf16 by casting the weights (no autocast); on CUDA an
out-of-memory batch is split in two and retried.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assay.errors import ConfigError
from raters.base import Columns, Rater
from raters.encoder_formats import (
    check_positions,
    load_heads,
    load_hf,
    load_nemo,
    special_tokens,
)
from raters.encoder_heads import Head, aggregate, build_heads
from raters.spec import RaterSpec
from raters.windows import cut_spans, make_windows, plan_batches


@dataclass
class _Group:
    """A group of documents, tokenised and batched, ready for the model."""

    docs: np.ndarray  # input positions of the documents
    starts: np.ndarray  # first window of each document (windows are contiguous per doc)
    weights: np.ndarray  # aggregation weight of each window
    fraction: np.ndarray
    n_tokens: np.ndarray
    batches: list[tuple[Any, Any]]  # (input_ids, attention_mask) tensors
    restore: np.ndarray  # batch order -> window order


class EncoderRater(Rater):
    """An encoder with linear heads over one output vector, read through ``heads``."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        heads: Sequence[Head],
        *,
        name: str,
        version: str,
        max_tokens: int,
        long_doc: str = "head",
        max_chunks: int = 1,
        max_chars: int = 5120,
        device: str = "cpu",
        batch_tokens: int = 16384,
        max_batch_size: int = 128,
        group_docs: int = 512,
        info: dict[str, Any] | None = None,
    ) -> None:
        self.model = model  # module: (input_ids, attention_mask) -> logits [batch, labels]
        self.tokenizer = tokenizer
        self.heads = list(heads)
        self.name = name
        self.version = version
        self.max_tokens = max_tokens
        self.long_doc = long_doc
        self.max_chunks = max_chunks
        self.max_chars = max_chars
        self.device = device
        self.batch_tokens = batch_tokens
        self.max_batch_size = max_batch_size
        self.group_docs = group_docs
        self.info = dict(info or {})
        self.prefix, self.suffix = special_tokens(tokenizer)
        self.body = max_tokens - len(self.prefix) - len(self.suffix)
        if self.body < 1:
            raise ConfigError(f"max_tokens: {max_tokens} leaves no room beside special tokens")
        pad = tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else 0  # masked out, so any id will do

    # ---- building -------------------------------------------------------------------

    @classmethod
    def from_spec(
        cls,
        spec: RaterSpec,
        *,
        device: str = "auto",
        dtype: str = "auto",
        batch_tokens: int | None = None,
        max_batch_size: int | None = None,
        backend: str = "auto",
    ) -> EncoderRater:
        """Load the model a spec names and check the spec against it.

        ``device="auto"`` picks CUDA when available; ``dtype="auto"`` is bfloat16 on a
        GPU and float32 on CPU. Batches hold at most ``batch_tokens`` tokens including
        padding (default 16k on CPU, 128k on GPU) and ``max_batch_size`` windows.
        ``backend``: ``hf``, ``vllm`` (sequence-classification checkpoints only) or
        ``auto`` (:func:`raters.vllm_engine.choose`).
        """

        from raters import vllm_engine
        from raters.device import pick_device, pick_dtype

        device = pick_device(device)
        torch_dtype = pick_dtype(dtype, device)
        on_gpu = device.startswith("cuda")
        for flag, value in (("batch_tokens", batch_tokens), ("max_batch_size", max_batch_size)):
            if value is not None and value < 1:
                raise ConfigError(f"--{flag.replace('_', '-')} must be > 0, got {value}")
        model_dir = spec.model_dir()
        chosen = vllm_engine.choose(
            backend,
            model_dir if spec.format == "hf-sequence-classification" else None,
            "pooling",
            what=f"format {spec.format!r} is not a sequence-classification checkpoint",
        )
        if chosen == "vllm":
            return cls._on_vllm(spec, model_dir, torch_dtype, device, batch_tokens, max_batch_size)
        if spec.format == "nemo-deberta":
            model, tokenizer, num_labels, id2label = load_nemo(spec, model_dir)
        elif spec.format == "assay-heads":
            model, tokenizer, num_labels, id2label = load_heads(spec, model_dir, torch_dtype)
        else:
            model, tokenizer, num_labels, id2label = load_hf(spec, model_dir, torch_dtype)
        spec.check_model(num_labels, id2label)
        check_positions(spec, model)
        model = model.to(device=device, dtype=torch_dtype).eval()
        info = {
            "spec": spec.to_dict(),
            "model_path": str(model_dir),
            "dtype": str(torch_dtype).removeprefix("torch."),
            "device": device,
            "num_labels": num_labels,
            "backend": "hf",
        }
        if spec.format == "assay-heads":  # the heads' folder is tiny; the backbone counts too
            info["backbone"] = model.source
        return cls(
            model,
            tokenizer,
            build_heads(spec, id2label),
            name=spec.name,
            version=spec.version,
            max_tokens=spec.max_tokens,
            long_doc=spec.long_doc,
            max_chunks=spec.max_chunks,
            max_chars=spec.chars_limit,
            device=device,
            batch_tokens=batch_tokens or (131072 if on_gpu else 16384),
            max_batch_size=max_batch_size or (512 if on_gpu else 128),
            info=info,
        )

    @classmethod
    def _on_vllm(
        cls,
        spec: RaterSpec,
        model_dir: Path,
        torch_dtype: Any,
        device: str,
        batch_tokens: int | None,
        max_batch_size: int | None,
    ) -> EncoderRater:
        """The same rater with vLLM's pooling runner as the model call."""
        from transformers import AutoConfig

        from raters.encoder_formats import _load_tokenizer
        from raters.encoder_vllm import VllmClassifier
        from raters.vllm_engine import dtype_name

        config = AutoConfig.from_pretrained(
            model_dir, local_files_only=True, trust_remote_code=spec.trust_remote_code
        )
        id2label = {int(k): str(v) for k, v in (config.id2label or {}).items()}
        spec.check_model(int(config.num_labels), id2label)
        limit = getattr(config, "max_position_embeddings", None)
        if limit and spec.max_tokens > limit:
            raise ConfigError(
                f"max_tokens: {spec.max_tokens} exceeds the model's {limit} positions"
            )
        model = VllmClassifier(
            model_dir,
            dtype=dtype_name(torch_dtype),
            max_model_len=spec.max_tokens,
            trust_remote_code=spec.trust_remote_code,
        )
        return cls(
            model,
            _load_tokenizer(model_dir, spec),
            build_heads(spec, id2label),
            name=spec.name,
            version=spec.version,
            max_tokens=spec.max_tokens,
            long_doc=spec.long_doc,
            max_chunks=spec.max_chunks,
            max_chars=spec.chars_limit,
            device="cpu",  # tensors stay on the host; vLLM places them itself
            batch_tokens=batch_tokens or 65536,
            max_batch_size=max_batch_size or 1024,  # vLLM batches continuously inside
            info={
                "spec": spec.to_dict(),
                "model_path": str(model_dir),
                "dtype": dtype_name(torch_dtype),
                "device": device,
                "num_labels": int(config.num_labels),
                "backend": "vllm",
            },
        )

    def describe(self) -> dict[str, Any]:
        from raters.hub import weights_sha256

        if "weights_sha256" not in self.info and "model_path" in self.info:
            self.info["weights_sha256"] = weights_sha256(Path(self.info["model_path"]))
        return {**super().describe(), "kind": "encoder", **self.info}

    # ---- scoring --------------------------------------------------------------------

    def score(self, texts: Sequence[str]) -> Columns:
        texts = list(texts)
        n = len(texts)
        acc = {k: np.zeros((n, h.end - h.start)) for k, h in enumerate(self.heads)}
        fraction = np.ones(n, dtype=np.float32)
        n_tokens = np.zeros(n, dtype=np.int64)
        # Sort by pre-cut length so that each group, and each batch in it, holds texts
        # of similar length; groups let tokenising overlap with the model's work.
        lengths = np.array([min(len(t), self.max_chars) for t in texts], dtype=np.int64)
        order = np.argsort(-lengths, kind="stable")
        groups = [order[i : i + self.group_docs] for i in range(0, n, self.group_docs)]
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenise") as pool:
            pending = pool.submit(self._prepare, texts, groups[0]) if groups else None
            for g in range(len(groups)):
                assert pending is not None
                group = pending.result()
                if g + 1 < len(groups):
                    pending = pool.submit(self._prepare, texts, groups[g + 1])
                logits = self._run(group)
                for k, head in enumerate(self.heads):
                    acc[k][group.docs] = aggregate(head, logits, group.weights, group.starts)
                fraction[group.docs] = group.fraction
                n_tokens[group.docs] = group.n_tokens
        return self._columns(acc, fraction, n_tokens)

    def _prepare(self, texts: list[str], docs: np.ndarray) -> _Group:
        """Tokenise a group and plan its batches (runs in the background thread)."""
        spans = [cut_spans(texts[i], self.long_doc, self.max_chars) for i in docs]
        pieces = [
            texts[i][s:e] for i, doc_spans in zip(docs, spans, strict=True) for s, e in doc_spans
        ]
        enc = self.tokenizer(
            pieces,
            add_special_tokens=False,
            return_offsets_mapping=True,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        ids, offsets = enc["input_ids"], enc["offset_mapping"]
        windows: list[list[int]] = []
        weights, starts = [], []
        fraction = np.empty(len(docs), dtype=np.float32)
        n_tokens = np.empty(len(docs), dtype=np.int64)
        p = 0
        for d, i in enumerate(docs):
            k = len(spans[d])
            made = make_windows(
                list(zip(ids[p : p + k], offsets[p : p + k], strict=True)),
                spans[d],
                len(texts[i]),
                self.long_doc,
                self.body,
                self.max_chunks,
            )
            p += k
            starts.append(len(windows))
            windows.extend(self.prefix + w + self.suffix for w in made.windows)
            weights.extend(made.weights)
            fraction[d], n_tokens[d] = made.scored_fraction, made.n_tokens
        lengths = [len(w) for w in windows]
        order, restore = plan_batches(lengths, self.batch_tokens, self.max_batch_size)
        batches = [self._pad([windows[j] for j in b]) for b in order]
        return _Group(
            docs=docs,
            starts=np.array(starts, dtype=np.int64),
            weights=np.maximum(np.array(weights, dtype=np.float64), 1.0),
            fraction=fraction,
            n_tokens=n_tokens,
            batches=batches,
            restore=restore,
        )

    def _pad(self, rows: list[list[int]]) -> tuple[Any, Any]:
        """Right-pad to the longest row of this batch only."""
        import torch

        width = max(len(r) for r in rows)
        ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for j, r in enumerate(rows):
            ids[j, : len(r)] = r
            mask[j, : len(r)] = 1
        ids_t, mask_t = torch.from_numpy(ids), torch.from_numpy(mask)
        if self.device.startswith("cuda"):  # pinned memory: the copy to the GPU is async
            ids_t, mask_t = ids_t.pin_memory(), mask_t.pin_memory()
        return ids_t, mask_t

    def _run(self, group: _Group) -> np.ndarray:
        """Logits of every window of a group, in window order, as float32."""
        import torch

        outs = []
        with torch.inference_mode():
            for ids, mask in group.batches:
                outs.append(self._forward(ids, mask))
        return np.concatenate(outs)[group.restore]

    def _forward(self, ids: Any, mask: Any) -> np.ndarray:
        import torch

        try:
            ids_d = ids.to(self.device, non_blocking=True)
            mask_d = mask.to(self.device, non_blocking=True)
            return self.model(ids_d, mask_d).float().cpu().numpy()
        except torch.cuda.OutOfMemoryError:
            if len(ids) == 1:
                raise
            # Halve and retry: a token budget too large for this GPU costs speed, not a run.
            torch.cuda.empty_cache()
            half = len(ids) // 2
            return np.concatenate(
                [self._forward(ids[:half], mask[:half]), self._forward(ids[half:], mask[half:])]
            )

    def _columns(
        self, acc: dict[int, np.ndarray], fraction: np.ndarray, n_tok: np.ndarray
    ) -> Columns:
        cols: Columns = {}
        for k, head in enumerate(self.heads):
            values = acc[k]
            if head.kind == "regression":
                cols[head.name] = values[:, 0].astype(np.float32)
                continue
            top = values.argmax(axis=1)
            prob = values.max(axis=1).astype(np.float32)
            if head.kind == "domain":
                assert head.labels is not None
                cols["domain"] = np.array([head.labels[t] for t in top], dtype=object)
                cols["domain.prob"] = prob
                continue
            assert head.values is not None
            expected = np.clip(values @ head.values, *head.scale)  # clip: float rounding
            cols[head.name] = expected.astype(np.float32)
            cols[f"{head.name}.conf"] = prob
            if head.labels is not None:
                cols[f"{head.name}.label"] = np.array([head.labels[t] for t in top], dtype=object)
        cols["scored_fraction"] = fraction
        cols["n_tokens"] = n_tok
        return cols


def load_rater_dir(path: str | os.PathLike, **engine: Any) -> EncoderRater:
    """A rater from a folder holding ``rater.json`` (and, usually, the model files).

    ``engine`` goes to :meth:`EncoderRater.from_spec` (device, dtype, batch sizes).
    """
    return EncoderRater.from_spec(RaterSpec.load(path), **engine)
