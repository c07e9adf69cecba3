"""KMeans: the scikit-learn estimator contract, determinism, frozen-centroid assignment,
and that it actually finds clusters (synthetic blobs with a known answer)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from assay.errors import AssayError, ConfigError
from clustering.kmeans import KMeans, faiss_gpus


def _blobs(n_per: int = 200, k: int = 5, d: int = 16, seed: int = 0, spread: float = 0.05):
    """k well-separated Gaussian blobs around random unit directions."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d))
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    truth = np.repeat(np.arange(k), n_per)
    x = centers[truth] + spread * rng.normal(size=(len(truth), d))
    order = rng.permutation(len(truth))
    return x[order].astype(np.float32), truth[order]


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """True if two labelings are the same partition up to renaming."""
    pairs = set(zip(a.tolist(), b.tolist(), strict=True))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def test_init_only_stores_arguments():
    km = KMeans(7, spherical=True, n_iter=5, sample_size=100, seed=3, gpu="no", batch_size=10)
    assert vars(km) == {
        "n_clusters": 7,
        "spherical": True,
        "n_iter": 5,
        "n_init": 1,
        "init": "random",
        "sample_size": 100,
        "seed": 3,
        "gpu": "no",
        "batch_size": 10,
        "init_centroids": None,
    }
    assert not [a for a in vars(km) if a.endswith("_")]


def test_fit_returns_self_and_sets_fitted_attributes():
    x, _ = _blobs()
    km = KMeans(5, n_iter=10, seed=0)
    assert km.fit(x) is km
    assert km.centroids_.shape == (5, 16) and km.centroids_.dtype == np.float32
    assert km.labels_.shape == (len(x),) and km.labels_.dtype == np.int32
    assert km.n_features_in_ == 16 and km.n_train_ == len(x)
    assert len(km.objective_) == 10
    assert km.gpu_ is False or faiss_gpus() > 0
    # inertia_ is the SSE of each row to its assigned centroid
    sse = ((x - km.centroids_[km.labels_]) ** 2).sum()
    assert km.inertia_ == pytest.approx(float(sse), rel=1e-4)


def test_predict_before_fit_is_refused():
    with pytest.raises(AssayError, match="not fitted"):
        KMeans(3).predict(np.zeros((4, 2), dtype=np.float32))


def test_finds_separated_blobs_exactly_with_kmeans_plus_plus():
    # k-means++ puts one first centroid in each well-separated blob, so every seed finds
    # the blobs; random rows often put two in one blob (with one start, 4 of these 5
    # seeds do)
    x, truth = _blobs(k=5)
    for spherical in (False, True):
        for seed in range(5):
            km = KMeans(5, spherical=spherical, init="k-means++", seed=seed).fit(x)
            assert _same_partition(km.labels_, truth), f"spherical={spherical} seed={seed}"


def test_more_random_starts_never_end_worse():
    x, _ = _blobs(k=5)
    one = KMeans(5, n_init=1, seed=1).fit(x)
    five = KMeans(5, n_init=5, seed=1).fit(x)
    assert five.inertia_ <= one.inertia_ * (1 + 1e-6)


def test_same_seed_same_result_other_seed_other_centroids():
    x, _ = _blobs(k=8, spread=0.4)
    a = KMeans(8, seed=5, n_iter=10).fit(x)
    b = KMeans(8, seed=5, n_iter=10).fit(x)
    c = KMeans(8, seed=6, n_iter=10).fit(x)
    assert np.array_equal(a.centroids_, b.centroids_)
    assert np.array_equal(a.labels_, b.labels_)
    assert not np.array_equal(a.centroids_, c.centroids_)


def test_predict_assigns_to_frozen_centroids_stable_ids():
    x, _ = _blobs(k=5)
    km = KMeans(5, seed=0).fit(x[:600])
    assert np.array_equal(km.predict(x[:600]), km.labels_)
    # new documents go to the nearest frozen centroid; old ones keep their ids
    new = km.predict(x[600:])
    nearest = np.argmin(((x[600:, None] - km.centroids_[None]) ** 2).sum(-1), axis=1)
    assert np.array_equal(new, nearest)
    frozen = KMeans.from_centroids(km.centroids_, spherical=False, gpu="no")
    assert np.array_equal(frozen.predict(x), km.predict(x))
    # survives pickling (the FAISS index is rebuilt on use)
    assert np.array_equal(pickle.loads(pickle.dumps(km)).predict(x), km.predict(x))


def test_spherical_centroids_are_unit_length_and_distances_are_2_minus_2cos():
    x, _ = _blobs(k=4, spread=0.2)
    x *= np.random.default_rng(0).uniform(0.5, 3.0, size=(len(x), 1)).astype(np.float32)
    km = KMeans(4, spherical=True, seed=0).fit(x)
    assert np.allclose(np.linalg.norm(km.centroids_, axis=1), 1.0, atol=1e-5)
    labels, dist = km.assign(x)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    cos = (xn * km.centroids_[labels]).sum(1)
    assert np.allclose(dist, 2 - 2 * cos, atol=1e-4)
    assert np.array_equal(labels, np.argmax(xn @ km.centroids_.T, axis=1))


def test_chunked_float16_memmap_assignment_equals_one_shot(tmp_path):
    x, _ = _blobs(k=6, spread=0.3)
    np.save(tmp_path / "x.npy", x.astype(np.float16))
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    km = KMeans(6, seed=0, batch_size=1_000_000).fit(x.astype(np.float16).astype(np.float32))
    small = KMeans.from_centroids(km.centroids_, spherical=False, gpu="no")
    small.batch_size = 37  # odd chunk size: the last chunk is partial
    labels, dist = small.assign(mm)
    ref_labels, ref_dist = km.assign(x.astype(np.float16))
    assert np.array_equal(labels, ref_labels)
    assert np.allclose(dist, ref_dist, rtol=1e-5, atol=1e-6)


def test_trains_on_a_seeded_sample_of_the_requested_size():
    x, truth = _blobs(n_per=400, k=4)
    km = KMeans(4, sample_size=200, init="k-means++", seed=0).fit(x)
    assert km.n_train_ == 200 and len(km.labels_) == len(x)
    assert _same_partition(km.labels_, truth)
    assert np.array_equal(
        km.train_rows(len(x)), KMeans(4, sample_size=200, seed=0).train_rows(len(x))
    )
    assert len(KMeans(4).train_rows(100)) == 100  # 256 per centroid > rows: all rows


def test_init_centroids_are_used():
    x, _ = _blobs(k=3)
    init = x[:3].copy()
    a = KMeans(3, n_iter=1, init_centroids=init).fit(x)
    b = KMeans(3, n_iter=1, init_centroids=init, seed=99).fit(x)
    assert np.allclose(a.centroids_, b.centroids_)  # the seed no longer matters


def test_bad_parameters_name_the_flag():
    x, _ = _blobs(n_per=5, k=2)
    with pytest.raises(ConfigError, match="--k 50 is more than the 10 documents"):
        KMeans(50).fit(x)
    with pytest.raises(ConfigError, match="--n-iter"):
        KMeans(2, n_iter=0).fit(x)
    with pytest.raises(ConfigError, match="--sample-size"):
        KMeans(4, sample_size=2).fit(x)
    with pytest.raises(ConfigError, match="--init"):
        KMeans(2, init="best").fit(x)
    with pytest.raises(ConfigError, match="--gpu"):
        KMeans(2, gpu="maybe").fit(x)
    with pytest.raises(ValueError, match="dim"):
        KMeans(2).fit(x).predict(np.zeros((3, 5), dtype=np.float32))


@pytest.mark.skipif(faiss_gpus() > 0, reason="checks the message on machines without a GPU")
def test_gpu_yes_without_gpu_is_a_clear_error():
    x, _ = _blobs(n_per=10, k=2)
    with pytest.raises(AssayError, match="sees no GPU") as e:
        KMeans(2, gpu="yes").fit(x)
    assert "faiss-gpu" in (e.value.hint or "")


@pytest.mark.gpu
@pytest.mark.skipif(faiss_gpus() == 0, reason="needs faiss-gpu and a CUDA device")
def test_gpu_matches_cpu_partition():
    x, truth = _blobs(k=5)
    km = KMeans(5, gpu="yes", seed=0).fit(x)
    assert km.gpu_ and _same_partition(km.labels_, truth)


def test_faiss_import_leaves_the_blas_setting_of_other_libraries_alone():
    import subprocess
    import sys

    code = (
        "import os\n"
        "from clustering.kmeans import _force_skylakex, import_faiss\n"
        "forced = _force_skylakex()\n"
        "faiss = import_faiss()\n"
        "print(os.environ.get('OPENBLAS_CORETYPE'), faiss.assay_openblas_coretype, forced, sep='|')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    env, coretype, forced = out.stdout.strip().split("|")
    assert env == "None"  # set only while FAISS's OpenBLAS loads
    assert coretype.startswith("SkylakeX") == (forced == "True")
