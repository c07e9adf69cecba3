"""The commands end to end, as a user runs them: probe -> influence model -> predict ->
select -> export, on real demo text, with clean one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOKENIZER = "all-minilm-l6-v2"


def run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "assay", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
    )


def test_select_errors_are_one_line(annotated_sample, tmp_path):
    proc = run(
        "select", annotated_sample, "-o", tmp_path / "s", "--budget-tokens", "-5", "--score", "x"
    )
    assert proc.returncode == 2 and "--budget-tokens must be > 0" in proc.stderr
    proc = run(
        "select",
        annotated_sample,
        "-o",
        tmp_path / "s",
        "--budget-tokens",
        "100",
        "--score",
        "__import__('os')",
    )
    assert proc.returncode == 2 and "is not allowed" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = run("export", tmp_path / "nothing", "-o", tmp_path / "e", "--format", "jsonl")
    assert proc.returncode == 2 and "manifest.json" in proc.stderr


@pytest.mark.slow
def test_probe_train_predict_select_export(annotated_sample, proxy_ckpt, tmp_path):
    """In-process (CliRunner): the commands' own code paths without 5 interpreter starts."""
    from typer.testing import CliRunner

    from assay.cli import app

    def cli(*args: object) -> str:
        result = CliRunner().invoke(app, [str(a) for a in args])
        assert result.exit_code == 0, result.output
        return result.output

    out = cli(
        "influence",
        "probe",
        annotated_sample,
        "--model",
        proxy_ckpt,
        "--reference",
        annotated_sample,
        "--reference-where",
        "domain=encyclopedic",
        "--reference-n",
        "3",
        "-n",
        "40",
        "--lr",
        "0.1",
        "--max-tokens",
        "48",
        "--ref-tokens",
        "48",
        "-o",
        tmp_path / "probes",
    )
    assert "probed 40 documents" in out
    out = cli(
        "influence",
        "train",
        tmp_path / "probes",
        "-o",
        tmp_path / "im",
        "--method",
        "head",
        "--max-tokens",
        "64",
        "--max-chunks",
        "1",
        "--val-fraction",
        "0.25",
    )
    assert "held-out Spearman" in out
    cli(
        "influence",
        "predict",
        annotated_sample,
        "--model",
        tmp_path / "im",
        "-o",
        tmp_path / "scored",
        "--device",
        "cpu",
    )
    cli(
        "select",
        tmp_path / "scored",
        "-o",
        tmp_path / "sel",
        "--budget-tokens",
        "3000",
        "--score",
        "-influence.score",
        "--group-by",
        "domain",
        "--temperature",
        "0.5",
        "--tokenizer",
        TOKENIZER,
    )
    manifest = json.loads((tmp_path / "sel" / "manifest.json").read_text())
    assert manifest["counts"]["tokens_selected"] <= 3000
    assert manifest["tokens"]["source"].startswith("n_tokens column")  # carried through
    cli(
        "export",
        tmp_path / "sel",
        "-o",
        tmp_path / "meg",
        "--format",
        "megatron",
        "--no-append-eod",
    )
    exported = json.loads((tmp_path / "meg" / "manifest.json").read_text())
    written = sum(g["tokens"] for g in exported["groups"])
    assert written == manifest["counts"]["tokens_selected"]
    assert (tmp_path / "meg" / "blend" / "megatron" / "data_args.txt").is_file()
