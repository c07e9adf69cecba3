"""The ``assay-heads`` model layout: an encoder backbone, a pooling, one linear layer.

One ``Linear(hidden, num_labels)`` gives every logit at once (criteria and domain read
their slices, as ``rater.json`` says). A rater folder holds::

    rater.json           format "assay-heads", model ".", backbone <named model | folder>
    heads.safetensors    weight [num_labels, hidden], bias [num_labels]
    heads.json           {"pooling", "hidden_size", "num_labels", "adapter",
                          "backbone_sha256", "method"}
    adapter/             optional: a peft LoRA adapter of the backbone (merged at load)
    backbone/            optional: a fine-tuned backbone (rater.json backbone "backbone")

With a frozen backbone (``train-rater --method head``) the folder is a few KB and names
the backbone (``all-minilm-l6-v2``, shipped in a package); ``heads.json`` records the
backbone's weight hash, so heads are never silently applied to another backbone.

Pooling: ``mean`` over the attention mask (what sentence-transformers does for
all-MiniLM-L6-v2, whose embeddings were trained that way), ``cls`` (the first token),
or ``mean_cls``, both side by side (2 x hidden inputs to the heads). A mean is nearly
blind to word order; the first token's state is not, and a frozen MiniLM gives a linear
head clearly better quality figures with both (see raters/released/assay-mini-v1).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from assay.errors import AssayError, ConfigError

HEADS_FILE = "heads.safetensors"
HEADS_META = "heads.json"
POOLINGS = ("mean", "cls", "mean_cls")


def pool(hidden: Any, mask: Any, mode: str) -> Any:
    """``[batch, seq, dim]`` hidden states -> ``[batch, dim]`` (float32)."""
    import torch

    hidden = hidden.float()
    if mode == "cls":
        return hidden[:, 0]
    m = mask.unsqueeze(-1).to(hidden.dtype)
    mean = (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)
    return torch.cat([mean, hidden[:, 0]], dim=-1) if mode == "mean_cls" else mean


def pooled_width(hidden_size: int, mode: str) -> int:
    """Width of the pooled vector the heads read."""
    return 2 * hidden_size if mode == "mean_cls" else hidden_size


def heads_module(backbone: Any, head: Any, pooling: str) -> Any:
    """``module(input_ids, attention_mask) -> logits``; ``module.embed`` gives the pooled
    vector the head reads."""
    import torch

    if pooling not in POOLINGS:
        raise ConfigError(f"--pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")

    class PooledHeads(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = backbone
            self.head = head
            self.pooling = pooling

        def embed(self, input_ids: Any, attention_mask: Any) -> Any:
            out = self.backbone(input_ids=input_ids, attention_mask=attention_mask)
            return pool(out.last_hidden_state, attention_mask, self.pooling)

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            pooled = self.embed(input_ids, attention_mask)
            return self.head(pooled.to(self.head.weight.dtype))

    return PooledHeads()


def save_heads(folder: Path, head: Any, meta: dict[str, Any]) -> None:
    """Write ``heads.safetensors`` and ``heads.json`` into ``folder``."""
    from safetensors.torch import save_file

    tensors = {
        "weight": head.weight.detach().float().cpu().contiguous(),
        "bias": head.bias.detach().float().cpu().contiguous(),
    }
    save_file(tensors, str(folder / HEADS_FILE), metadata={"format": "assay-heads"})
    (folder / HEADS_META).write_text(json.dumps(meta, indent=2) + "\n")


def read_meta(model_dir: Path) -> dict[str, Any]:
    path = model_dir / HEADS_META
    if not path.is_file() or not (model_dir / HEADS_FILE).is_file():
        raise ConfigError(
            f"model: {model_dir} has no {HEADS_META} + {HEADS_FILE} (assay-heads layout)",
            hint="train one with assay train-rater --method head",
        )
    meta = json.loads(path.read_text())
    if meta.get("pooling") not in POOLINGS:
        raise ConfigError(f"{path}: pooling must be one of {POOLINGS}, got {meta.get('pooling')!r}")
    return meta


def load_head(model_dir: Path, width: int) -> Any:
    """The linear layer of a rater folder, checked against the pooled vector's width."""
    import torch
    from safetensors.torch import load_file

    state = load_file(str(model_dir / HEADS_FILE))
    if set(state) != {"weight", "bias"} or state["weight"].ndim != 2:
        raise AssayError(f"{model_dir / HEADS_FILE}: expected 'weight' [labels, hidden] + 'bias'")
    num_labels, reads = state["weight"].shape
    if reads != width:
        raise AssayError(
            f"{model_dir / HEADS_FILE}: heads read {reads}-d vectors, the backbone and "
            f"pooling give {width}-d",
            hint="the rater's backbone is not the one its heads were trained on",
        )
    head = torch.nn.Linear(reads, num_labels)
    head.load_state_dict(state)
    return head
