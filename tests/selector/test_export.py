"""``assay export``: JSONL / Parquet / HF / Megatron read back to the selected documents;
MDS refuses with an install hint (mosaicml-streaming is not installed here)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assay.errors import AssayError, ConfigError
from selector.export.megatron import (
    MegatronWriter,
    check_prefixes,
    megatron_prefix,
    read_documents,
    read_index,
)
from selector.export.run import export_selection
from selector.select import SelectConfig, read_selection, select

TOKENIZER = "all-minilm-l6-v2"


@pytest.fixture(scope="module")
def selection(annotated_sample, tmp_path_factory):
    out = tmp_path_factory.mktemp("sel") / "selected"
    cfg = SelectConfig(
        budget_tokens=5000,
        score="heuristics.rps_doc_frac_unique_words",
        group_by="domain",
        tokenizer=TOKENIZER,
    )
    select(annotated_sample, out, cfg)
    return out


def _selected_rows(selection) -> pa.Table:
    manifest, _ = read_selection(selection)
    files = [selection / f for g in manifest["groups"] for f in g["files"]]
    return pa.concat_tables([pq.read_table(f) for f in files])


def test_jsonl_and_parquet_read_back(selection, tmp_path):
    rows = _selected_rows(selection)
    m = export_selection(selection, tmp_path / "j", "jsonl")
    back = [
        json.loads(line)
        for f in sorted(tmp_path.glob("j/*/*.jsonl"))
        for line in f.read_text().splitlines()
    ]
    assert len(back) == rows.num_rows == m["counts"]["docs"]
    assert sorted(r["id"] for r in back) == sorted(rows.column("id").to_pylist())
    assert {r["text"] for r in back} == set(rows.column("text").to_pylist())
    export_selection(selection, tmp_path / "p", "parquet")
    again = pa.concat_tables([pq.read_table(f) for f in sorted(tmp_path.glob("p/*/*.parquet"))])
    assert sorted(again.column("id").to_pylist()) == sorted(rows.column("id").to_pylist())


def test_hf_folder_loads_with_datasets(selection, tmp_path):
    from datasets import load_from_disk

    m = export_selection(selection, tmp_path / "hf", "hf")
    total = 0
    for g in m["groups"]:
        ds = load_from_disk(str(tmp_path / "hf" / g["path"]))
        assert set(ds["domain"]) == {g["name"]}
        total += len(ds)
    assert total == _selected_rows(selection).num_rows
    interleave = json.loads((tmp_path / "hf" / "blend" / "hf" / "interleave.json").read_text())
    assert sorted(interleave["names"]) == sorted(g["name"] for g in m["groups"])
    assert all(Path(p).is_dir() for p in interleave["datasets"])


def test_megatron_tokens_match_the_selection(selection, tmp_path):
    from transformers import AutoTokenizer

    from raters.hub import resolve_model

    m = export_selection(selection, tmp_path / "meg", "megatron", append_eod=False)
    manifest, mixture = read_selection(selection)
    tok = AutoTokenizer.from_pretrained(resolve_model(TOKENIZER))
    for g in m["groups"]:
        # n_tokens (counted by annotate) == tokens written: the budget was exact
        assert g["tokens"] == g["selected_tokens"]
        prefix = tmp_path / "meg" / g["path"]
        docs = list(read_documents(prefix))
        shard_files = next(x["files"] for x in manifest["groups"] if x["name"] == g["name"])
        texts = [t for f in shard_files for t in pq.read_table(selection / f)["text"].to_pylist()]
        assert len(docs) == len(texts)
        for ids, text in zip(docs, texts, strict=True):
            assert ids.tolist() == tok(text, add_special_tokens=False)["input_ids"]
    # the blend (written by selector.mix_export) points at the exported prefixes with the
    # realised token weights
    line = (tmp_path / "meg" / "blend" / "megatron" / "data_args.txt").read_text().split()
    weights = dict(zip(line[1::2], map(float, line[0::2]), strict=True))
    for g in mixture.groups:
        if g.tokens_selected:
            prefix = str((tmp_path / "meg" / f"{g.name}_text_document").resolve())
            assert weights[prefix] == pytest.approx(g.weight, abs=2e-6)
            assert Path(prefix + ".bin").is_file() and Path(prefix + ".idx").is_file()
    assert sum(weights.values()) == pytest.approx(1.0, abs=1e-5)
    nemo = json.loads((tmp_path / "meg" / "blend" / "nemo" / "paths.json").read_text())
    assert nemo["train"] == line


def test_megatron_appends_eod(selection, tmp_path):
    from transformers import AutoTokenizer

    from raters.hub import resolve_model

    with pytest.raises(AssayError, match="no end-of-sequence"):  # BERT has no eos token
        export_selection(selection, tmp_path / "none", "megatron")
    tok = AutoTokenizer.from_pretrained(resolve_model(TOKENIZER))
    tok.eos_token = "[SEP]"
    tok.save_pretrained(tmp_path / "tok")
    m = export_selection(selection, tmp_path / "eod", "megatron", tokenizer=str(tmp_path / "tok"))
    for g in m["groups"]:
        assert g["tokens"] == g["selected_tokens"] + g["docs"]
        docs = list(read_documents(tmp_path / "eod" / g["path"]))
        assert len(docs) == g["docs"]
        assert all(int(d[-1]) == tok.sep_token_id for d in docs)


def test_idx_layout_by_hand(tmp_path):
    """The bytes of .idx, decoded with struct from the documented layout."""
    prefix = tmp_path / "toy_text_document"
    with MegatronWriter(prefix, vocab_size=50_000) as w:
        w.add([5, 6, 7])
        w.add([])
        w.add([65_000 - 1 - 15_001, 1])
    raw = (tmp_path / "toy_text_document.idx").read_bytes()
    assert raw[:9] == b"MMIDIDX\x00\x00"
    version, code, n_seq, n_doc = struct.unpack_from("<QBQQ", raw, 9)
    assert (version, code, n_seq, n_doc) == (1, 8, 3, 4)  # 8 = uint16
    lengths = struct.unpack_from("<3i", raw, 34)
    pointers = struct.unpack_from("<3q", raw, 34 + 12)
    doc_index = struct.unpack_from("<4q", raw, 34 + 12 + 24)
    assert lengths == (3, 0, 2) and pointers == (0, 6, 6) and doc_index == (0, 1, 2, 3)
    assert len(raw) == 34 + 12 + 24 + 32
    bin_ = np.frombuffer((tmp_path / "toy_text_document.bin").read_bytes(), dtype="<u2")
    assert bin_.tolist() == [5, 6, 7, 49_998, 1]
    assert [d.tolist() for d in read_documents(prefix)] == [[5, 6, 7], [], [49_998, 1]]
    big = tmp_path / "big"
    with MegatronWriter(big, vocab_size=100_000) as w:
        w.add([99_999])
    assert read_index(big).dtype is np.int32
    with pytest.raises(AssayError, match="out of range"), MegatronWriter(big, 10) as w:
        w.add([10])


def test_prefix_names_one_data_path_token():
    assert megatron_prefix("topic 3/web") == "topic_3_web_text_document"
    assert megatron_prefix("wiki-en.v2") == "wiki-en.v2_text_document"
    check_prefixes(["topic 3/web", "web"])
    with pytest.raises(ConfigError, match="'a b' and 'a/b'"):
        check_prefixes(["a b", "a/b"])  # one file: refused before anything is written


def test_mds_without_streaming_says_how_to_install(selection, tmp_path):
    try:
        import streaming  # noqa: F401

        pytest.skip("mosaicml-streaming is installed here")
    except ImportError:
        pass
    with pytest.raises(AssayError, match="mosaicml-streaming"):
        export_selection(selection, tmp_path / "mds", "mds")
    assert not (tmp_path / "mds").exists()


def test_bad_format_and_busy_folder(selection, tmp_path):
    with pytest.raises(AssayError, match="--format"):
        export_selection(selection, tmp_path / "x", "csv")
    export_selection(selection, tmp_path / "x", "jsonl")
    with pytest.raises(AssayError, match="--overwrite"):
        export_selection(selection, tmp_path / "x", "jsonl")
    export_selection(selection, tmp_path / "x", "parquet", overwrite=True)
