"""Decoder raters: supervised fine-tuning of a small causal LM on an answer template.

DataMan's student recipe: the prompt lists the criteria (and the lettered domains); the
answer is the domain letter on the first line, then one whole-number score per line in
the listed order, then the end-of-turn token. The loss covers the answer tokens only
(prompt tokens are labelled -100). LoRA by default (peft), ``--method full`` trains
every weight. Long texts keep their first and last tokens around ``...``, as DataMan
does (947 + 947 tokens there).

The output folder is a decoder rater for the decoder engine: the adapter
(``adapter_model.safetensors`` + ``adapter_config.json``; or a full model with
``--adapter merge`` / ``--method full``) and a ``rater.json`` of kind ``decoder``::

    {"name", "version", "kind": "decoder",
     "format": "peft-lora" | "hf-causal-lm", "model": ".", "base": "smollm2-135m",
     "prompt": {"system": "...", "user": "...{text}...", "chat_template": true},
     "answer": {"lines": ["domain", "accuracy", ...], "separator": "\\n",
                "end": "<|im_end|>"},
     "criteria": [{"name": "accuracy", "label": "Accuracy", "scale": [1, 5],
                   "values": [1, 2, 3, 4, 5], "line": 1}, ...],
     "domain": {"labels": ["medicine", ...], "letters": ["A", ...], "line": 0} | null,
     "max_tokens": 1024, "text_tokens": 700, "long_doc": "head_tail", "description"}

Line ``k`` of the answer holds ``answer.lines[k]``: a score is one token (every value
of a scale up to 9 is a single digit token in the tokenizers we use; checked at
training time), so the engine reads its expected value sum_k p(k) * k at that line's
first token. ``metrics.json`` reports, per criterion, the teacher-forced accuracy of
the most likely score token and the MAE of that expected value on held-out examples.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from assay import manifest as mf
from assay.errors import AssayError, ConfigError
from raters.labels import SPLITS, LabelSet, assign_splits, read_labels
from raters.train_config import TrainConfig
from raters.train_loop import Log, fit, pad
from raters.train_output import (
    describe,
    folder_size,
    rater_manifest,
    rater_name,
    staging_dir,
    swap_in,
)

SYSTEM = "You are a careful, consistent rater of text data for language-model training."
CUT = "\n...\n"


def schema(labels: LabelSet, criteria: tuple[str, ...] | None, with_domain: bool) -> dict:
    """What the student is asked: criteria (with scales) and lettered domains."""
    names = list(criteria) if criteria is not None else list(labels.criteria)
    unknown = [c for c in names if c not in labels.criteria]
    if unknown:
        raise ConfigError(f"--criteria {unknown}: not in the labels ({labels.criteria})")
    crits = []
    for line, name in enumerate(names, start=1 if with_domain else 0):
        lo, hi = labels.scales[name]
        if not labels.integer[name] or not float(lo).is_integer() or not float(hi).is_integer():
            raise ConfigError(
                f"criterion {name!r}: a decoder rater answers whole-number scores; the labels "
                f"hold fractions (scale [{lo}, {hi}])",
                hint="train an encoder rater (--kind encoder) for continuous labels",
            )
        values = list(range(int(lo), int(hi) + 1))
        label = name.replace("_", " ").title()
        scale = [int(lo), int(hi)]
        crits.append({"name": name, "label": label, "scale": scale, "values": values})
        crits[-1]["line"] = line
    domain = None
    domains = _domain_order(labels) if with_domain else []
    if len(domains) > 26:
        raise ConfigError(f"{len(domains)} domains: a decoder rater answers one letter (<= 26)")
    if len(domains) >= 2:
        letters = [chr(ord("A") + k) for k in range(len(domains))]
        domain = {"labels": domains, "letters": letters, "line": 0}
    if not crits and domain is None:
        raise ConfigError("nothing to train: no criteria and no domains")
    lines = (["domain"] if domain else []) + [c["name"] for c in crits]
    return {"criteria": crits, "domain": domain, "lines": lines}


def _domain_order(labels: LabelSet) -> list[str]:
    """The rubric's domain order when the labels' manifest names it (DataMan's letters
    stay DataMan's letters), else sorted."""
    seen = labels.domain_labels()
    rubric_order = (labels.rubric or {}).get("domains") or []
    if rubric_order and set(seen) <= set(rubric_order):
        return list(rubric_order)
    return seen


def user_prompt(s: dict) -> str:
    """The student prompt (``{text}`` is filled per document)."""
    n = len(s["criteria"])
    parts = [
        f"Rate the text below on {n} criteria" + (" and name its domain." if s["domain"] else "."),
        "Text: {text}",
    ]
    if s["domain"]:
        choices = ", ".join(
            f"{k}. {v}" for k, v in zip(s["domain"]["letters"], s["domain"]["labels"], strict=True)
        )
        parts.append(f"Domain (one letter: {choices}):_")
    for i, c in enumerate(s["criteria"], 1):
        parts.append(f"[{i}]{c['label']}:_/{c['scale'][1]:g}")
    parts.append(
        "Answer with "
        + ("the domain letter on the first line, then " if s["domain"] else "")
        + "one score per line, in this order."
    )
    return "\n".join(parts)


def answer(s: dict, labels: LabelSet, i: int) -> str | None:
    """The target answer of row ``i``, or None when a criterion or the domain is missing."""
    lines = []
    if s["domain"]:
        d = labels.domains[i]
        if d is None:
            return None
        lines.append(s["domain"]["letters"][s["domain"]["labels"].index(d)])
    for c in s["criteria"]:
        v = labels.values[i, labels.criteria.index(c["name"])]
        if np.isnan(v):
            return None
        lines.append(str(int(v)))
    return "\n".join(lines)


def answer_tokens(tokenizer: Any, target: str) -> tuple[list[int], list[int]]:
    """Token ids of ``target`` + the end token, and the index of each line's token;
    refuses an answer whose lines are not one token each (the engine reads line k's
    score distribution at exactly one position)."""
    enc = tokenizer(
        target + tokenizer.eos_token, add_special_tokens=False, return_offsets_mapping=True
    )
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    positions, start = [], 0
    for line in target.split("\n"):
        hits = [k for k, (a, b) in enumerate(offsets) if a == start and b == start + len(line)]
        if len(hits) != 1:
            raise ConfigError(
                f"answer line {line!r} is not one token in this tokenizer",
                hint="a decoder rater needs one token per score and domain letter",
            )
        positions.append(hits[0])
        start += len(line) + 1
    return ids, positions


def encode(
    tokenizer: Any, template: str, text: str, target: str, max_tokens: int
) -> tuple[list[int], list[int], int, list[int]]:
    """``(input_ids, labels, text_tokens, line_positions)``: chat-formatted prompt +
    answer + end token, labels -100 on the prompt, and the position of each answer
    line's token; the text keeps head and tail tokens to fit ``max_tokens``."""

    def prompt_ids(body: str) -> list[int]:
        messages = [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": template.replace("{text}", body)},
        ]
        rendered = tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        return tokenizer(rendered, add_special_tokens=False)["input_ids"]

    answer_ids, lines = answer_tokens(tokenizer, target)
    overhead = len(prompt_ids("")) + len(answer_ids)
    budget = max_tokens - overhead - 8  # 8: the cut mark and re-tokenisation at the seams
    if budget < 16:
        raise ConfigError(
            f"--max-tokens {max_tokens}: the prompt and answer alone take {overhead} tokens",
            hint=f"use --max-tokens >= {overhead + 64}",
        )
    text_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(text_ids) > budget:
        head = budget // 2
        text = (
            tokenizer.decode(text_ids[:head])
            + CUT
            + tokenizer.decode(text_ids[len(text_ids) - (budget - head) :])
        )
    ids = prompt_ids(text)
    if len(ids) + len(answer_ids) > max_tokens:  # seams re-tokenised longer: trim the text
        ids = ids[: max_tokens - len(answer_ids)]
    positions = [len(ids) + k for k in lines]
    return ids + answer_ids, [-100] * len(ids) + answer_ids, min(len(text_ids), budget), positions


def score_token_ids(tokenizer: Any, s: dict) -> dict[str, list[int]]:
    """Token id of each score value per criterion (and of each domain letter, under
    ``domain``); refuses multi-token scores."""
    out = {}
    if s["domain"]:
        out["domain"] = [
            tokenizer(k, add_special_tokens=False)["input_ids"][0] for k in s["domain"]["letters"]
        ]
    for c in s["criteria"]:
        ids = []
        for v in c["values"]:
            tok = tokenizer(str(v), add_special_tokens=False)["input_ids"]
            if len(tok) != 1:
                raise ConfigError(
                    f"criterion {c['name']!r}: score {v} is {len(tok)} tokens in this "
                    "tokenizer; a decoder rater needs one token per score",
                    hint="use a scale of single digits (e.g. 1-5 or 0-9)",
                )
            ids.append(tok[0])
        out[c["name"]] = ids
    return out


def train_decoder_rater(
    labels_path: str | Path, out: Path, cfg: TrainConfig, *, log: Log = lambda m: None
) -> dict[str, Any]:
    """SFT a decoder on the labels' answer template; write the rater folder ``out``."""
    started = time.perf_counter()
    labels = read_labels(labels_path)
    s = schema(labels, cfg.criteria, cfg.domain)
    template = user_prompt(s)
    split = assign_splits(labels.groups, cfg.val_frac, cfg.test_frac, cfg.seed)
    targets = [answer(s, labels, i) for i in range(len(labels))]
    usable = np.array([t is not None for t in targets])
    rows = {k: np.flatnonzero((split == k) & usable) for k in SPLITS}
    if len(rows["train"]) == 0 or len(rows["val"]) == 0:
        raise ConfigError(
            f"decoder SFT needs train and val examples with every criterion labelled; "
            f"got {len(rows['train'])} train, {len(rows['val'])} val",
            hint="label more documents or change --val-frac",
        )
    log(
        f"{int(usable.sum()):,} usable examples ({int((~usable).sum())} lack a label): "
        f"{len(rows['train'])} train, {len(rows['val'])} val, {len(rows['test'])} test"
    )

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from raters.device import pick_device
    from raters.hub import NAMED, resolve_model, weights_sha256

    device = pick_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    base_dir = resolve_model(cfg.base)
    tokenizer = AutoTokenizer.from_pretrained(base_dir, local_files_only=True)
    if tokenizer.chat_template is None or tokenizer.eos_token is None:
        raise AssayError(f"--base {cfg.base}: no chat template or end token (not a chat model?)")
    scores = score_token_ids(tokenizer, s)
    model = AutoModelForCausalLM.from_pretrained(
        base_dir, local_files_only=True, dtype=torch.float32
    )
    model.to(device)
    if cfg.method == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(
            model,
            LoraConfig(
                task_type="CAUSAL_LM",
                r=cfg.lora_r,
                lora_alpha=cfg.lora_alpha,
                lora_dropout=cfg.lora_dropout,
                target_modules=list(cfg.lora_targets) if cfg.lora_targets else None,
            ),
        )
    assert cfg.max_tokens is not None
    encoded: dict[int, tuple[list[int], list[int], list[int]]] = {}
    text_tokens = 0
    for i in np.flatnonzero(usable):
        ids, lab, n_text, pos = encode(
            tokenizer, template, labels.texts[i], targets[i], cfg.max_tokens
        )
        encoded[int(i)] = (ids, lab, pos)
        text_tokens = max(text_tokens, n_text)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def loss_of(batch: np.ndarray) -> tuple[Any, list]:
        input_ids, attention = pad([encoded[int(i)][0] for i in batch], pad_id)
        target, _ = pad([encoded[int(i)][1] for i in batch], -100)
        loss = answer_loss(model, input_ids.to(device), attention.to(device), target.to(device))
        return loss, [loss]

    def batches(epoch: int) -> list[np.ndarray]:
        rng = np.random.default_rng([cfg.seed, epoch])
        order = rng.permutation(rows["train"])
        size = cfg.batch_size or 4
        return [order[k : k + size] for k in range(0, len(order), size)]

    groups = [{"params": [p for p in model.parameters() if p.requires_grad], "lr": cfg.lr}]
    t0 = time.perf_counter()
    history = fit(model, cfg, groups, batches, loss_of, rows["val"], ["answer"], log)
    train_s = time.perf_counter() - t0
    model.eval()
    metrics: dict[str, Any] = {"splits": {k: len(rows[k]) for k in SPLITS}}
    for k in ("val", "test"):
        if len(rows[k]):
            examples = [encoded[int(i)] for i in rows[k]]
            metrics[k] = teacher_forced_report(model, examples, s, scores, labels, rows[k])

    staging = staging_dir(out)
    fmt = "hf-causal-lm"
    if cfg.method == "lora" and cfg.adapter == "keep":
        model.save_pretrained(staging)
        (staging / "README.md").unlink(missing_ok=True)  # peft's empty model-card template
        fmt = "peft-lora"
    else:
        merged = model.merge_and_unload() if cfg.method == "lora" else model
        merged.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
    base_ref = cfg.base if cfg.base in NAMED else str(base_dir.resolve())
    spec = {
        "name": rater_name(cfg, out.name),
        "version": cfg.version,
        "kind": "decoder",
        "format": fmt,
        "model": ".",
        "base": base_ref if fmt == "peft-lora" else None,
        "prompt": {"system": SYSTEM, "user": template, "chat_template": True},
        "answer": {"lines": s["lines"], "separator": "\n", "end": tokenizer.eos_token},
        "criteria": s["criteria"],
        "domain": s["domain"],
        "max_tokens": cfg.max_tokens,
        "text_tokens": text_tokens,
        "long_doc": "head_tail",
        "description": describe(cfg, labels),
    }
    mf.write_json_atomic(staging / "rater.json", spec)
    timings = {
        "train_s": train_s,
        "train_s_per_1k_examples": train_s / max(history["examples_seen"], 1) * 1000,
        "total_s": time.perf_counter() - started,
    }
    mf.write_json_atomic(
        staging / "train_log.json",
        {
            "config": cfg.to_dict(),
            "schema": s,
            "history": history,
            "timings": {k: round(v, 4) for k, v in timings.items()},
            "threads": torch.get_num_threads(),
        },
    )
    mf.write_json_atomic(staging / "metrics.json", metrics)
    manifest = rater_manifest(spec, cfg, labels, rows, base_ref, base_dir, timings, staging)
    manifest["base"]["weights_sha256"] = weights_sha256(base_dir)
    mf.write_json_atomic(staging / "manifest.json", manifest)
    swap_in(staging, out)
    log(f"wrote {out} ({folder_size(out) / 1e6:.2f} MB) in {timings['total_s']:.0f} s")
    return metrics


def answer_logits(model: Any, input_ids: Any, attention: Any, positions: Any) -> Any:
    """Next-token logits at ``positions`` (a boolean ``[batch, seq]`` mask) only.

    The LM head (576 x 49,152 for SmolLM2) over every prompt position would cost a
    fifth of the compute and most of the memory, to be thrown away: the loss reads the
    answer tokens only."""
    core = model.get_base_model() if hasattr(model, "get_base_model") else model
    hidden = core.base_model(input_ids=input_ids, attention_mask=attention).last_hidden_state
    return core.get_output_embeddings()(hidden[positions]).float()


def answer_loss(model: Any, input_ids: Any, attention: Any, labels: Any) -> Any:
    """Mean cross-entropy over the answer tokens (labels != -100), as the model's own
    ``labels=`` loss computes it (position t predicts token t + 1)."""
    import torch
    import torch.nn.functional as F

    predict = torch.zeros_like(labels, dtype=torch.bool)
    predict[:, :-1] = labels[:, 1:] != -100
    logits = answer_logits(model, input_ids, attention, predict)
    return F.cross_entropy(logits, labels[:, 1:][labels[:, 1:] != -100])


def teacher_forced_report(
    model: Any,
    examples: list[tuple[list[int], list[int], list[int]]],
    s: dict,
    scores: dict[str, list[int]],
    labels: LabelSet,
    rows: np.ndarray,
) -> dict[str, Any]:
    """Per criterion, on held-out rows: accuracy of the most likely score token and MAE /
    Spearman of the expected score sum_k p(k) * k over the score tokens; domain: accuracy
    of the most likely letter. Each answer line is read given the true lines before it
    (teacher forcing), so these are upper bounds of free decoding."""
    import torch

    from raters.metrics import accuracy, mae, spearman

    names = [c["name"] for c in s["criteria"]]
    got: dict[str, dict[str, list]] = {n: {"y": [], "top": [], "exp": []} for n in names}
    domain_hits: list[bool] = []
    with torch.inference_mode():
        for (ids, _, positions), row in zip(examples, rows, strict=True):
            device = next(model.parameters()).device
            x = torch.tensor([ids], device=device)
            at = torch.zeros_like(x, dtype=torch.bool)
            at[0, [p - 1 for p in positions]] = True  # the logits that predict each line
            rows = answer_logits(model, x, torch.ones_like(x), at).cpu()
            logits = {p: rows[k] for k, p in enumerate(positions)}
            if s["domain"]:
                p = torch.softmax(logits[positions[0]][scores["domain"]], dim=-1)
                truth = s["domain"]["labels"].index(labels.domains[row])
                domain_hits.append(int(p.argmax()) == truth)
            for c in s["criteria"]:
                p = torch.softmax(logits[positions[c["line"]]][scores[c["name"]]], dim=-1)
                values = np.array(c["values"], dtype=np.float64)
                got[c["name"]]["y"].append(labels.values[row, labels.criteria.index(c["name"])])
                got[c["name"]]["top"].append(values[int(p.argmax())])
                got[c["name"]]["exp"].append(float(p.numpy() @ values))
    report: dict[str, Any] = {
        name: {
            "n": len(v["y"]),
            "accuracy": accuracy(v["y"], v["top"]),
            "mae": mae(v["y"], v["exp"]),
            "spearman": spearman(v["y"], v["exp"]),
        }
        for name, v in got.items()
    }
    if domain_hits:
        report["domain"] = {"n": len(domain_hits), "accuracy": float(np.mean(domain_hits))}
    report["reading"] = "teacher-forced; expected score over the score tokens"
    return report
