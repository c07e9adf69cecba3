"""Each preset loads a model saved in its published layout and scores real text.

The published raters are too big to ship, so each test builds a tiny randomly
initialised model of the same architecture and layout (BERT regression for FineWeb-Edu,
ModernBERT 6-way for Meta-rater, DeBERTa-v2 in NeMo Curator's layout), saves it the way
it was released, binds the preset to it with ``with_model`` and compares the rater's
columns with the model's outputs computed here directly. The tokenizer is MiniLM's
(the only one available offline), saved beside each model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from assay.errors import AssayError, ConfigError
from raters.encoder import EncoderRater
from raters.spec import RaterSpec

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

PRESETS = Path(__file__).resolve().parents[2] / "configs" / "raters"
VOCAB = 30522  # MiniLM's tokenizer
TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2}
NEMO_DOMAINS = json.loads((PRESETS / "nemo-domain.json").read_text())["domain"]["labels"]


def save_tokenizer(folder: Path) -> None:
    from raters.hub import resolve_model

    transformers.AutoTokenizer.from_pretrained(resolve_model("all-minilm-l6-v2")).save_pretrained(
        folder
    )


def preset(name: str, model: Path, **kwargs) -> EncoderRater:
    spec = RaterSpec.load(PRESETS / f"{name}.json").with_model(model, **kwargs)
    return EncoderRater.from_spec(spec, device="cpu")


def hf_logits(folder: Path, texts: list[str], max_tokens: int) -> np.ndarray:
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(folder).eval()
    rows = []
    with torch.inference_mode():
        for text in texts:
            enc = tok(text, truncation=True, max_length=max_tokens, return_tensors="pt")
            enc.pop("token_type_ids", None)
            rows.append(model(**enc).logits[0].double().numpy())
    return np.stack(rows)


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def texts(demo_sample) -> list[str]:
    # Short documents, so that every arm reads them whole and the comparison is exact.
    return [d["text"] for d in demo_sample if len(d["text"]) < 1500][:8]


# ---- FineWeb-Edu: BERT, num_labels=1, regression -----------------------------------------


def test_fineweb_edu_layout(tmp_path, texts):
    config = transformers.BertConfig(
        vocab_size=VOCAB, intermediate_size=64, num_labels=1, problem_type="regression", **TINY
    )
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(config)
    torch.nn.init.normal_(model.classifier.weight, std=1.0)
    torch.nn.init.constant_(model.classifier.bias, 2.5)  # land inside [0, 5] mostly
    model.save_pretrained(tmp_path)
    save_tokenizer(tmp_path)

    out = preset("fineweb-edu", tmp_path).score(texts)
    assert set(out) == {"educational_value", "scored_fraction", "n_tokens"}
    x = hf_logits(tmp_path, texts, 512)[:, 0]
    np.testing.assert_allclose(out["educational_value"], np.clip(x, 0, 5), atol=1e-5)
    assert ((out["educational_value"] > 0) & (out["educational_value"] < 5)).any()


# ---- Meta-rater PRRC: ModernBERT, num_labels=6, one model per dimension ------------------


@pytest.fixture(scope="module")
def modernbert_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("modernbert")
    config = transformers.ModernBertConfig(
        vocab_size=VOCAB,
        intermediate_size=64,
        num_labels=6,
        pad_token_id=0,
        bos_token_id=101,
        eos_token_id=102,
        cls_token_id=101,
        sep_token_id=102,
        **TINY,
    )
    torch.manual_seed(1)
    model = transformers.ModernBertForSequenceClassification(config)
    torch.nn.init.normal_(model.classifier.weight, std=1.0)
    model.save_pretrained(folder)
    save_tokenizer(folder)
    return folder


@pytest.mark.parametrize("dim", ["professionalism", "readability", "reasoning", "cleanliness"])
def test_meta_rater_layout(modernbert_dir, texts, dim):
    out = preset(f"meta-rater-{dim}", modernbert_dir).score(texts)
    assert set(out) == {dim, f"{dim}.conf", "scored_fraction", "n_tokens"}
    p = softmax(hf_logits(modernbert_dir, texts, 2048))
    np.testing.assert_allclose(out[dim], p @ np.arange(6), atol=1e-5)
    np.testing.assert_allclose(out[f"{dim}.conf"], p.max(1), atol=1e-5)


# ---- NeMo Curator: DeBERTa-v2 backbone as model.*, dropout, fc over the first token ------


class NemoLike(torch.nn.Module):
    """The module NeMo Curator's classifiers save (a backbone, dropout, ``fc``)."""

    def __init__(self, backbone_config, n_labels: int) -> None:
        super().__init__()
        self.model = transformers.AutoModel.from_config(backbone_config)
        self.dropout = torch.nn.Dropout(0.2)
        self.fc = torch.nn.Linear(backbone_config.hidden_size, n_labels)

    def forward(self, input_ids, attention_mask):
        h = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return torch.softmax(self.fc(self.dropout(h))[:, 0, :], dim=1)


@pytest.fixture(scope="module")
def backbone_dir(tmp_path_factory) -> Path:
    """The backbone's config only (microsoft/deberta-v3-base style, tiny)."""
    folder = tmp_path_factory.mktemp("deberta-backbone")
    transformers.DebertaV2Config(
        vocab_size=VOCAB,
        intermediate_size=64,
        relative_attention=True,
        position_buckets=256,
        max_relative_positions=-1,
        pos_att_type=["p2c", "c2p"],
        position_biased_input=False,
        norm_rel_ebd="layer_norm",
        share_att_key=True,
        type_vocab_size=0,
        **TINY,
    ).save_pretrained(folder)
    return folder


def save_nemo(folder: Path, backbone: Path, labels: list[str], base_model: str, seed: int):
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    module = NemoLike(transformers.AutoConfig.from_pretrained(backbone), len(labels)).eval()
    torch.nn.init.normal_(module.fc.weight, std=1.0)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: v.contiguous() for k, v in module.state_dict().items()}, folder / "model.safetensors"
    )
    config = {
        "base_model": base_model,
        "fc_dropout": 0.2,
        "max_len": 1024,
        "id2label": {str(i): name for i, name in enumerate(labels)},
        "label2id": {name: i for i, name in enumerate(labels)},
    }
    (folder / "config.json").write_text(json.dumps(config))
    save_tokenizer(folder)
    return module


def nemo_probs(module: NemoLike, folder: Path, texts: list[str], max_tokens: int) -> np.ndarray:
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    rows = []
    with torch.inference_mode():
        for text in texts:
            enc = tok(text, truncation=True, max_length=max_tokens, return_tensors="pt")
            rows.append(module(enc["input_ids"], enc["attention_mask"])[0].double().numpy())
    return np.stack(rows)


def test_nemo_quality_layout(tmp_path, backbone_dir, texts):
    labels = ["High", "Low", "Medium"]  # NeMo's order comes from config.json id2label
    module = save_nemo(tmp_path, backbone_dir, labels, "microsoft/deberta-v3-base", seed=2)

    with pytest.raises(ConfigError, match="backbone: 'microsoft/deberta-v3-base'"):
        preset("nemo-quality", tmp_path)
    rater = preset("nemo-quality", tmp_path, backbone=str(backbone_dir))
    out = rater.score(texts)
    assert set(out) == {"quality", "quality.conf", "quality.label", "scored_fraction", "n_tokens"}
    p = nemo_probs(module, tmp_path, texts, 1024)
    np.testing.assert_allclose(out["quality"], p @ np.array([2.0, 0.0, 1.0]), atol=1e-5)
    np.testing.assert_allclose(out["quality.conf"], p.max(1), atol=1e-5)
    assert list(out["quality.label"]) == [labels[k] for k in p.argmax(1)]
    assert ((out["quality"] >= 0) & (out["quality"] <= 2)).all()


def test_nemo_base_model_may_be_a_local_folder(tmp_path, backbone_dir, texts):
    save_nemo(tmp_path, backbone_dir, ["High", "Low", "Medium"], str(backbone_dir), seed=3)
    out = preset("nemo-quality", tmp_path).score(texts[:2])
    assert set(out["quality.label"]) <= {"High", "Medium", "Low"}


def test_nemo_domain_layout(tmp_path, backbone_dir, texts):
    module = save_nemo(tmp_path, backbone_dir, NEMO_DOMAINS, str(backbone_dir), seed=4)
    out = preset("nemo-domain", tmp_path).score(texts)
    assert set(out) == {"domain", "domain.prob", "scored_fraction", "n_tokens"}
    p = nemo_probs(module, tmp_path, [t[:2000] for t in texts], 512)
    assert list(out["domain"]) == [NEMO_DOMAINS[k] for k in p.argmax(1)]
    np.testing.assert_allclose(out["domain.prob"], p.max(1), atol=1e-5)


def test_nemo_domain_refuses_labels_in_another_order(tmp_path, backbone_dir):
    shuffled = NEMO_DOMAINS[1:] + NEMO_DOMAINS[:1]
    save_nemo(tmp_path, backbone_dir, shuffled, str(backbone_dir), seed=5)
    with pytest.raises(ConfigError, match=r"domain\.labels differ from the model's id2label"):
        preset("nemo-domain", tmp_path)


def test_nemo_weights_for_another_backbone_are_refused(tmp_path, backbone_dir, tmp_path_factory):
    save_nemo(tmp_path, backbone_dir, ["High", "Low", "Medium"], str(backbone_dir), seed=6)
    other = tmp_path_factory.mktemp("wider")
    config = transformers.AutoConfig.from_pretrained(backbone_dir)
    config.hidden_size, config.intermediate_size = 64, 128
    config.save_pretrained(other)
    with pytest.raises(AssayError, match="weights do not fit the backbone"):
        preset("nemo-quality", tmp_path, backbone=str(other))
