"""Compact kinds of Index: int8 scalar quantisation and binary codes, with float32 re-scoring; save/load
memory-maps the float32 vectors so only the codes stay in memory."""

import json

import numpy as np
import pytest

from finetuner.search import Index
from tests.search.test_search_index import brute_force, clustered


@pytest.mark.parametrize("metric", ["cosine", "dot", "euclidean"])
@pytest.mark.parametrize("kind", ["int8", "binary"])
def test_rescored_hits_are_exact_neighbours_with_exact_scores(kind, metric):
    x, rng = clustered(0, n_clusters=6, per_cluster=50, dim=24, spread=0.3)
    queries = x[rng.choice(len(x), 10, replace=False)] + 0.05 * rng.standard_normal((10, 24)).astype(np.float32)
    index = Index(metric=metric, kind=kind, rerank=60)  # 600 candidates >= the whole index: the exact top k
    index.add(x)
    scores, ids = index.search(queries, k=5)
    want = brute_force(x, queries, metric)
    order = np.argsort(-want, axis=1, kind="stable")[:, :5]
    np.testing.assert_array_equal(ids, order)
    np.testing.assert_allclose(scores, np.take_along_axis(want, order, 1), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    ("kind", "params", "floor"), [("int8", {}, 0.9), ("binary", {}, 0.9), ("int8", {"rerank": 3}, 0.98)]
)
def test_recall_on_clustered_data(kind, params, floor):
    x, rng = clustered(1, n_clusters=10, per_cluster=60, dim=32, spread=0.4)
    index = Index(kind=kind, **params)
    index.add(x)
    assert index.recall_against_exact(x[rng.choice(len(x), 30, replace=False)] + 0.01, k=10) >= floor


def test_binary_without_rescoring_ranks_by_hamming_distance():
    x = np.array([[1, 1, 1, 1], [1, 1, 1, -1], [-1, -1, 1, -1], [-1, -1, -1, -1]], dtype=np.float32)
    index = Index(dim=4, kind="binary", rerank=0)  # 4 bits: padded to one byte
    index.add(x)
    scores, ids = index.search(np.array([[2.0, 1.0, 0.5, 3.0]], np.float32), k=4)
    assert ids.tolist() == [[0, 1, 2, 3]] and scores.tolist() == [[0.0, -1.0, -3.0, -4.0]]


@pytest.mark.parametrize("kind", ["int8", "binary"])
def test_save_load_keeps_results_and_maps_the_float_vectors(tmp_path, kind):
    x, _ = clustered(2, n_clusters=4, per_cluster=50, dim=64)
    index = Index(kind=kind, rerank=3)
    index.add(x[:120], payloads=[f"{i}.jpg" for i in range(120)])
    index.add(x[120:])
    before = index.search_results(x[::23], k=4)
    index.save(tmp_path / "index")
    files = sorted(p.name for p in (tmp_path / "index").iterdir())
    assert files == ["config.json", "ids.json", "index.faiss", "payloads.json", "vectors.npy"]
    assert json.loads((tmp_path / "index" / "config.json").read_text())["params"] == index.params
    loaded = Index.load(tmp_path / "index")
    assert loaded.search_results(x[::23], k=4) == before
    code_bytes = {"int8": 64, "binary": 8}[kind] * len(x)
    assert index.nbytes >= code_bytes + x.nbytes  # while building: codes and float32 vectors in memory
    assert code_bytes <= loaded.nbytes < code_bytes + 4096  # after load: the codes (+ a header) only
    new = np.random.default_rng(0).standard_normal((3, 64)).astype(np.float32)
    loaded.add(new)  # still growable after load: the mapped vectors and the new ones are re-scored alike
    assert len(loaded) == len(x) + 3 and loaded.search(new, k=1)[1].ravel().tolist() == [200, 201, 202]


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="rerank must be 0 .* or a positive int"):
        Index(kind="binary", rerank=-1)
    with pytest.raises(ValueError, match="unknown params"):
        Index(kind="int8", nprobe=3)
    index = Index(kind="int8")
    index.add(clustered(3)[0])
    index.save(tmp_path / "index")
    (tmp_path / "index" / "vectors.npy").unlink()
    with pytest.raises(ValueError, match="vectors.npy is missing"):
        Index.load(tmp_path / "index")
