"""Shared fixtures: the bundled demo corpus (real text) and small samples of it."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
DEMO = Path(os.environ.get("ASSAY_TEST_DEMO_DIR", REPO / "data" / "demo"))


@pytest.fixture(scope="session")
def demo_dir() -> Path:
    if not any(DEMO.glob("*.jsonl.gz")):
        pytest.fail(f"demo corpus missing under {DEMO}: run scripts/build_demo_corpus.py")
    return DEMO


@pytest.fixture(scope="session")
def demo_records(demo_dir: Path) -> list[dict]:
    from assay.corpus import read_documents

    return list(read_documents([demo_dir]))


@pytest.fixture(scope="session")
def demo_sample(demo_records: list[dict]) -> list[dict]:
    """Up to 6 documents per domain, fixed seed: real text of every kind, quick to rate."""
    rng = random.Random(0)
    by_domain: dict[str, list[dict]] = {}
    for record in demo_records:
        by_domain.setdefault(record["domain"], []).append(record)
    sample = []
    for domain in sorted(by_domain):
        docs = by_domain[domain]
        sample += rng.sample(docs, min(6, len(docs)))
    return sample
