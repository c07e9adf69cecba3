"""Rater training on real demo text with the real MiniLM: the labels format, the split,
class balancing, the multi-head loss, what a head-only rater learns (held-out, against
the majority/mean baseline), and that head / LoRA / full runs all write raters the
engine loads and that score exactly as the trained model does. The decoder SFT path
(SmolLM2-135M + LoRA) is marked slow."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest

from assay.errors import BadRecordError, ConfigError, ManifestMismatchError
from raters.labels import assign_splits, class_weights, read_labels, write_labels
from raters.train_config import TrainConfig
from raters.train_heads import HeadPlan, plan_heads

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

FAST = {"max_tokens": 64, "threads": 1, "seed": 0}


def demo_labels(records: list[dict], per_domain: int, seed: int = 0) -> list[dict]:
    """Label records from demo documents: quality 0/1 (junk or not), a regression
    target (log10 of the length, 1-5) and the source domain."""
    rng = random.Random(seed)
    by_domain: dict[str, list[dict]] = {}
    for r in records:
        by_domain.setdefault(r["domain"], []).append(r)
    out = []
    for domain in sorted(by_domain):
        for r in rng.sample(by_domain[domain], per_domain):
            out.append(
                {
                    "id": r["id"],
                    "text": r["text"],
                    "labels": {
                        "quality": 0 if domain == "junk" else 1,
                        "length": min(5.0, max(1.0, math.log10(len(r["text"])))),
                    },
                    "domain": domain,
                }
            )
    rng.shuffle(out)
    return out


@pytest.fixture(scope="module")
def labels_file(tmp_path_factory, demo_records):
    folder = tmp_path_factory.mktemp("labels")
    return write_labels(folder / "labels.jsonl", demo_labels(demo_records, 40))


@pytest.fixture(scope="module")
def head_rater(tmp_path_factory, labels_file):
    from raters.train import train_rater

    out = tmp_path_factory.mktemp("raters") / "mini"
    metrics = train_rater(labels_file, out, TrainConfig(method="head", **FAST))
    return out, metrics


# ---- the labels format -----------------------------------------------------------------


def test_labels_file_is_checked_line_by_line(tmp_path):
    path = tmp_path / "labels.jsonl"
    good = {"id": "a", "text": "x", "labels": {"q": 3}, "domain": "law"}
    cases = [
        ("not json", "not valid JSON"),
        (json.dumps({**good, "id": ""}), "'id' must be a non-empty string"),
        (json.dumps({**good, "labels": {"q": "4"}}), "'labels.q': expected a finite number"),
        (json.dumps({**good, "labels": {"q": True}}), "expected a finite number"),
        (json.dumps({**good, "labels": {"my.q": 1}}), "not usable as a criterion"),
        (json.dumps({**good, "labels": {}, "domain": None}), "nothing to learn"),
        (json.dumps(good), "id 'a' already on line 1"),
    ]
    for line, reason in cases:
        path.write_text(json.dumps(good) + "\n" + line + "\n")
        with pytest.raises(BadRecordError, match=reason) as info:
            read_labels(path)
        assert f"{path}:2:" in str(info.value)


def test_scales_come_from_the_manifest_when_there_is_one(tmp_path):
    path = tmp_path / "labels.jsonl"
    rows = [
        {"id": "a", "text": "x", "labels": {"q": 2, "r": 0.5}},
        {"id": "b", "text": "y", "labels": {"q": 4, "r": None}, "domain": "law"},
    ]
    write_labels(path, rows)
    ls = read_labels(path)
    assert ls.scales == {"q": (2.0, 4.0), "r": (0.5, 1.5)}  # observed (constant r widened)
    assert ls.integer == {"q": True, "r": False}
    assert np.isnan(ls.values[1, 1]) and ls.domains == [None, "law"] and ls.groups == ["a", "b"]
    manifest = {"kind": "labels", "rubric": {"scales": {"q": [1, 5], "r": [0, 1]}}}
    (tmp_path / "labels.manifest.json").write_text(json.dumps(manifest))
    assert read_labels(path).scales == {"q": (1.0, 5.0), "r": (0.0, 1.0)}


def test_split_is_by_group_and_stable():
    groups = [f"doc{i // 3}" for i in range(3000)]  # 1,000 groups of three lines
    split = assign_splits(groups, 0.1, 0.2, seed=7)
    for g in range(0, 3000, 3):
        assert len(set(split[g : g + 3])) == 1  # a group never straddles the split
    share = {s: float(np.mean(split == s)) for s in ("train", "val", "test")}
    assert abs(share["val"] - 0.1) < 0.03 and abs(share["test"] - 0.2) < 0.03
    # A line's side depends on its group and the seed only, not on the other lines.
    assert list(assign_splits(groups[300:600], 0.1, 0.2, seed=7)) == list(split[300:600])
    assert list(assign_splits(groups, 0.1, 0.2, seed=8)) != list(split)
    with pytest.raises(ConfigError, match="--val-frac"):
        assign_splits(groups, 0.6, 0.5, seed=0)


def test_class_weights_hand_values():
    y = np.array([0, 0, 0, 1])
    assert class_weights(y, 3) == pytest.approx([4 / 6, 2.0, 1.0])  # class 2 absent
    assert class_weights(y, 2, power=0.5) == pytest.approx([(4 / 6) ** 0.5, 2**0.5])
    assert class_weights(y, 2, power=0.0) == pytest.approx([1.0, 1.0])


def test_head_plans(labels_file):
    ls = read_labels(labels_file)
    plans = plan_heads(ls, {}, None, True)
    assert [(p.name, p.kind, p.start, p.end) for p in plans] == [
        ("quality", "classification", 0, 2),
        ("length", "regression", 2, 3),
        ("domain", "domain", 3, 13),
    ]
    assert plans[0].classes == (0.0, 1.0) and plans[2].labels[0] == "code"
    assert plan_heads(ls, {"quality": "regression"}, ("quality",), False)[0].kind == "regression"
    with pytest.raises(ConfigError, match="--head length=classification"):
        plan_heads(ls, {"length": "classification"}, None, True)
    with pytest.raises(ConfigError, match=r"not in the labels"):
        plan_heads(ls, {}, ("nosuch",), True)


def test_multihead_loss_hand_values():
    from raters.train_heads import multihead_loss

    plans = [
        HeadPlan("c", "classification", 0, 2, (0, 1), (0.0, 1.0), column=0),
        HeadPlan("r", "regression", 2, 3, (0.0, 4.0), column=1),
    ]
    logits = torch.tensor([[0.0, 0.0, 1.0], [2.0, 0.0, 3.0]])
    y = torch.tensor([[1.0, 3.0], [0.0, 1.0]])
    mask = torch.tensor([[True, True], [True, False]])
    w = torch.tensor([[3.0, 1.0], [1.0, 1.0]])
    total, per = multihead_loss(logits, y, mask, w, plans)
    ce = [math.log(2), math.log(1 + math.exp(-2))]
    assert float(per[0]) == pytest.approx((3 * ce[0] + ce[1]) / 4)
    assert float(per[1]) == pytest.approx(((1 - 3) / 4) ** 2)  # only row 0 has r
    assert float(total) == pytest.approx((float(per[0]) + float(per[1])) / 2)


def test_config_errors_name_the_flag(tmp_path, labels_file):
    from raters.train import train_rater

    for config, flag in [
        (TrainConfig(method="bogus"), "--method"),
        (TrainConfig(kind="decoder", method="head"), "--method head is not available"),
        (TrainConfig(val_frac=0), "--val-frac"),
        (TrainConfig(heads={"quality": "ordinal"}), "--head quality=ordinal"),
        (TrainConfig(pooling="max"), "--pooling"),
    ]:
        with pytest.raises(ConfigError, match=flag):
            train_rater(labels_file, tmp_path / "r", config)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ManifestMismatchError, match="not a rater written by"):
        train_rater(labels_file, tmp_path / "mine", TrainConfig())


# ---- what a head-only rater learns -----------------------------------------------------


def test_head_rater_beats_the_baselines_on_held_out_documents(head_rater):
    out, metrics = head_rater
    test = metrics["test"]
    assert metrics["splits"]["test"] >= 30
    quality, domain, length = test["quality"], test["domain"], test["length"]
    # Majority baselines: always "not junk" (quality) / the commonest domain.
    assert quality["macro_f1"] > quality["baseline"]["macro_f1"] + 0.25
    assert domain["accuracy"] > domain["baseline"]["accuracy"] + 0.4
    assert domain["macro_f1"] > domain["baseline"]["macro_f1"] + 0.4
    # Regression: ranks documents by length (from their first 64 tokens) and beats the mean.
    assert length["spearman"] > 0.5
    assert length["mae"] < 0.8 * length["baseline"]["mae_of_mean"]
    log = json.loads((out / "train_log.json").read_text())
    evals = log["history"]["evals"]
    assert evals[-1]["train_loss"] < evals[0]["train_loss"] / 2
    # Frozen backbone: each head kept the weights of its own best validation loss.
    for name, step in log["history"]["best_step_per_head"].items():
        assert step == min(evals, key=lambda e: e["val_per_head"][name])["step"]


def test_head_rater_folder_is_small_and_loads_in_the_engine(head_rater, labels_file):
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer

    from raters.hub import resolve_model
    from raters.registry import build_rater
    from raters.train_heads import predictions

    out, _ = head_rater
    assert sorted(p.name for p in out.iterdir()) == [
        "heads.json",
        "heads.safetensors",
        "manifest.json",
        "metrics.json",
        "rater.json",
        "train_log.json",
    ]
    assert (out / "heads.safetensors").stat().st_size < 30_000
    spec = json.loads((out / "rater.json").read_text())
    assert spec["format"] == "assay-heads" and spec["backbone"] == "all-minilm-l6-v2"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "rater" and manifest["method"] == "head"
    assert manifest["inputs"][0]["sha256"] == read_labels(labels_file).sha256

    rater = build_rater(str(out), device="cpu")
    texts = read_labels(labels_file).texts[:12]
    cols = rater.score(texts)
    assert {"quality", "quality.conf", "length", "domain", "domain.prob"} <= set(cols)

    # Independently: MiniLM, mean pooling over the first 64 tokens, the saved linear layer.
    base = resolve_model("all-minilm-l6-v2")
    tok, model = AutoTokenizer.from_pretrained(base), AutoModel.from_pretrained(base).eval()
    heads = load_file(str(out / "heads.safetensors"))
    with torch.inference_mode():
        enc = tok(texts, truncation=True, max_length=64, padding=True, return_tensors="pt")
        hidden = model(**enc).last_hidden_state
        m = enc["attention_mask"].unsqueeze(-1).float()
        pooled = (hidden * m).sum(1) / m.sum(1)
        logits = (pooled @ heads["weight"].T + heads["bias"]).numpy()
    plans = plan_heads(read_labels(labels_file), {}, None, True)
    want = predictions(logits, plans[0])
    np.testing.assert_allclose(cols["quality"], want["score"], atol=1e-4)
    np.testing.assert_allclose(cols["length"], predictions(logits, plans[1])["score"], atol=1e-4)
    dom = predictions(logits, plans[2])
    assert list(cols["domain"]) == [plans[2].labels[k] for k in dom["top"]]
    np.testing.assert_allclose(cols["domain.prob"], dom["conf"], atol=1e-4)


def test_heads_refuse_another_backbone(head_rater, tmp_path):
    import shutil

    from assay.errors import AssayError
    from raters.encoder import load_rater_dir

    out, _ = head_rater
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    meta = json.loads((copy / "heads.json").read_text())
    (copy / "heads.json").write_text(json.dumps(meta | {"backbone_sha256": "0" * 64}))
    with pytest.raises(AssayError, match="not the ones the heads"):
        load_rater_dir(copy, device="cpu")


# ---- LoRA and full fine-tuning ---------------------------------------------------------


@pytest.fixture(scope="module")
def small_labels(tmp_path_factory, demo_records):
    folder = tmp_path_factory.mktemp("small")
    return write_labels(folder / "labels.jsonl", demo_labels(demo_records, 6, seed=1))


@pytest.mark.parametrize("method,adapter", [("lora", "keep"), ("lora", "merge"), ("full", None)])
def test_lora_and_full_write_loadable_raters(tmp_path, small_labels, method, adapter):
    from safetensors.torch import load_file

    from raters.encoder import load_rater_dir
    from raters.hub import resolve_model
    from raters.train import train_rater

    out = tmp_path / method
    config = TrainConfig(method=method, adapter=adapter, epochs=1, max_tokens=32, threads=1)
    train_rater(small_labels, out, config)
    files = {p.name for p in out.iterdir()}
    base = load_file(str(resolve_model("all-minilm-l6-v2") / "model.safetensors"))
    if adapter == "keep":
        assert {"adapter_model.safetensors", "adapter_config.json"} <= files
        assert "backbone" not in files
        lora = load_file(str(out / "adapter_model.safetensors"))
        assert any("lora_B" in k and float(v.abs().max()) > 0 for k, v in lora.items())
    else:
        trained = load_file(str(out / "backbone" / "model.safetensors"))
        shared = [k for k in trained if k in base]  # base also holds a position_ids buffer
        assert len(shared) == len(trained) > 90
        changed = [k for k in shared if not torch.equal(base[k], trained[k])]
        assert changed, "the backbone did not change"
        if method == "lora":  # LoRA touches the attention projections it adapts, only
            assert all(("query" in k or "value" in k) for k in changed)
        else:
            assert any("intermediate" in k for k in changed)
    rater = load_rater_dir(out, device="cpu")
    ls = read_labels(small_labels)
    cols = rater.score(ls.texts[:6])
    assert cols["domain"].shape == (6,) and np.all(np.isfinite(cols["quality"]))
    if adapter == "keep":  # the engine merges at load: same numbers as the unmerged model
        from peft import PeftModel
        from transformers import AutoModel

        from raters.heads import heads_module, load_head
        from raters.train_loop import tokenize

        model = PeftModel.from_pretrained(
            AutoModel.from_pretrained(resolve_model("all-minilm-l6-v2")), out
        )
        module = heads_module(model, load_head(out, 384), "mean").eval()
        ids = tokenize(rater.tokenizer, ls.texts[:6], 32)
        with torch.inference_mode():
            logits = [
                module(torch.tensor([x]), torch.ones(1, len(x), dtype=torch.long)) for x in ids
            ]
        plan = plan_heads(ls, {}, None, True)[0]
        from raters.train_heads import predictions

        want = predictions(torch.cat(logits).numpy(), plan)["score"]
        np.testing.assert_allclose(cols["quality"], want, atol=1e-4)


def test_cli_train_and_eval(tmp_path, small_labels):
    import typer
    from typer.testing import CliRunner

    from assay.cli_raters import eval_rater, train_rater

    app = typer.Typer()
    app.command("train-rater")(train_rater)
    app.command("eval-rater")(eval_rater)
    runner = CliRunner()
    out = tmp_path / "cli-rater"
    args = ["train-rater", str(small_labels), "-o", str(out), "--max-tokens", "32"]
    result = runner.invoke(app, [*args, "--threads", "1", "--epochs", "30", "--val-frac", "0.3"])
    assert result.exit_code == 0, result.output
    assert "rater written" in result.output
    result = runner.invoke(app, [*args, "--method", "bogus"])
    assert result.exit_code == 2 and "error: --method must be one of" in result.output
    result = runner.invoke(app, [*args])
    assert result.exit_code == 2 and "pass --overwrite" in result.output
    report = tmp_path / "eval.json"
    result = runner.invoke(app, ["eval-rater", str(out), str(small_labels), "-o", str(report)])
    assert result.exit_code == 0, result.output
    assert "quality" in result.output and "calibration of domain" in result.output
    assert json.loads(report.read_text())["labels"]["trained_on_this_file"] is True


# ---- decoder SFT -----------------------------------------------------------------------


@pytest.mark.slow
def test_decoder_sft_learns_the_answer_template(tmp_path, demo_records):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from raters.hub import resolve_model
    from raters.rubrics import load_rubric
    from raters.train import train_rater
    from raters.train_decoder import encode, schema, user_prompt

    rubric = load_rubric("dataman")
    mapping = {"code": "coding", "legal": "law", "technical": "technology", "junk": "other"}
    rows, taken = [], dict.fromkeys(mapping, 0)
    for r in demo_records:  # three short documents of each of four source domains
        if r["domain"] in mapping and taken[r["domain"]] < 3 and len(r["text"]) < 3000:
            taken[r["domain"]] += 1
            score = 1 if r["domain"] == "junk" else 4
            labels = {c.name: score for c in rubric.criteria}
            rows.append(
                {"id": r["id"], "text": r["text"], "labels": labels, "domain": mapping[r["domain"]]}
            )
    assert len(rows) == 12
    path = write_labels(tmp_path / "labels.jsonl", rows)
    manifest = {
        "kind": "labels",
        "rubric": {"scales": rubric.scales(), "domains": [d.name for d in rubric.domains]},
    }
    (tmp_path / "labels.manifest.json").write_text(json.dumps(manifest))

    # The loss covers the answer only: the labels are -100 up to the answer's first token.
    ls = read_labels(path)
    s = schema(ls, None, True)
    assert s["domain"]["letters"][2] == "C" and s["domain"]["labels"][2] == "law"  # DataMan's
    tok = AutoTokenizer.from_pretrained(resolve_model("smollm2-135m"))
    ids, lab, _, positions = encode(tok, user_prompt(s), ls.texts[0], "C\n4\n4", 400)
    answer = [t for t in lab if t != -100]
    assert tok.decode(answer) == "C\n4\n4" + tok.eos_token
    assert lab[: len(ids) - len(answer)] == [-100] * (len(ids) - len(answer))
    assert [tok.decode([ids[p]]) for p in positions] == ["C", "4", "4"]

    out = tmp_path / "decoder"
    config = TrainConfig(
        kind="decoder", base="smollm2-135m", max_tokens=448, epochs=3, batch_size=4,
        val_frac=0.3, test_frac=0.0, threads=1, lora_r=8, lora_alpha=16,
    )  # fmt: skip
    train_rater(path, out, config)
    log = json.loads((out / "train_log.json").read_text())
    evals = log["history"]["evals"]
    assert (
        evals[-1]["val_loss"] < evals[0]["val_loss"]
        and evals[-1]["train_loss"] < evals[0]["train_loss"]
    )
    spec = json.loads((out / "rater.json").read_text())
    assert (
        spec["kind"] == "decoder"
        and spec["format"] == "peft-lora"
        and spec["base"] == "smollm2-135m"
    )
    assert spec["answer"]["lines"][0] == "domain" and spec["answer"]["lines"][-1] == "overall_score"
    assert [c["name"] for c in spec["criteria"]] == [c.name for c in rubric.criteria]
    assert "{text}" in spec["prompt"]["user"] and "[14]Overall Score:_/5" in spec["prompt"]["user"]
    base = AutoModelForCausalLM.from_pretrained(resolve_model("smollm2-135m"))
    model = PeftModel.from_pretrained(base, out)  # the adapter loads with peft
    assert any("lora_A" in n for n, _ in model.named_parameters())

    # The folder is a decoder rater: the engine reads the adapter's own distribution.
    import torch

    from raters.registry import build_rater

    rater = build_rater(str(out), backend="hf")
    texts = [row["text"] for row in rows[:3]]
    cols = rater.score(texts)
    prompts = rater.builder.build(texts).ids
    model.eval()
    with torch.no_grad():
        for d, prompt in enumerate(prompts):
            logits = model(input_ids=torch.tensor([prompt])).logits[0, -1]
            want = logits[rater.builder.slot_ids[0]].softmax(-1).numpy()
            np.testing.assert_allclose(cols["domain.probs"][d], want, atol=1e-4)
    assert set(cols["domain"]) <= set(spec["domain"]["labels"])
