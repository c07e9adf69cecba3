"""Batched exact probing: the one-step influence of B documents at once with ``torch.func``.

The sequential probe (``Prober.probe``) steps a real optimizer on one document, measures the
reference loss, and restores the weights. Here the same arithmetic runs on B documents
together, with the weights held as tensors outside the model (``functional_call``):

1. per-document gradients and losses: ``vmap(grad_and_value(doc_loss))`` over documents
   right-padded to one width; causal attention means padding after a document cannot reach
   its tokens, and the padded targets are masked out of the mean, so each document's loss
   and gradient are those of the unpadded document;
2. per-document clipping to total norm 1, the formula of ``clip_grad_norm_``;
3. per-document one-step weights: SGD (``p - lr * g``) or the closed-form single step of
   Adam/AdamW from the optimizer's state (``adam_steps``), the update of
   ``torch.optim.AdamW``'s single-tensor path, including coupled/decoupled weight decay,
   ``amsgrad`` and ``maximize``;
4. the reference loss under each of the B weight sets (``losses_after``): a ``vmap`` over
   the weight sets when the reference is small (<= ``VMAP_REF_TOKENS`` predicted tokens),
   else each set loaded into the model in turn and measured by the sequential path's own
   forward. Measured on CPU, hidden-64 proxy, B=16, ms per document (vmap / one at a
   time): 64 tokens 1.4 / 3.1, 256 tokens 6.1 / 5.9, 510 tokens 14.6 / 9.3, 1022 tokens
   23.3 / 13.5: a large reference is already a large batch, and vmap adds copies and
   loops over B inside CPU attention (no batching rule for it).

Results equal the sequential path's up to float32 rounding (different reduction orders in
the gradients and the vmap'd reference); the tests assert it. Memory: B copies of the
weights and of the gradients, and B x the activations of one reference batch under vmap.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# Reference size (predicted tokens) up to which vmap over the weight sets is faster than
# one forward per set (measured crossover ~256 on CPU, see above)
VMAP_REF_TOKENS = 256


@dataclass
class AdamParam:
    """One parameter's Adam step inputs, read from a constructed ``torch.optim`` AdamW."""

    lr: float
    beta1: float
    beta2: float
    eps: float
    weight_decay: float
    decoupled: bool
    amsgrad: bool
    maximize: bool
    step: float
    """Steps already taken (0 for fresh state); this probe is step ``step + 1``."""
    exp_avg: Any
    exp_avg_sq: Any
    max_exp_avg_sq: Any = None


def adam_plan(opt: Any, params: Sequence[Any]) -> list[AdamParam]:
    """Step inputs of every parameter of ``opt`` (an AdamW after ``load_state_dict``), in
    the order of ``params``; a parameter without state starts fresh, as torch does."""
    import torch

    group_of = {id(p): g for g in opt.param_groups for p in g["params"]}
    plan = []
    for p in params:
        g = group_of[id(p)]
        st = opt.state.get(p, {})
        zeros = torch.zeros_like(p, memory_format=torch.preserve_format)
        step = st.get("step", 0.0)
        plan.append(
            AdamParam(
                lr=float(g["lr"]),
                beta1=float(g["betas"][0]),
                beta2=float(g["betas"][1]),
                eps=float(g["eps"]),
                weight_decay=float(g["weight_decay"]),
                # torch >= 2.6 keeps AdamW as Adam(decoupled_weight_decay=True)
                decoupled=bool(g.get("decoupled_weight_decay", True)),
                amsgrad=bool(g.get("amsgrad", False)),
                maximize=bool(g.get("maximize", False)),
                step=float(step.item() if torch.is_tensor(step) else step),
                exp_avg=st.get("exp_avg", zeros).detach(),
                exp_avg_sq=st.get("exp_avg_sq", zeros).detach(),
                max_exp_avg_sq=st["max_exp_avg_sq"].detach() if "max_exp_avg_sq" in st else zeros,
            )
        )
    return plan


def doc_gradients(
    model: Any, names: Sequence[str], params: Sequence[Any], docs: Sequence[Sequence[int]]
) -> tuple[list[Any], Any]:
    """Per-document gradients (one ``(B, *p.shape)`` tensor per parameter) and mean
    per-token losses ``(B,)`` of ``docs`` (token ids, each at least 2 long)."""
    import torch
    from torch.func import functional_call, grad_and_value, vmap

    width = max(len(d) for d in docs)
    ids = torch.zeros((len(docs), width), dtype=torch.long)
    valid = torch.zeros((len(docs), width), dtype=torch.float32)
    for i, d in enumerate(docs):
        ids[i, : len(d)] = torch.tensor(d)
        valid[i, : len(d)] = 1.0
    device = params[0].device
    ids, valid = ids.to(device), valid.to(device)

    def loss(ps: tuple[Any, ...], x: Any, v: Any) -> Any:
        logits = functional_call(model, dict(zip(names, ps, strict=True)), (x[None],))
        logits = logits.logits[0, :-1].float()
        ce = torch.nn.functional.cross_entropy(logits, x[1:], reduction="none")
        w = v[1:]
        return (ce * w).sum() / w.sum()

    grads, losses = vmap(grad_and_value(loss), in_dims=(None, 0, 0))(tuple(params), ids, valid)
    return list(grads), losses


def clip_per_doc(grads: Sequence[Any], max_norm: float = 1.0) -> list[Any]:
    """Scale each document's gradient to total L2 norm <= ``max_norm``, with the formula of
    ``torch.nn.utils.clip_grad_norm_`` (coefficient ``max_norm / (norm + 1e-6)``, at most 1)."""
    import torch

    norms = torch.stack([g.flatten(1).norm(dim=1) for g in grads], dim=1).norm(dim=1)
    coef = torch.clamp(max_norm / (norms + 1e-6), max=1.0)
    return [g * coef.view(-1, *([1] * (g.dim() - 1))) for g in grads]


def sgd_steps(params: Sequence[Any], grads: Sequence[Any], lr: float) -> list[Any]:
    """Plain SGD, one step per document: ``(B, *p.shape)`` weights."""
    return [p[None] - lr * g for p, g in zip(params, grads, strict=True)]


def adam_steps(
    params: Sequence[Any], grads: Sequence[Any], plan: Sequence[AdamParam], used: Sequence[bool]
) -> list[Any]:
    """One Adam/AdamW step per document from a shared state, in closed form (the update of
    ``torch.optim.adam._single_tensor_adam``). Parameters with ``used`` False got no
    gradient in the sequential path, so torch skips them there; they stay put here too."""
    import torch

    out = []
    for p, g, s, u in zip(params, grads, plan, used, strict=True):
        if not u:
            out.append(p[None].expand(g.shape[0], *p.shape))
            continue
        g = -g if s.maximize else g
        p0 = p[None]
        if s.weight_decay != 0:
            if s.decoupled:
                p0 = p0 * (1 - s.lr * s.weight_decay)
            else:
                g = g + s.weight_decay * p[None]
        m = torch.lerp(s.exp_avg[None], g, 1 - s.beta1)
        v = s.exp_avg_sq[None] * s.beta2 + (1 - s.beta2) * g * g
        if s.amsgrad:
            v = torch.maximum(s.max_exp_avg_sq[None], v)
        step = s.step + 1
        bc1 = 1 - s.beta1**step
        bc2_sqrt = (1 - s.beta2**step) ** 0.5
        denom = v.sqrt() / bc2_sqrt + s.eps
        out.append(p0 - (s.lr / bc1) * m / denom)
    return out


def used_parameters(model: Any, params: Sequence[Any], sample: Sequence[int]) -> list[bool]:
    """Which ``params`` get a gradient from a document at all. torch's optimizers skip a
    parameter whose ``grad`` is None (Adam would still move one with a zero gradient), and
    the graph is the same for every document, so one real backward on ``sample`` tells."""
    import torch

    x = torch.tensor([list(sample)], device=params[0].device)
    model.zero_grad(set_to_none=True)
    model(input_ids=x, labels=x).loss.backward()
    used = [p.grad is not None for p in params]
    model.zero_grad(set_to_none=True)
    return used


def one_step_weights(
    model: Any,
    names: Sequence[str],
    start: Sequence[Any],
    docs: Sequence[Sequence[int]],
    *,
    lr: float,
    adam: tuple[Sequence[AdamParam], Sequence[bool]] | None = None,
) -> tuple[list[Any], np.ndarray]:
    """The weights after one clipped step on each of ``docs`` (one ``(B, *p.shape)`` tensor
    per parameter), and each document's loss before the step.

    Args:
        model: the causal LM (its own weights are not read or changed).
        names, start: the trainable parameters' names and start values.
        docs: token ids, each at least 2 long.
        lr: SGD learning rate (Adam's comes with ``adam``).
        adam: ``(adam_plan(...), used_parameters(...))`` for an Adam/AdamW step; None = SGD.
    """
    with _no_fallback_warning():
        grads, losses = doc_gradients(model, names, start, docs)
    grads = clip_per_doc(grads, 1.0)
    if adam is None:
        return sgd_steps(start, grads, lr), losses.detach().double().cpu().numpy()
    return adam_steps(start, grads, *adam), losses.detach().double().cpu().numpy()


def reference_losses(
    model: Any, names: Sequence[str], stepped: Sequence[Any], batches: Sequence[tuple[Any, ...]]
) -> np.ndarray:
    """Mean loss per predicted token over the reference ``batches`` (``ids, labels, mask``)
    under each of the B weight sets in ``stepped``: ``(B,)`` float64."""
    import torch
    from torch.func import functional_call, vmap

    b = stepped[0].shape[0]
    total = np.zeros(b, dtype=np.float64)
    count = 0
    with torch.no_grad():
        for ids, labels, mask in batches:
            target = labels[:, 1:]

            def summed(
                ps: tuple[Any, ...], ids: Any = ids, mask: Any = mask, target: Any = target
            ) -> Any:
                params = dict(zip(names, ps, strict=True))
                out = functional_call(model, params, (), {"input_ids": ids, "attention_mask": mask})
                logits = out.logits[:, :-1]
                return torch.nn.functional.cross_entropy(
                    logits.reshape(-1, logits.size(-1)).float(),
                    target.reshape(-1),
                    ignore_index=-100,
                    reduction="sum",
                )

            total += vmap(summed)(tuple(stepped)).double().cpu().numpy()
            count += int((target != -100).sum())
    return total / count


def losses_after(
    model: Any,
    names: Sequence[str],
    params: Sequence[Any],
    start: Sequence[Any],
    stepped: Sequence[Any],
    ref_batches: Sequence[tuple[Any, ...]],
    measure: Any,
) -> list[float]:
    """The reference loss under each weight set of ``stepped``: with ``reference_losses``
    (vmap) when the reference is small, else with ``measure_each`` (``measure()``, the
    sequential path's own function, under each set loaded in turn)."""
    tokens = sum(int((labels[:, 1:] != -100).sum()) for _, labels, _ in ref_batches)
    if tokens <= VMAP_REF_TOKENS:
        with _no_fallback_warning():
            return [float(x) for x in reference_losses(model, names, stepped, ref_batches)]
    return measure_each(params, start, stepped, measure)


def measure_each(
    params: Sequence[Any], start: Sequence[Any], stepped: Sequence[Any], measure: Any
) -> list[float]:
    """``measure()`` with the live ``params`` set to each of the B weight sets in turn, then
    ``start`` copied back (exactly, as the sequential path restores)."""
    import torch

    out = []
    with torch.no_grad():
        for i in range(stepped[0].shape[0]):
            for p, w in zip(params, stepped, strict=True):
                p.copy_(w[i])
            out.append(float(measure()))
        for p, p0 in zip(params, start, strict=True):
            p.copy_(p0)
    return out


@contextlib.contextmanager
def _no_fallback_warning() -> Iterator[None]:
    # vmap has no batching rule for CPU flash attention and loops over B inside it; that
    # is measured and accounted for above, so torch's warning would only be noise
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="There is a performance drop")
        yield


__all__ = [
    "AdamParam",
    "adam_plan",
    "adam_steps",
    "clip_per_doc",
    "doc_gradients",
    "losses_after",
    "measure_each",
    "one_step_weights",
    "reference_losses",
    "sgd_steps",
    "used_parameters",
]
