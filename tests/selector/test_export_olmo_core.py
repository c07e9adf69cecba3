"""``assay export --format olmo-core`` read back by OLMo-core 3.0 itself: the token files
hold exactly the selected documents (fresh tokenisation, EOS after each), and the
OLMo-core mixtures (``assay mix export -f olmo-core`` and the export's own blend) resolve
to those files and come out at their token shares, within OLMo-core's rounding.

OLMo-core lives in ``.verify/`` (``make venv`` installs it there with ``--no-deps``: its
dependencies would downgrade the venv's huggingface_hub); the tests that need it skip
when it cannot be imported from there.
"""

from __future__ import annotations

import glob
import gzip
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from assay.errors import AssayError, ConfigError
from selector.export.olmo_core import TokenFileWriter, group_folder, read_token_file
from selector.export.run import export_selection
from selector.mix_export import export_mixture
from selector.select import SelectConfig, read_selection, select

REPO = Path(__file__).resolve().parents[2]
VERIFY = REPO / ".verify"
TOKENIZER = "all-minilm-l6-v2"
SEQ = 16  # OLMo-core instance length: small, so the demo files make many instances
FILE_TOKENS = 400  # small files, so groups span several parts


@pytest.fixture(scope="module")
def olmo() -> SimpleNamespace:
    if str(VERIFY) not in sys.path:
        sys.path.append(str(VERIFY))  # after the venv: .verify only adds what it lacks
    try:
        from olmo_core.data import TokenizerConfig
        from olmo_core.data.numpy_dataset import NumpyFSLDatasetConfig
        from olmo_core.data.source_mixture import SourceMixtureDatasetConfig, SourceMixtureList
        from olmo_core.data.utils import iter_document_indices, load_array_slice
        from olmo_core.io import deterministic_glob_directory
    except ImportError as e:
        pytest.skip(
            f"OLMo-core cannot be imported from {VERIFY} ({e}); `make venv` installs it "
            "with pip install --no-deps --target .verify"
        )
    return SimpleNamespace(
        TokenizerConfig=TokenizerConfig,
        NumpyFSLDatasetConfig=NumpyFSLDatasetConfig,
        SourceMixtureDatasetConfig=SourceMixtureDatasetConfig,
        SourceMixtureList=SourceMixtureList,
        iter_document_indices=iter_document_indices,
        load_array_slice=load_array_slice,
        glob=deterministic_glob_directory,
    )


@pytest.fixture(scope="module")
def exported(selection, tok_dir, tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("olmo") / "olmo-core"
    m = export_selection(
        selection, root, "olmo-core", tokenizer=str(tok_dir), max_file_tokens=FILE_TOKENS
    )
    return root, m


def _expected(selection: Path, tok_dir: Path) -> dict[str, list[list[int]]]:
    """Each group's selected documents, tokenised afresh, EOS appended."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tok_dir)
    tok.model_max_length = 1 << 40  # whole documents
    manifest, _ = read_selection(selection)
    out = {}
    for g in manifest["groups"]:
        texts = [t for f in g["files"] for t in pq.read_table(selection / f)["text"].to_pylist()]
        if texts:
            ids = tok(texts, add_special_tokens=False)["input_ids"]
            out[g["name"]] = [[*d, tok.eos_token_id] for d in ids]
    return out


def _tokenizer_config(olmo, m: dict):
    return olmo.TokenizerConfig(**m["olmo_core"]["tokenizer"])


def test_files_hold_the_selected_documents(selection, tok_dir, exported):
    root, m = exported
    expected = _expected(selection, tok_dir)
    assert m["olmo_core"]["dtype"] == "uint16"  # 30,522 ids
    assert sorted(g["name"] for g in m["groups"]) == sorted(expected)
    for g in m["groups"]:
        assert g["path"] == f"data/{group_folder(g['name'])}/*.npy"
        assert [Path(f).name for f in g["files"]] == [
            f"part-{i:05d}.npy" for i in range(len(g["files"]))
        ]
        docs = []
        for f in g["files"]:
            raw = (root / f).read_bytes()
            assert not raw.startswith(b"\x93NUMPY")  # raw ids, no np.save header
            arr = read_token_file(root / f, np.uint16)
            assert len(arr) <= FILE_TOKENS or arr[:-1].tolist().count(arr[-1]) == 0
            lines = gzip.decompress((root / f).with_suffix(".csv.gz").read_bytes()).decode()
            for line in lines.splitlines():
                start, end, _ = line.split(",", 2)
                docs.append(arr[int(start) : int(end)].tolist())
        assert docs == expected[g["name"]]
        assert g["tokens"] == sum(map(len, docs)) and g["docs"] == len(docs)
    assert not list(root.parent.glob(".*staging*")) and not list(root.rglob("*.tmp"))


def test_writer_layout_by_hand(tmp_path):
    """EOS after each document, files cut between documents, the index file beside."""
    with TokenFileWriter(tmp_path, vocab_size=300, eos_token_id=299, max_file_tokens=8) as w:
        w.add([1, 2, 3], "a")
        w.add([4, 5, 6], "b,c")
        w.add([7, 8, 9, 10, 11, 12, 13, 14, 15], "d")  # longer than a file: its own file
        w.add([], "e")
    assert w.files == ["part-00000.npy", "part-00001.npy", "part-00002.npy"]
    assert np.fromfile(tmp_path / "part-00000.npy", dtype="<u2").tolist() == [
        *[1, 2, 3, 299],
        *[4, 5, 6, 299],
    ]
    assert (tmp_path / "part-00001.npy").stat().st_size == 10 * 2  # uint16, no header
    assert read_token_file(tmp_path / "part-00002.npy", np.uint16).tolist() == [299]
    index = gzip.decompress((tmp_path / "part-00000.csv.gz").read_bytes()).decode()
    assert index == "0,4,a\n4,8,b,c\n"
    assert (w.docs, w.tokens) == (4, 19)


def test_cli_export_and_mix_export(selection, tok_dir, tmp_path):
    from typer.testing import CliRunner

    from assay.cli import app

    runner = CliRunner()
    root = tmp_path / "olmo-core"
    args = ["export", str(selection), "-o", str(root), "-f", "olmo-core"]
    result = runner.invoke(app, [*args, "--tokenizer", str(tok_dir), "--max-file-tokens", "400"])
    assert result.exit_code == 0, result.output
    assert "olmo-core blend" in result.output
    mix = ["mix", "export", str(selection / "mixture.json"), "-f", "olmo-core"]
    result = runner.invoke(app, [*mix, "-o", str(tmp_path / "mix"), "--root", str(root)])
    assert result.exit_code == 0, result.output
    doc = yaml.safe_load((tmp_path / "mix" / "source_mixture.yaml").read_text())
    for s in doc["sources"]:
        assert Path(s["paths"][0]).is_absolute() and glob.glob(s["paths"][0])
    result = runner.invoke(app, [*mix[:-1], "hf", "-o", str(tmp_path / "hf"), "--root", "x"])
    assert result.exit_code != 0 and "--root applies to --format olmo-core only" in result.output


def test_pipeline_export_points_the_mixture_at_the_files(annotated_sample, tok_dir, tmp_path):
    """The pipeline's export step (demo recipe: olmo-core in both lists): the OLMo-core
    mixture it writes names token files that exist, by absolute path."""
    import dataclasses

    from assay.pipeline_context import Context
    from assay.pipeline_output import step_export
    from assay.pipeline_recipe import ExportStep, Recipe

    selected = tmp_path / "selected"
    cfg = SelectConfig(budget_tokens=3000, score="heuristics.rps_doc_frac_unique_words")
    cfg = dataclasses.replace(cfg, group_by="domain", tokenizer=str(tok_dir))
    select(annotated_sample, selected, cfg)
    _, realised = read_selection(selected)
    searched = dataclasses.replace(
        realised, groups=[dataclasses.replace(g, paths=[]) for g in realised.groups]
    )
    (tmp_path / "mixture").mkdir()
    searched.write(tmp_path / "mixture" / "mixture.json")
    recipe = Recipe(corpus=["unused"], out=str(tmp_path / "out"))
    recipe.export = ExportStep(formats=["olmo-core"], mixture_formats=["olmo-core"])
    said: list[str] = []
    ctx = Context(recipe, said.append)
    ctx.artifacts = {"select": selected, "mix": tmp_path / "mixture"}
    step_export(ctx)
    export = tmp_path / "out" / "export"
    doc = yaml.safe_load((export / "mixture-olmo-core" / "source_mixture.yaml").read_text())
    for s in doc["sources"]:
        folder = export / "olmo-core" / "data" / group_folder(s["source_name"])
        assert s["paths"] == [str(folder.resolve() / "*.npy")]
        assert glob.glob(s["paths"][0])
    assert not [line for line in said if "warning" in line]


def test_bad_input_is_refused(selection, tok_dir, tmp_path):
    with pytest.raises(ConfigError, match="no end-of-sequence"):  # BERT as it ships
        export_selection(selection, tmp_path / "a", "olmo-core")
    with pytest.raises(ConfigError, match="EOS"):
        export_selection(selection, tmp_path / "b", "olmo-core", append_eod=False)
    with pytest.raises(ConfigError, match="max-file-tokens"):
        export_selection(selection, tmp_path / "c", "olmo-core", max_file_tokens=2**32)
    with pytest.raises(ConfigError, match="olmo-core only"):
        export_selection(selection, tmp_path / "d", "jsonl", max_file_tokens=10)
    writer = TokenFileWriter(tmp_path / "e", vocab_size=10, eos_token_id=9)
    with pytest.raises(AssayError, match="out of range"), writer:
        writer.add([3, 4])  # a temporary file is open when the next document fails
        writer.add([3, 10])
    assert not list((tmp_path / "e").iterdir())  # the aborted file is gone
    assert group_folder("a/b*") == "a%2Fb%2A" and group_folder("..") == "%2E%2E"


def test_olmo_core_reads_back_the_documents(olmo, selection, tok_dir, exported, tmp_path):
    root, m = exported
    expected = _expected(selection, tok_dir)
    tokenizer = _tokenizer_config(olmo, m)
    dtype = np.uint16
    for g in m["groups"]:
        paths = olmo.glob(str(root / g["path"]))  # OLMo-core's own glob expansion
        assert paths == [str(root / f) for f in g["files"]]
        docs = []
        for path in paths:
            by_eos = list(
                olmo.iter_document_indices(path, eos_token_id=tokenizer.eos_token_id, dtype=dtype)
            )
            by_metadata = list(
                olmo.iter_document_indices(path, use_array_if_local=False, dtype=dtype)
            )
            assert by_eos == by_metadata
            docs += [olmo.load_array_slice(path, s, e, dtype).tolist() for s, e in by_eos]
        assert docs == expected[g["name"]]
    # the plain FSL dataset over every file: dtype inferred from the vocabulary, and its
    # instances are the files' token streams cut into SEQ-token windows
    config = olmo.NumpyFSLDatasetConfig(
        tokenizer=tokenizer,
        paths=[str(root / "data" / "**" / "*.npy")],  # OLMo-core's glob: "*" within a folder
        expand_glob=True,
        sequence_length=SEQ,
        work_dir=str(tmp_path / "work"),
    )
    assert config.get_dtype() is np.uint16
    dataset = config.build()
    dataset.prepare()
    files = {str(root / f): f for g in m["groups"] for f in g["files"]}
    assert sorted(map(str, dataset.paths)) == sorted(files)
    for path, (lo, hi) in zip(dataset.paths, dataset.offsets, strict=True):
        stream = read_token_file(path, np.uint16)
        got = [t for i in range(lo, hi) for t in dataset[i]["input_ids"].tolist()]
        assert got == stream[: (hi - lo) * SEQ].tolist()
        assert hi - lo == len(stream) // SEQ


def _mixture_outcome(olmo, m: dict, yaml_path: Path, requested: int, work: Path):
    """Build OLMo-core's mixture dataset from ``yaml_path``; tokens per source it reads."""
    source_list = olmo.SourceMixtureList.from_yaml(yaml_path)
    src = olmo.SourceMixtureDatasetConfig(
        source_list=source_list,
        requested_tokens=requested,
        global_batch_size=SEQ * 4,
        render_tables=False,
        quiet=True,
    )
    config = olmo.NumpyFSLDatasetConfig.from_src_mix(
        src, tokenizer=_tokenizer_config(olmo, m), sequence_length=SEQ, work_dir=str(work)
    )
    dataset = config.build()
    dataset.prepare()
    owner = {p: s.source_name for s in source_list.sources for p in s.resolved_paths}
    tokens: dict[str, int] = dict.fromkeys(owner.values(), 0)
    for path, (lo, hi) in zip(dataset.paths, dataset.offsets, strict=True):
        stream = read_token_file(path, np.uint16)
        for i in range(lo, hi):  # mixture instance j of a path: its tokens j*SEQ..(j+1)*SEQ
            ids = dataset[i]["input_ids"].tolist()
            j = i - lo
            assert ids == stream[j * SEQ : (j + 1) * SEQ].tolist()
        tokens[owner[str(path)]] += (hi - lo) * SEQ
    return source_list, tokens


def _check_shares(source_list, tokens: dict[str, int], requested: int) -> None:
    """Each source's tokens are ``requested * target_ratio``, give or take OLMo-core's
    rounding: whole SEQ-token instances per file, Hamilton's method for the rest."""
    for s in source_list.sources:
        slack = (2 * len(s.resolved_paths) + 1) * SEQ
        assert abs(tokens[s.source_name] - requested * s.target_ratio) <= slack, s.source_name


def test_mix_export_resolves_to_the_token_files(olmo, selection, exported, tmp_path):
    root, m = exported
    _, mixture = read_selection(selection)
    # relative paths by default: they resolve from the export folder (the root)
    export_mixture(mixture, "olmo-core", tmp_path / "rel")
    rel = yaml.safe_load((tmp_path / "rel" / "source_mixture.yaml").read_text())
    assert all((root / s["paths"][0]).parent.is_dir() for s in rel["sources"])
    assert {s["paths"][0] for s in rel["sources"]} == {g["path"] for g in m["groups"]}
    # absolute under --root: OLMo-core reads them from anywhere
    export_mixture(mixture, "olmo-core", tmp_path / "abs", options={"root": str(root)})
    requested = sum(g.tokens_selected or 0 for g in mixture.groups)  # at most what lies there
    source_list, tokens = _mixture_outcome(
        olmo, m, tmp_path / "abs" / "source_mixture.yaml", requested, tmp_path / "w1"
    )
    for s in source_list.sources:
        name = s.source_name
        files = [str(root / f) for g in m["groups"] if g["name"] == name for f in g["files"]]
        assert s.resolved_paths == files
        assert s.target_ratio == pytest.approx(mixture.group(name).weight, abs=1e-6)
    _check_shares(source_list, tokens, requested)


def test_export_blend_reads_every_token_once(olmo, exported, tmp_path):
    root, m = exported
    blend = root / "blend" / "olmo-core" / "source_mixture.yaml"
    assert m["blend"] == {"olmo-core": ["blend/olmo-core/source_mixture.yaml"]}
    total = m["counts"]["tokens"]
    for g in yaml.safe_load(blend.read_text())["sources"]:
        tokens = next(x["tokens"] for x in m["groups"] if x["name"] == g["source_name"])
        assert g["target_ratio"] == pytest.approx(tokens / total, abs=1e-6)
    # every exported token requested: the shares are the files' own, one pass each
    source_list, tokens = _mixture_outcome(olmo, m, blend, total, tmp_path / "w2")
    _check_shares(source_list, tokens, total)
