"""``assay export-merge``: Megatron prefixes into one, read back by megatron-core's own
``IndexedDataset`` (the merge is the inputs' documents in order, boundaries and dtype
kept), written atomically, refused when dtypes or recorded tokenizers differ."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from assay.errors import ConfigError
from selector.export import merge as merge_mod
from selector.export.megatron import MegatronWriter, read_documents, read_index
from selector.export.merge import merge_prefixes
from selector.export.run import export_selection
from selector.select import SelectConfig, select

TOKENIZER = "all-minilm-l6-v2"


def _write(prefix: Path, docs: list[list[int]], vocab_size: int = 30_522) -> Path:
    with MegatronWriter(prefix, vocab_size=vocab_size) as w:
        for d in docs:
            w.add(d)
    return prefix


def _docs(seed: int, n: int, vocab: int = 30_522) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, vocab, size=int(rng.integers(0, 40))).tolist() for _ in range(n)]


@pytest.fixture(scope="module")
def exports(annotated_sample, tmp_path_factory) -> list[tuple[Path, dict]]:
    """Two selections of the same pool (as two runs of a distributed job would make),
    exported as Megatron with the same tokenizer."""
    root = tmp_path_factory.mktemp("runs")
    out = []
    for i, budget in enumerate((3000, 5000)):
        cfg = SelectConfig(
            budget_tokens=budget,
            score="heuristics.rps_doc_frac_unique_words",
            group_by="domain",
            tokenizer=TOKENIZER,
            seed=i,
        )
        select(annotated_sample, root / f"sel{i}", cfg)
        m = export_selection(root / f"sel{i}", root / f"run{i}", "megatron", append_eod=False)
        out.append((root / f"run{i}", m))
    return out


def test_merged_exports_read_back_by_megatron_core(megatron, exports, tmp_path):
    (run0, m0), (run1, m1) = exports
    group = sorted({g["path"] for g in m0["groups"]} & {g["path"] for g in m1["groups"]})[0]
    inputs = [run0 / group, run1 / group]
    out = tmp_path / "merged" / group
    record = merge_prefixes(inputs, out)
    assert record["tokenizer"]["name"] == TOKENIZER and record["tokenizer"]["vocabulary"]
    want = [megatron.IndexedDataset(str(p)) for p in inputs]
    want_docs = [d.tolist() for ds in want for d in ds[0 : len(ds)]]
    got = megatron.IndexedDataset(str(out))
    assert got.index.dtype is np.uint16 and len(got) == len(want_docs)
    assert got.document_indices.tolist() == list(range(len(want_docs) + 1))
    assert [got[i].tolist() for i in range(len(got))] == want_docs
    assert record["counts"] == {"docs": len(want_docs), "tokens": sum(map(len, want_docs))}
    side = json.loads(Path(f"{out}.merge.json").read_text())
    assert side["kind"] == "export-merge" and len(side["inputs"]) == 2
    assert not list(out.parent.glob(".*.tmp"))
    # a merge of merges keeps the record: the merged prefix merges again with a third
    again = merge_prefixes([out, run0 / group], tmp_path / "twice" / group)
    assert again["counts"]["docs"] == len(want_docs) + len(want[0])
    # the whole export: every group of both runs into one prefix, read by megatron-core
    every = [run / g["path"] for run, m in exports for g in m["groups"]]
    merge_prefixes(every, tmp_path / "all_text_document")
    all_docs = [d.tolist() for p in every for d in read_documents(p)]
    ds = megatron.IndexedDataset(str(tmp_path / "all_text_document"))
    assert [a.tolist() for a in ds[0 : len(ds)]] == all_docs


def test_merge_by_hand_streams_in_chunks(megatron, tmp_path, monkeypatch):
    """Small chunks and index reads of 3 entries: boundaries across chunks, empty
    documents and an empty prefix survive; the layout matches the documented one."""
    monkeypatch.setattr(merge_mod, "CHUNK", 5)
    monkeypatch.setattr(merge_mod, "ITEMS", 3)
    parts = [
        _write(tmp_path / "a", _docs(0, 7)),
        _write(tmp_path / "b", []),
        _write(tmp_path / "c", [[], [1, 2], []]),
        _write(tmp_path / "d", _docs(1, 11)),
    ]
    want = [d for p in parts for d in (x.tolist() for x in read_documents(p))]
    merge_prefixes(parts, tmp_path / "m.bin", check_tokenizer=False)  # .bin is stripped
    got = megatron.IndexedDataset(str(tmp_path / "m"))
    assert [got[i].tolist() for i in range(len(got))] == want
    index = read_index(tmp_path / "m")
    assert index.doc_index.tolist() == list(range(len(want) + 1))
    sizes = [Path(f"{p}.bin").stat().st_size for p in parts]
    assert (tmp_path / "m.bin").stat().st_size == sum(sizes)
    assert (tmp_path / "m.bin").read_bytes() == b"".join(
        Path(f"{p}.bin").read_bytes() for p in parts
    )


def test_merge_refuses_mismatches(exports, tmp_path, tok_eos):
    small = _write(tmp_path / "small", [[1, 2, 3]])
    big = _write(tmp_path / "big", [[70_000]], vocab_size=100_000)
    with pytest.raises(ConfigError, match="different dtypes") as e:
        merge_prefixes([small, big], tmp_path / "x", check_tokenizer=False)
    assert e.value.hint and "uint16" in e.value.hint
    assert not list(tmp_path.glob("x*")) and not list(tmp_path.glob(".x*"))
    (run0, m0), _ = exports
    group = run0 / m0["groups"][0]["path"]
    with pytest.raises(ConfigError, match="no recorded tokenizer"):
        merge_prefixes([group, small], tmp_path / "y")  # a prefix of another tool
    merge_prefixes([group, small], tmp_path / "y", check_tokenizer=False)
    with pytest.raises(ConfigError, match="--overwrite"):
        merge_prefixes([group, small], tmp_path / "y", check_tokenizer=False)
    with pytest.raises(ConfigError, match="one of the inputs"):
        merge_prefixes([group, small], small, check_tokenizer=False)
    # the same selection tokenised with another EOD setting / vocabulary: refused
    sel = Path(m0["inputs"]["selection"])
    eod = export_selection(sel, tmp_path / "eod", "megatron", tokenizer=str(tok_eos))
    other = tmp_path / "eod" / eod["groups"][0]["path"]
    with pytest.raises(ConfigError, match="tokenised differently") as e:
        merge_prefixes([group, other], tmp_path / "z")
    assert "--tokenizer" in e.value.hint
    with pytest.raises(ConfigError, match="not found"):
        merge_prefixes([tmp_path / "nothing"], tmp_path / "w")


@pytest.fixture(scope="module")
def tok_eos(tmp_path_factory) -> Path:
    from transformers import AutoTokenizer

    from raters.hub import resolve_model

    tok = AutoTokenizer.from_pretrained(resolve_model(TOKENIZER))
    tok.eos_token = "[SEP]"
    path = tmp_path_factory.mktemp("tok") / "minilm-eos"
    tok.save_pretrained(path)
    return path


def test_cli_export_merge(exports, tmp_path):
    from typer.testing import CliRunner

    from assay.cli import app

    prefixes = [str(run / g["path"]) for run, m in exports for g in m["groups"]]
    runner = CliRunner()
    result = runner.invoke(app, ["export-merge", *prefixes, "-o", str(tmp_path / "all")])
    assert result.exit_code == 0, result.output
    assert "merged" in result.output and "uint16" in result.output
    docs = sum(g["docs"] for _, m in exports for g in m["groups"])
    assert len(read_index(tmp_path / "all").lengths) == docs
    result = runner.invoke(app, ["export-merge", *prefixes, "-o", str(tmp_path / "all")])
    assert result.exit_code != 0 and "--overwrite" in result.output
    # `assay export SELECTED -o OUT -f FORMAT` is unchanged beside it
    result = runner.invoke(app, ["export", "--help"])
    assert result.exit_code == 0 and "--format" in result.output
