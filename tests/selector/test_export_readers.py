"""The exports read back by the trainers' own libraries, and each blend's weights drawn by
the trainer's own sampler come out at the token shares asked for.

- Megatron: megatron-core 0.16's ``IndexedDataset`` opens every exported prefix and yields
  the selected documents' token ids (fresh tokenisation, EOD after each); the blend files
  parse with ``get_blend_from_list`` and build ``GPTDataset``s blended by
  ``BlendedDataset`` on CPU, whose per-sample draws are the blend's token shares; a
  mixture exported without paths names the exported prefixes, even for group names with
  spaces and slashes.
- HF: ``datasets.load_from_disk`` reads every row; ``interleave_datasets`` with the
  blend's per-document probabilities draws documents whose tokens are the token shares.
- MDS: mosaicml-streaming's ``StreamingDataset`` (local, no remote) reads every sample;
  ``Stream(proportion=...)`` of the blend draws the token shares.

OLMo-core's reader and mixture are tested in ``test_export_olmo_core.py``. The libraries
live in ``.verify/`` (see ``conftest.py``); a test skips only where one cannot be imported.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from selector.export.run import export_selection
from selector.mix_export import export_mixture
from selector.mixture import Mixture
from selector.select import read_selection

TOKENIZER = "all-minilm-l6-v2"
SEQ = 8  # Megatron sample length: small, so the demo groups make many samples


@pytest.fixture(scope="module")
def meg(selection, tok_dir, tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("meg") / "megatron"
    return root, export_selection(selection, root, "megatron", tokenizer=str(tok_dir))


def _texts(selection: Path) -> dict[str, list[dict]]:
    """Each group's selected rows, in the selection's order."""
    manifest, _ = read_selection(selection)
    return {
        g["name"]: [r for f in g["files"] for r in pq.read_table(selection / f).to_pylist()]
        for g in manifest["groups"]
        if g["files"]
    }


def _expected_ids(selection: Path, tok_dir: Path) -> dict[str, list[list[int]]]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tok_dir)
    tok.model_max_length = 1 << 40
    out = {}
    for name, rows in _texts(selection).items():
        ids = tok([r["text"] for r in rows], add_special_tokens=False)["input_ids"]
        out[name] = [[*d, tok.eos_token_id] for d in ids]
    return out


def _megatron_blend(megatron, tok_dir: Path, blend, samples: int):
    """megatron-core's train split over ``blend`` (``get_blend_from_list`` output)."""
    import warnings

    tokenizer = megatron.MegatronTokenizer.from_pretrained(
        str(tok_dir), metadata_path={"library": "huggingface"}
    )
    config = megatron.GPTDatasetConfig(
        random_seed=1234,
        sequence_length=SEQ,
        blend=blend,
        split="1,0,0",
        tokenizer=tokenizer,
        reset_position_ids=False,
        reset_attention_mask=False,
        eod_mask_loss=False,
        path_to_cache=None,  # nothing cached, so no torch.distributed rank is asked for
    )
    builder = megatron.BlendedMegatronDatasetBuilder(
        megatron.GPTDataset, [samples, 0, 0], lambda: True, config
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train, _, _ = builder.build()
    return train


def _check_megatron_draws(train, prefixes: list[str], weights: list[float], stream) -> None:
    """Per-sample draws are the weights (Megatron's greedy blend: within one sample each),
    every sample holds SEQ + 1 tokens of its own prefix's documents, so the token shares
    are the weights."""
    n = len(train)
    counts = np.bincount(np.asarray(train.dataset_index), minlength=len(prefixes))
    total = sum(weights)
    for d, w in enumerate(weights):
        assert abs(counts[d] - n * w / total) <= 1.0, prefixes[d]
    for i in range(0, n, 7):
        item = train[i]
        d = int(item["dataset_id"])
        assert len(item["tokens"]) == SEQ
        assert set(item["tokens"].tolist()) <= stream[prefixes[d]]


def test_megatron_core_reads_every_prefix(megatron, selection, tok_dir, meg):
    root, m = meg
    expected = _expected_ids(selection, tok_dir)
    assert sorted(g["name"] for g in m["groups"]) == sorted(expected)
    for g in m["groups"]:
        prefix = str(root / g["path"])
        assert megatron.IndexedDataset.exists(prefix)
        ds = megatron.IndexedDataset(prefix)
        assert ds.index.dtype is np.uint16 and len(ds) == g["docs"]
        assert ds.document_indices.tolist() == list(range(g["docs"] + 1))
        assert [ds[i].tolist() for i in range(len(ds))] == expected[g["name"]]
        assert [a.tolist() for a in ds[0 : len(ds)]] == expected[g["name"]]  # one slice read
        assert sum(ds.sequence_lengths.tolist()) == g["tokens"]


def test_megatron_blend_builds_in_megatron_core(megatron, tok_dir, meg):
    """The export's own blend: the files' token shares (EOD included), so one pass over the
    blend's samples reads each prefix about once."""
    root, m = meg
    blend_dir = root / "blend" / "megatron"
    tokens = (blend_dir / "data_args.txt").read_text().split()
    prefixes, weights = megatron.get_blend_from_list(tokens)
    for split in json.loads((blend_dir / "blend.json").read_text()).values():
        assert megatron.get_blend_from_list(split) == (prefixes, weights)
    nemo = json.loads((root / "blend" / "nemo" / "paths.json").read_text())
    assert megatron.get_blend_from_list(nemo["train"]) == (prefixes, weights)
    by_prefix = {str((root / g["path"]).resolve()): g for g in m["groups"]}
    assert sorted(prefixes) == sorted(by_prefix)
    total = m["counts"]["tokens"]
    for p, w in zip(prefixes, weights, strict=True):
        assert w == pytest.approx(by_prefix[p]["tokens"] / total, abs=2e-6)
    stream = {p: set(np.fromfile(p + ".bin", dtype="<u2").tolist()) for p in prefixes}
    samples = total // SEQ
    train = _megatron_blend(megatron, tok_dir, (prefixes, weights), samples)
    _check_megatron_draws(train, prefixes, weights, stream)
    counts = np.bincount(np.asarray(train.dataset_index), minlength=len(prefixes))
    for d, p in enumerate(prefixes):  # one pass: each prefix's tokens drawn about once
        assert abs(counts[d] * SEQ - by_prefix[p]["tokens"]) <= 2 * SEQ, p


def _uniform(mixture: Mixture, paths: dict[str, str], tokens_docs: dict[str, tuple[int, int]]):
    """The selection's groups, asked for in equal token shares, at ``paths``, with the
    counts of the data that lies there."""
    groups = [
        dataclasses.replace(
            g,
            weight=1.0 / len(paths),
            tokens_available=tokens_docs[g.name][0],
            docs_available=tokens_docs[g.name][1],
            tokens_selected=None,
            docs_selected=None,
            paths=[paths[g.name]],
        )
        for g in mixture.groups
        if g.name in paths
    ]
    return dataclasses.replace(mixture, groups=groups, budget_tokens=None)


def test_megatron_weights_are_token_shares(megatron, selection, tok_dir, meg, tmp_path):
    """``assay mix export -f megatron`` of a mixture unlike the files' sizes: megatron-core
    draws samples (SEQ tokens each) at the mixture's token shares, repeating small groups."""
    root, m = meg
    _, mixture = read_selection(selection)
    paths = {g["name"]: str((root / g["path"]).resolve()) for g in m["groups"]}
    asked = _uniform(mixture, paths, {g["name"]: (g["tokens"], g["docs"]) for g in m["groups"]})
    export_mixture(asked, "megatron", tmp_path / "mix")
    tokens = (tmp_path / "mix" / "data_args.txt").read_text().split()
    prefixes, weights = megatron.get_blend_from_list(tokens)
    assert weights == pytest.approx([1.0 / len(paths)] * len(paths), abs=2e-6)
    stream = {p: set(np.fromfile(p + ".bin", dtype="<u2").tolist()) for p in prefixes}
    train = _megatron_blend(megatron, tok_dir, (prefixes, weights), 600)
    _check_megatron_draws(train, prefixes, weights, stream)
    shares = np.bincount(np.asarray(train.dataset_index)) * SEQ / (len(train) * SEQ)
    assert shares == pytest.approx(weights, abs=1.0 / len(train) + 1e-9)


@pytest.fixture(scope="module")
def odd_selection(annotated_sample, tmp_path_factory) -> Path:
    """The demo sample selected by a group column whose names Megatron prefixes cannot hold
    as they are (``topic <i>/<domain>``: a space and a slash)."""
    import shutil

    import pyarrow as pa

    from selector.select import SelectConfig, select

    root = tmp_path_factory.mktemp("odd")
    annotated = root / "annotated"
    shutil.copytree(annotated_sample, annotated)
    shards = sorted(annotated.glob("part-*.parquet"))
    domains = sorted({d for f in shards for d in pq.read_table(f)["domain"].to_pylist()})
    topic = {d: f"topic {i}/{d}" for i, d in enumerate(domains)}
    for f in shards:
        table = pq.read_table(f)
        names = pa.array([topic[d] for d in table["domain"].to_pylist()])
        pq.write_table(table.set_column(table.schema.get_field_index("domain"), "domain", names), f)
    cfg = SelectConfig(
        budget_tokens=3000, score="heuristics.rps_doc_frac_unique_words", group_by="domain",
        tokenizer=TOKENIZER,
    )  # fmt: skip
    select(annotated, root / "selected", cfg)
    return root / "selected"


def test_megatron_mixture_names_the_exported_prefixes(megatron, odd_selection, tok_dir, tmp_path):
    """``assay mix export -f megatron`` of a searched mixture (no paths: ``{group}`` filled
    from the names) points at the prefixes ``assay export -f megatron`` wrote for the same
    groups, whatever characters the names hold; megatron-core opens and blends them."""
    root = tmp_path / "meg"
    m = export_selection(odd_selection, root, "megatron", tokenizer=str(tok_dir))
    assert any(" " in g["name"] and "/" in g["name"] for g in m["groups"])
    _, mixture = read_selection(odd_selection)
    searched = dataclasses.replace(
        mixture, groups=[dataclasses.replace(g, paths=[]) for g in mixture.groups if g.weight > 0]
    )
    template = f"{root.resolve()}/{{group}}_text_document"
    for fmt in ("megatron", "nemo"):
        export_mixture(searched, fmt, tmp_path / fmt, path_template=template)
    tokens = (tmp_path / "megatron" / "data_args.txt").read_text().split()
    prefixes, weights = megatron.get_blend_from_list(tokens)
    nemo = json.loads((tmp_path / "nemo" / "paths.json").read_text())
    assert megatron.get_blend_from_list(nemo["train"]) == (prefixes, weights)
    assert sorted(prefixes) == sorted(str((root / g["path"]).resolve()) for g in m["groups"])
    assert all(megatron.IndexedDataset.exists(p) for p in prefixes)
    stream = {p: set(np.fromfile(p + ".bin", dtype="<u2").tolist()) for p in prefixes}
    train = _megatron_blend(megatron, tok_dir, (prefixes, weights), 400)
    _check_megatron_draws(train, prefixes, weights, stream)


def test_hf_export_loads_every_row(selection, tmp_path):
    from datasets import load_from_disk

    m = export_selection(selection, tmp_path / "hf", "hf")
    rows = _texts(selection)
    for g in m["groups"]:
        ds = load_from_disk(str(tmp_path / "hf" / g["path"]))
        assert ds["id"] == [r["id"] for r in rows[g["name"]]]
        assert ds["text"] == [r["text"] for r in rows[g["name"]]]
        assert len(ds) == g["docs"]


def _hf_token_shares(interleave: dict, draws: int) -> dict[str, float]:
    """Documents drawn by ``interleave_datasets`` with the blend's probabilities, each
    dataset repeated without end (``IterableDataset.repeat(None)``), the first ``draws``
    taken: each group's share of their tokens."""
    from datasets import interleave_datasets, load_from_disk

    sets = [
        load_from_disk(p).select_columns(["n_tokens"]).to_iterable_dataset().repeat(None)
        for p in interleave["datasets"]
    ]
    mixed = interleave_datasets(
        [ds.map(lambda r, i=i: {"group": i}) for i, ds in enumerate(sets)],
        probabilities=interleave["probabilities"],
        seed=interleave["seed"],
        stopping_strategy=interleave["stopping_strategy"],
    )
    tokens = np.zeros(len(sets))
    for row in mixed.take(draws):
        tokens[row["group"]] += row["n_tokens"]
    return dict(zip(interleave["names"], (tokens / tokens.sum()).tolist(), strict=True))


def _tolerance(rows: dict[str, list[dict]], share: dict[str, float], draws: int) -> dict:
    """Five standard deviations of each group's token share when ``draws`` documents are
    drawn with the per-document probabilities that give ``share`` (the delta method on
    ``sum L_i (1[g_i = g] - share_g)``, L_i the length of draw i), plus the most a group's
    unfinished pass over its documents (read in order) can add."""
    lengths = {g: np.array([r["n_tokens"] for r in rows[g]], dtype=float) for g in share}
    per_doc = {g: share[g] / lengths[g].mean() for g in share}
    z = sum(per_doc.values())
    p = {g: v / z for g, v in per_doc.items()}
    mean = sum(p[g] * lengths[g].mean() for g in share)  # tokens per draw
    second = {g: float((lengths[g] ** 2).mean()) for g in share}  # E[L^2] within a group
    out = {}
    for g in share:
        w = share[g]
        var = sum(p[h] * second[h] * ((1 - w) ** 2 if h == g else w**2) for h in share)
        n = lengths[g]
        partial = np.abs(np.cumsum(n) - np.arange(1, len(n) + 1) * n.mean()).max()
        out[g] = 5 * np.sqrt(var / draws) / mean + partial / (draws * mean)
    return out


def test_hf_probabilities_give_the_token_shares(selection, tmp_path):
    """The export's blend (one pass: the files' shares) and a uniform mixture over the same
    folders both come out at their token shares when ``interleave_datasets`` draws."""
    m = export_selection(selection, tmp_path / "hf", "hf")
    rows = _texts(selection)
    tokens = {g: sum(r["n_tokens"] for r in rs) for g, rs in rows.items()}
    total = sum(tokens.values())
    interleave = json.loads((tmp_path / "hf" / "blend" / "hf" / "interleave.json").read_text())
    draws = 6000
    got = _hf_token_shares(interleave, draws)
    want = {g: tokens[g] / total for g in interleave["names"]}
    tol = _tolerance(rows, want, draws)
    for g in want:
        assert abs(got[g] - want[g]) <= tol[g], (g, got[g], want[g], tol[g])
    _, mixture = read_selection(selection)
    paths = {g["name"]: str((tmp_path / "hf" / g["path"]).resolve()) for g in m["groups"]}
    asked = _uniform(mixture, paths, {g: (tokens[g], len(rows[g])) for g in paths})
    export_mixture(asked, "hf", tmp_path / "mix")
    interleave = json.loads((tmp_path / "mix" / "interleave.json").read_text())
    got = _hf_token_shares(interleave, draws)
    want = dict.fromkeys(paths, 1.0 / len(paths))
    tol = _tolerance(rows, want, draws)
    for g in want:
        assert abs(got[g] - want[g]) <= tol[g], (g, got[g], want[g], tol[g])


def test_streaming_reads_every_mds_sample(streaming, selection, tmp_path):
    m = export_selection(selection, tmp_path / "mds", "mds")
    rows = _texts(selection)
    for g in m["groups"]:
        local = str(tmp_path / "mds" / g["path"])
        ds = streaming.StreamingDataset(local=local, remote=None, shuffle=False, batch_size=1)
        assert len(ds) == g["docs"]
        got = [ds[i] for i in range(len(ds))]
        assert [s["id"] for s in got] == [str(r["id"]) for r in rows[g["name"]]]
        assert [s["text"] for s in got] == [r["text"] for r in rows[g["name"]]]
        assert sorted(s["id"] for s in ds) == sorted(str(r["id"]) for r in rows[g["name"]])


def test_streaming_proportions_give_the_token_shares(streaming, selection, tmp_path):
    """The MDS blend's per-document ``proportion``s, drawn by StreamingDataset over an
    epoch of many samples, give each stream its token share."""
    export_selection(selection, tmp_path / "mds", "mds")
    rows = _texts(selection)
    owner = {str(r["id"]): (g, r["n_tokens"]) for g, rs in rows.items() for r in rs}
    doc = yaml.safe_load((tmp_path / "mds" / "blend" / "mds" / "streams.yaml").read_text())
    streams = doc["train_loader"]["dataset"]["streams"]
    assert sorted(streams) == sorted(rows)
    tokens = {g: sum(r["n_tokens"] for r in rs) for g, rs in rows.items()}
    total = sum(tokens.values())
    epoch = 6000
    ds = streaming.StreamingDataset(
        streams=[
            streaming.Stream(local=s["local"], proportion=s["proportion"]) for s in streams.values()
        ],
        epoch_size=epoch,
        shuffle=True,
        shuffle_seed=7,
        batch_size=1,
    )
    got = dict.fromkeys(tokens, 0)
    for sample in ds:
        group, n = owner[sample["id"]]
        got[group] += n
    drawn = sum(got.values())
    want = {g: tokens[g] / total for g in tokens}
    tol = _tolerance(rows, want, epoch)
    for g in want:
        assert abs(got[g] / drawn - want[g]) <= tol[g], (g, got[g] / drawn, want[g], tol[g])
