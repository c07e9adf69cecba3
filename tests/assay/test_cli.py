"""The CLI: clear one-line errors (never a traceback), listing, and a real annotate run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "assay", *args], capture_output=True, text=True, env=env, cwd=cwd
    )


def test_missing_input_is_a_clean_error(tmp_path):
    proc = run(
        "annotate", str(tmp_path / "nope.jsonl"), "-o", str(tmp_path / "o"), "-r", "heuristics"
    )
    assert proc.returncode == 2
    assert "does not exist" in proc.stderr and "Traceback" not in proc.stderr


def test_unknown_rater_lists_the_valid_ones(tmp_path):
    src = tmp_path / "a.jsonl"
    src.write_text('{"text": "hello"}\n')
    proc = run("annotate", str(src), "-o", str(tmp_path / "o"), "-r", "nosuch")
    assert proc.returncode == 2
    assert "unknown rater 'nosuch'" in proc.stderr and "heuristics" in proc.stderr
    proc = run("annotate", str(src), "-o", str(tmp_path / "o"), "-r", "heuristics", "-O", "bad")
    assert proc.returncode == 2 and "RATER.KEY=VALUE" in proc.stderr


def test_bad_record_error_names_file_and_line(tmp_path):
    src = tmp_path / "a.jsonl"
    src.write_text('{"text": "hello"}\n{"text": \n')
    proc = run(
        "annotate", str(src), "-o", str(tmp_path / "o"), "-r", "heuristics", "--tokenizer", "none"
    )
    assert proc.returncode == 2
    assert f"{src}:2: invalid JSON" in proc.stderr and "--on-error quarantine" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_annotate_with_token_counts(tmp_path, demo_records):
    src = tmp_path / "a.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in demo_records[:25]))
    out = tmp_path / "o"
    proc = run("annotate", str(src), "-o", str(out), "-r", "heuristics", "--shard-size", "10")
    assert proc.returncode == 0, proc.stderr
    assert "annotated 25 documents" in proc.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["tokenizer"] == "smollm2-135m" and manifest["counts"]["tokens"] > 0


def test_raters_lists_builtins():
    proc = run("raters")
    assert proc.returncode == 0 and "heuristics" in proc.stdout and "perplexity" in proc.stdout
