"""CLIMB prune and merge on hand-made values: the expected clusters drop, the expected
centroids merge, and the reasons are reported."""

from __future__ import annotations

import numpy as np
import pytest

from assay.errors import ConfigError
from clustering.prune_merge import PruneRule, merge_centroids, prune_clusters

# Three tight groups of centroids in 2-D: {0, 1, 2} near (0, 0), {3, 4} near (10, 0),
# {5} alone at (0, 10). Within-group distances <= 0.5, between groups >= 9.9.
CENTROIDS = np.array([[0.0, 0.0], [0.3, 0.0], [0.0, 0.4], [10.0, 0.0], [10.0, 0.5], [0.0, 10.0]])
GROUPS = [{0, 1, 2}, {3, 4}, {5}]


def _partition(topics: np.ndarray) -> list[set[int]]:
    return sorted(
        ({int(i) for i in np.flatnonzero(topics == t)} for t in np.unique(topics)),
        key=min,
    )


def test_rule_parsing_and_text():
    r = PruneRule.parse(" dataman.overall < 3.0 ")
    assert (r.column, r.op, r.value) == ("dataman.overall", "<", 3.0)
    assert str(r) == "dataman.overall<3"
    assert PruneRule.parse("perplexity.nll>4.5e0") == PruneRule("perplexity.nll", ">", 4.5)
    for bad in ("overall", "overall<=3", "overall<three", "<3"):
        with pytest.raises(ConfigError, match="--prune must look like"):
            PruneRule.parse(bad)


def test_prune_below_and_above_with_reasons():
    means = {
        "quality": np.array([3.5, 2.9, 3.0, np.nan]),
        "ppl": np.array([10.0, 12.0, 500.0, 11.0]),
    }
    pruned, reasons = prune_clusters(
        means, [PruneRule.parse("quality<3.0"), PruneRule.parse("ppl>100")]
    )
    assert pruned.tolist() == [False, True, True, True]
    assert reasons[0] == []
    assert reasons[1] == ["mean quality 2.9 below 3"]
    # exactly at the threshold is kept (CLIMB keeps mean >= 3.0); the other rule drops it
    assert reasons[2] == ["mean ppl 500 above 100"]
    # a cluster that cannot be judged is dropped, with that reason
    assert reasons[3] == ["quality: no finite values"]


def test_no_rules_prunes_nothing_and_unknown_columns_are_named():
    pruned, reasons = prune_clusters({"q": np.array([1.0, 2.0])}, [])
    assert not pruned.any() and reasons == [[], []]
    with pytest.raises(ConfigError, match="'missing' is not a numeric") as e:
        prune_clusters({"q": np.array([1.0])}, [PruneRule.parse("missing<1")])
    assert "q" in (e.value.hint or "")


@pytest.mark.parametrize("linkage", ["ward", "average", "complete", "single"])
def test_merge_to_a_target_count_gives_the_hand_made_groups(linkage):
    topics = merge_centroids(CENTROIDS, n_topics=3, linkage=linkage)
    assert _partition(topics) == GROUPS


def test_merge_by_distance_threshold():
    # below 9.9 and above 0.5: the three groups; above every distance: one topic
    assert (
        _partition(merge_centroids(CENTROIDS, distance_threshold=2.0, linkage="average")) == GROUPS
    )
    assert len(set(merge_centroids(CENTROIDS, distance_threshold=50.0, linkage="average"))) == 1
    # below every distance: nothing merges
    alone = merge_centroids(CENTROIDS, distance_threshold=0.1, linkage="single")
    assert len(set(alone.tolist())) == len(CENTROIDS)
    # "closer than" is strict: two centroids exactly 1.0 apart stay apart at 1.0
    pair = np.array([[0.0, 0.0], [1.0, 0.0]])
    assert len(set(merge_centroids(pair, distance_threshold=1.0, linkage="single"))) == 2
    assert len(set(merge_centroids(pair, distance_threshold=1.0001, linkage="single"))) == 1


def test_topics_are_numbered_by_size_largest_first():
    # by default every centroid weighs 1: the group of three is topic 0, the pair topic 1
    topics = merge_centroids(CENTROIDS, n_topics=3)
    assert topics.tolist() == [0, 0, 0, 1, 1, 2]
    # with token counts, the lone centroid 5 is the biggest topic
    sizes = np.array([1, 1, 1, 5, 5, 100])
    assert merge_centroids(CENTROIDS, n_topics=3, sizes=sizes).tolist() == [2, 2, 2, 1, 1, 0]


def test_more_topics_than_centroids_and_edge_sizes():
    assert merge_centroids(CENTROIDS, n_topics=100).tolist() == [0, 1, 2, 3, 4, 5]
    assert merge_centroids(CENTROIDS[:1], n_topics=4).tolist() == [0]
    assert merge_centroids(np.zeros((0, 2)), n_topics=4).tolist() == []


def test_merge_arguments_are_checked():
    with pytest.raises(ConfigError, match="exactly one"):
        merge_centroids(CENTROIDS)
    with pytest.raises(ConfigError, match="exactly one"):
        merge_centroids(CENTROIDS, n_topics=2, distance_threshold=1.0)
    with pytest.raises(ConfigError, match="--linkage"):
        merge_centroids(CENTROIDS, n_topics=2, linkage="centroidal")
    with pytest.raises(ConfigError, match="--topics"):
        merge_centroids(CENTROIDS, n_topics=0)
    with pytest.raises(ConfigError, match="--merge-distance"):
        merge_centroids(CENTROIDS, distance_threshold=-1.0)
