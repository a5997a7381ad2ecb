"""Index: exact search against numpy, ids/payloads through save/load, approximate recall, errors."""

import json

import numpy as np
import pytest
import torch

from finetuner.search import Index


def clustered(seed, n_clusters=8, per_cluster=40, dim=16, spread=0.05):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((n_clusters, dim))
    x = np.repeat(centers, per_cluster, axis=0) + spread * rng.standard_normal((n_clusters * per_cluster, dim))
    return x.astype(np.float32), rng


def brute_force(x, q, metric):
    x64, q64 = x.astype(np.float64), q.astype(np.float64)
    if metric == "cosine":
        x64 = x64 / np.linalg.norm(x64, axis=1, keepdims=True)
        q64 = q64 / np.linalg.norm(q64, axis=1, keepdims=True)
    if metric == "euclidean":
        return -((q64[:, None, :] - x64[None, :, :]) ** 2).sum(-1)
    return q64 @ x64.T


@pytest.mark.parametrize("metric", ["cosine", "dot", "euclidean"])
def test_flat_search_matches_numpy_argsort(metric):
    rng = np.random.default_rng(0)
    x, q = rng.standard_normal((60, 8)).astype(np.float32), rng.standard_normal((7, 8)).astype(np.float32)
    index = Index(metric=metric)
    index.add(x[:25])
    index.add(x[25:])  # default ids continue: 25, 26, ...
    scores, ids = index.search(q, k=10)
    want = brute_force(x, q, metric)
    order = np.argsort(-want, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(ids, order)
    np.testing.assert_allclose(scores, np.take_along_axis(want, order, 1), rtol=1e-4, atol=1e-4)
    assert scores.shape == ids.shape == (7, 10) and ids.dtype == np.int64


def test_torch_and_single_vector_queries():
    x, _ = clustered(1)
    index = Index(dim=16)
    index.add(torch.from_numpy(x))
    scores, ids = index.search(torch.from_numpy(x[3]), k=1)
    assert ids.tolist() == [[3]] and scores[0, 0] == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("kind, params", [("flat", {}), ("ivf", {"nlist": 8, "nprobe": 2}), ("hnsw", {"M": 8})])
def test_ids_and_payloads_round_trip_through_save_load(tmp_path, kind, params):
    x, rng = clustered(2)
    ids = rng.permutation(10_000)[: len(x)] + 5
    payloads = [f"images/{i}.jpg" if i % 3 else {"path": f"{i}.png", "tags": [i]} for i in range(len(x))]
    index = Index(metric="cosine", kind=kind, **params)
    index.add(x[:200], ids=ids[:200], payloads=payloads[:200])
    index.add(x[200:], ids=ids[200:])  # no payloads: None
    before = index.search(x[::37], k=5)
    index.save(tmp_path / "index")
    assert sorted(p.name for p in (tmp_path / "index").iterdir()) == [
        "config.json",
        "ids.json",
        "index.faiss",
        "payloads.json",
    ]
    assert json.loads((tmp_path / "index" / "config.json").read_text())["kind"] == kind
    loaded = Index.load(tmp_path / "index")
    after = loaded.search(x[::37], k=5)
    np.testing.assert_array_equal(before[1], after[1])
    np.testing.assert_allclose(before[0], after[0])
    assert len(loaded) == len(x) and loaded.params == index.params
    assert loaded.payloads_for(ids[[0, 199, 200, 201]]) == [payloads[0], payloads[199], None, None]
    assert set(after[1].ravel()) <= set(ids.tolist())


@pytest.mark.parametrize("kind, params", [("ivf", {"nlist": 8, "nprobe": 2}), ("hnsw", {"M": 16, "efSearch": 32})])
def test_approximate_recall_is_reported_and_high_on_clustered_data(kind, params):
    x, rng = clustered(3)
    index = Index(kind=kind, **params)
    index.add(x)
    queries = x[rng.choice(len(x), 20, replace=False)] + 0.01
    assert index.recall_against_exact(queries, k=10) >= 0.9
    exact = Index()
    exact.add(x)
    assert exact.recall_against_exact(queries, k=10) == 1.0


def test_works_after_faiss_torch_patch(tmp_path):
    import faiss.contrib.torch_utils  # noqa: F401  (pytorch-metric-learning imports it: faiss then returns tensors)

    x, _ = clustered(6)
    index = Index(kind="hnsw")
    index.add(x)
    assert index.recall_against_exact(x[:5], k=5) >= 0.9
    index.save(tmp_path)
    assert Index.load(tmp_path).search(x[:2], k=1)[1].tolist() == [[0], [1]]


def test_ivf_defaults_and_missing_hits():
    x, _ = clustered(4, n_clusters=4, per_cluster=40, spread=0.01)
    index = Index(kind="ivf", nlist=4, nprobe=1)
    index.add(x, payloads=[str(i) for i in range(len(x))])
    scores, ids = index.search(x[:1], k=50)  # one probed list holds 40 items: 10 slots stay empty
    assert (ids == -1).sum() == 10 and np.isneginf(scores[ids == -1]).all()
    assert index.payloads_for(ids[0])[-1] is None
    auto = Index(kind="ivf")
    auto.add(x)
    assert auto.params["nlist"] == min(4 * int(np.sqrt(len(x))), len(x) // 39)


def test_errors_name_the_fix(tmp_path):
    x, _ = clustered(5)
    with pytest.raises(ValueError, match="empty"):
        Index().search(x[:1], k=1)
    index = Index(dim=16)
    with pytest.raises(ValueError, match="dim 8 but the index has dim 16"):
        index.add(np.ones((2, 8), np.float32))
    index.add(x[:10], payloads=[str(i) for i in range(10)])
    with pytest.raises(ValueError, match="pass a smaller k"):
        index.search(x[:1], k=11)
    with pytest.raises(ValueError, match="pass a smaller k"):
        index.search(x[:1], k=0)
    with pytest.raises(ValueError, match="NaN"):
        index.search(np.full((1, 16), np.nan, np.float32), k=1)
    with pytest.raises(ValueError, match="unique"):
        index.add(x[10:12], ids=[3, 100])
    with pytest.raises(ValueError, match="JSON"):
        index.add(x[10:11], payloads=[object()])
    with pytest.raises(ValueError, match="not in the index"):
        index.payloads_for([12345])
    with pytest.raises(ValueError, match="at least 50 vectors"):
        Index(kind="ivf", nlist=50).add(x[:20])
    with pytest.raises(ValueError, match="unknown params"):
        Index(kind="flat", nlist=4)
    with pytest.raises(ValueError, match="metric must be"):
        Index(metric="l1")
    with pytest.raises(ValueError, match="kind must be"):
        Index(kind="pq")
    with pytest.raises(ValueError, match="not a saved Index"):
        Index.load(tmp_path)
    assert len(index) == 10  # failed adds leave the index unchanged
