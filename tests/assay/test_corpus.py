"""Readers on every format, incl. corrupt files: errors name file and line."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from assay.corpus import Cursor, expand_inputs, iter_items, read_documents
from assay.errors import AssayError, BadRecordError
from assay.records import Fields, doc_id

DOCS = [
    {"id": "a", "text": "First document.", "meta": {"k": 1}},
    {"id": "b", "text": "Second document, with ünïcödé and 日本語.", "meta": {"k": 2}},
    {"text": "Third has no id."},
]


def _jsonl_bytes(rows) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()


def write(path: Path, rows) -> Path:
    data = _jsonl_bytes(rows)
    name = path.name
    if name.endswith(".gz"):
        path.write_bytes(gzip.compress(data))
    elif name.endswith(".zst"):
        path.write_bytes(zstandard.ZstdCompressor().compress(data))
    elif name.endswith(".parquet"):
        pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=2)
    else:
        path.write_bytes(data)
    return path


@pytest.mark.parametrize("name", ["c.jsonl", "c.jsonl.gz", "c.jsonl.zst", "c.parquet"])
def test_every_format_reads_the_same_documents(tmp_path, name):
    path = write(tmp_path / name, DOCS)
    docs = list(read_documents([path]))
    assert [d["text"] for d in docs] == [d["text"] for d in DOCS]
    assert docs[0]["meta"] == {"k": 1}


def test_hf_save_to_disk_folder(tmp_path):
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_list([{"id": "x", "text": "hello"}, {"id": "y", "text": "bye"}])
    ds.save_to_disk(str(tmp_path / "ds"))
    assert [d["text"] for d in read_documents([tmp_path / "ds"])] == ["hello", "bye"]
    datasets.DatasetDict({"train": ds}).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(AssayError, match="DatasetDict"):
        expand_inputs([tmp_path / "dd"])
    assert len(list(read_documents([tmp_path / "dd" / "train"]))) == 2


def test_globs_and_folders_are_sorted_and_skip_hidden(tmp_path):
    write(tmp_path / "b.jsonl", DOCS[:1])
    write(tmp_path / "a.jsonl.gz", DOCS[1:2])
    (tmp_path / "_quarantine").mkdir()
    write(tmp_path / "_quarantine" / "x.jsonl", DOCS[2:])
    (tmp_path / "notes.txt").write_text("not a corpus")
    assert [s.path.name for s in expand_inputs([tmp_path])] == ["a.jsonl.gz", "b.jsonl"]
    assert [s.path.name for s in expand_inputs([str(tmp_path / "*.jsonl*")])] == [
        "a.jsonl.gz",
        "b.jsonl",
    ]
    with pytest.raises(AssayError, match="matches no files"):
        expand_inputs([str(tmp_path / "*.parquet")])
    with pytest.raises(AssayError, match="does not exist"):
        expand_inputs([tmp_path / "missing.jsonl"])
    with pytest.raises(AssayError, match="unknown file type"):
        expand_inputs([tmp_path / "notes.txt"])


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b'{"id": "x", "text": "broken"\n', "invalid JSON"),
        (b'{"id": "x"}\n', "missing text field"),
        (b'{"id": "x", "text": 42}\n', "not a string"),
        (b'["a", "list"]\n', "not an object"),
        (b'{"id": "x", "text": "bad \xff byte"}\n', "invalid UTF-8"),
    ],
)
def test_bad_record_names_file_and_line(tmp_path, line, reason):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(_jsonl_bytes(DOCS[:2]) + b"\n" + line + _jsonl_bytes(DOCS[2:]))
    with pytest.raises(BadRecordError, match=reason) as info:
        list(read_documents([path]))
    assert info.value.line == 4  # blank line 3 is counted, not a record
    assert str(path) in str(info.value) and ":4:" in str(info.value)


def test_items_keep_going_past_bad_records(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(_jsonl_bytes(DOCS[:1]) + b"not json\n" + _jsonl_bytes(DOCS[1:]))
    items = list(iter_items(expand_inputs([path])))
    assert [(i.unit, i.record is None) for i in items] == [
        (1, False),
        (2, True),
        (3, False),
        (4, False),
    ]
    assert items[1].raw == "not json"


def test_truncated_gzip_is_a_clear_error(tmp_path):
    data = gzip.compress(_jsonl_bytes(DOCS * 50))
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(AssayError, match="corrupt or truncated"):
        list(read_documents([path]))


def test_corrupt_parquet_and_missing_column(tmp_path):
    good = write(tmp_path / "g.parquet", DOCS)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(good.read_bytes()[:100])
    with pytest.raises(AssayError, match="not a readable Parquet"):
        list(read_documents([broken]))
    with pytest.raises(AssayError, match="no column 'body'"):
        list(read_documents([good], Fields(text="body")))


def test_parquet_null_text_is_a_bad_row(tmp_path):
    path = tmp_path / "n.parquet"
    pq.write_table(pa.table({"id": ["a", "b"], "text": ["ok", None]}), path)
    with pytest.raises(BadRecordError, match="row 2") as info:
        list(read_documents([path]))
    assert info.value.unit == "row"


def test_cursor_skips_exactly_what_was_consumed(tmp_path):
    a = write(tmp_path / "a.parquet", [{"id": str(i), "text": f"t{i}"} for i in range(7)])
    b = write(tmp_path / "b.jsonl.gz", [{"id": f"b{i}", "text": f"u{i}"} for i in range(3)])
    sources = expand_inputs([a, b])
    every = [(i.source, i.unit) for i in iter_items(sources)]
    for k in range(len(every)):
        rest = [(i.source, i.unit) for i in iter_items(sources, start=Cursor(*every[k]))]
        assert rest == every[k + 1 :]


def test_default_id_is_sha1_of_text():
    from assay.records import rows_to_batch

    batch = rows_to_batch(DOCS, Fields())
    assert batch["id"][:2] == ["a", "b"]
    assert batch["id"][2] == doc_id("Third has no id.")
    assert batch["meta"][2] is None
