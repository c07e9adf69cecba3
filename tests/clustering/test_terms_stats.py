"""c-TF-IDF by hand, streamed per-cluster statistics against plain numpy, bottom-m
samples against brute force, and NMI against scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest

from clustering.stats import ClusterStats, LabelCounts, SmallestPerGroup, nmi_from_counts
from clustering.terms import TermCounter, ctfidf_top_terms, tokenize


def test_ctfidf_matches_the_formula_by_hand():
    # two classes over terms a, b, c: class 0 = a x3, b x1; class 1 = b x1, c x2
    counts = np.array([[3, 1, 0], [0, 1, 2]])
    out = ctfidf_top_terms(counts, ["a", "b", "c"], top_n=3, min_count=1)
    avg_words = (4 + 3) / 2
    w = {
        ("a", 0): 3 / 4 * math.log1p(avg_words / 3),
        ("b", 0): 1 / 4 * math.log1p(avg_words / 2),
        ("b", 1): 1 / 3 * math.log1p(avg_words / 2),
        ("c", 1): 2 / 3 * math.log1p(avg_words / 2),
    }
    assert [t for t, _ in out[0]] == ["a", "b"]
    assert [t for t, _ in out[1]] == ["c", "b"]
    for c, terms in enumerate(out):
        for t, weight in terms:
            assert weight == pytest.approx(w[(t, c)], abs=1e-6)


def test_ctfidf_prefers_distinctive_terms_and_drops_rare_ones():
    # "common" is the most frequent word of both classes but is not distinctive
    counts = np.array([[10, 4, 0, 1], [10, 0, 4, 0]])
    terms = ["common", "kernel", "flour", "typo"]
    out = ctfidf_top_terms(counts, terms, top_n=1, min_count=2)
    assert out == [
        [("kernel", pytest.approx(out[0][0][1]))],
        [("flour", pytest.approx(out[1][0][1]))],
    ]
    all_terms = ctfidf_top_terms(counts, terms, top_n=10, min_count=2)
    assert "typo" not in [t for t, _ in all_terms[0]]  # seen once in all: ignored
    assert ctfidf_top_terms(np.zeros((2, 4)), terms) == [[], []]


def test_tokenize_and_counter_on_real_text():
    assert tokenize("The Kernel's scheduler runs 42 threads; the end.") == [
        "kernel's",
        "scheduler",
        "runs",
        "threads",
        "end",
    ]
    tc = TermCounter(max_chars=200)
    tc.add(0, ["Knead the dough; let the dough rise.", "Bake the bread."])
    tc.add(1, ["The kernel schedules threads.", "Threads share memory."])
    tc.add(0, ["Dough again."])
    m = tc.matrix(2).toarray()
    vocab = tc.terms()
    assert m[0, vocab.index("dough")] == 3 and m[1, vocab.index("threads")] == 2
    top = ctfidf_top_terms(tc.matrix(2), vocab, top_n=1, min_count=1)
    assert top[0][0][0] == "dough" and top[1][0][0] == "threads"


def test_cluster_stats_match_numpy_groupby_over_several_adds():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, size=1000)
    q = rng.normal(3, 1, size=1000)
    q[::17] = np.nan  # missing values are skipped, not counted
    tokens = rng.integers(1, 500, size=1000)
    s = ClusterStats(6, ["q"])  # cluster 5 stays empty
    for lo in range(0, 1000, 300):
        s.add(labels[lo : lo + 300], {"q": q[lo : lo + 300]}, tokens[lo : lo + 300])
    for c in range(5):
        mine = labels == c
        ok = mine & np.isfinite(q)
        assert s.docs[c] == mine.sum() and s.tokens[c] == tokens[mine].sum()
        assert s.n["q"][c] == ok.sum()
        assert s.mean("q")[c] == pytest.approx(q[ok].mean())
        assert s.std("q")[c] == pytest.approx(q[ok].std(), rel=1e-9)
    assert s.docs[5] == 0 and np.isnan(s.mean("q")[5])
    # groups of clusters: {0, 1} -> 0, {2, 3, 4} -> 1, cluster 5 in none
    g = s.grouped(np.array([0, 0, 1, 1, 1, -1]), 2)
    ok = np.isin(labels, [2, 3, 4]) & np.isfinite(q)
    assert g.docs.tolist() == [np.isin(labels, [0, 1]).sum(), np.isin(labels, [2, 3, 4]).sum()]
    assert g.mean("q")[1] == pytest.approx(q[ok].mean())
    assert g.std("q")[1] == pytest.approx(q[ok].std(), rel=1e-9)


def test_smallest_per_group_equals_brute_force():
    rng = np.random.default_rng(1)
    groups, keys = rng.integers(0, 7, size=500), rng.random(500)
    s = SmallestPerGroup(m=4)
    for lo in range(0, 500, 64):
        s.add(groups[lo : lo + 64], keys[lo : lo + 64], np.arange(lo, min(lo + 64, 500)))
    got = s.rows_by_group(8)
    for g in range(7):
        rows = np.flatnonzero(groups == g)
        assert got[g].tolist() == rows[np.argsort(keys[rows])][:4].tolist()
    assert got[7].tolist() == []


def test_label_counts_and_nmi_agree_with_sklearn():
    from sklearn.metrics import normalized_mutual_info_score

    rng = np.random.default_rng(2)
    clusters = rng.integers(0, 6, size=800)
    domains = np.where(rng.random(800) < 0.7, clusters % 3, rng.integers(0, 3, size=800))
    names = np.array(["code", "legal", "recipe"])[domains]
    lc = LabelCounts(6)
    lc.add(clusters[:300], names[:300].tolist())
    lc.add(clusters[300:], names[300:].tolist())
    assert lc.counts.sum() == 800
    expected = normalized_mutual_info_score(names, clusters)
    assert nmi_from_counts(lc.counts) == pytest.approx(expected, abs=1e-9)
    # merging clusters c and c+3 (same domain) loses no information about the domain
    merged = lc.grouped(np.array([0, 1, 2, 0, 1, 2]), 3)
    assert nmi_from_counts(merged) == pytest.approx(
        normalized_mutual_info_score(names, clusters % 3), abs=1e-9
    )
    assert nmi_from_counts(np.array([[5, 0], [0, 5]])) == pytest.approx(1.0)
    assert nmi_from_counts(np.array([[5, 5], [5, 5]])) == pytest.approx(0.0)
