"""pair_metrics against a naive reference and a hand-computed example."""

import math

import numpy as np
import pytest
import torch

from finetuner.evaluation import pair_metrics


def naive_pair(queries, docs, relevant, ks):
    per_query = []
    for qi, rel_docs in enumerate(relevant):
        rel_docs = set(rel_docs)
        if not rel_docs:
            continue
        ranked = sorted(range(len(docs)), key=lambda j: (-float(np.dot(queries[qi], docs[j])), j))
        rel = [int(j in rel_docs) for j in ranked]
        n_rel = len(rel_docs)
        m = {}
        for k in ks:
            m[f"recall@{k}"] = sum(rel[:k]) / n_rel
            ap = sum(sum(rel[:i]) / i for i in range(1, k + 1) if i <= len(rel) and rel[i - 1])
            m[f"map@{k}"] = ap / min(k, n_rel)
            dcg = sum(1 / math.log2(i + 1) for i in range(1, k + 1) if i <= len(rel) and rel[i - 1])
            m[f"ndcg@{k}"] = dcg / sum(1 / math.log2(i + 1) for i in range(1, min(k, n_rel) + 1))
        m["mrr"] = 1 / (rel.index(1) + 1)
        per_query.append(m)
    return {key: float(np.mean([m[key] for m in per_query])) for key in per_query[0]}


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_naive(seed, dtype):
    rng = np.random.default_rng(seed)
    queries = rng.integers(-2, 3, (15, 4)).astype(dtype)  # integer vectors: exact scores, many ties
    docs = rng.integers(-2, 3, (23, 4)).astype(dtype)
    relevant = [list(rng.choice(23, rng.integers(0, 4), replace=False)) for _ in range(15)]
    relevant[0] = [5, 5, 7]  # duplicates count once
    want = naive_pair(queries, docs, relevant, (1, 3, 30))
    for chunk_size in (None, 4):
        got = pair_metrics(queries, docs, relevant, k=(1, 3, 30), distance="dot", chunk_size=chunk_size)
        assert got == pytest.approx(want, abs=1e-9)


def test_one_relevant_document_per_query_as_array():
    rng = np.random.default_rng(2)
    queries, docs = rng.standard_normal((10, 5)), rng.standard_normal((12, 5))
    target = rng.integers(0, 12, 10)
    got = pair_metrics(torch.from_numpy(queries), docs, target, k=(1, 5), distance="dot")
    assert got == pytest.approx(naive_pair(queries, docs, [[t] for t in target], (1, 5)), abs=1e-9)
    assert list(got) == ["recall@1", "recall@5", "map@1", "map@5", "ndcg@1", "ndcg@5", "mrr"]


def test_hand_computed():
    # Cosine scores of q0 = (1, 0) vs documents d0 = (0, 1): 0, d1 = (1, 0): 1, d2 = (1, 1): 0.71 -> ranking d1 d2 d0.
    # q0's relevant documents {d2, d0}: relevance 0 1 1. recall@1 = 0, recall@2 = 1/2,
    # map@2 = (P(2) = 1/2) / min(2, 2) = 1/4, ndcg@2 = (1/log2(3)) / (1 + 1/log2(3)), mrr = 1/2.
    # q1 = (0, 1) ranks d0 (1), d2 (0.71), d1 (0); relevant {d1}: first hit at rank 3 (past k): mrr = 1/3.
    # q2 has no relevant document: skipped.
    q = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    d = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    got = pair_metrics(q, d, [[2, 0], [1], []], k=(1, 2))
    ndcg = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    want = {
        "recall@1": 0.0,
        "recall@2": (1 / 2 + 0) / 2,
        "map@1": 0.0,
        "map@2": (1 / 4 + 0) / 2,
        "ndcg@1": 0.0,
        "ndcg@2": (ndcg + 0) / 2,
        "mrr": (1 / 2 + 1 / 3) / 2,
    }
    assert got == pytest.approx(want, abs=1e-9)


def test_bad_input_raises():
    q, d = np.ones((2, 3)), np.ones((4, 3))
    with pytest.raises(ValueError, match="one entry per query"):
        pair_metrics(q, d, [[0]])
    with pytest.raises(ValueError, match="outside"):
        pair_metrics(q, d, [[0], [4]])
    with pytest.raises(ValueError, match="no query has a relevant"):
        pair_metrics(q, d, [[], []])
    with pytest.raises(ValueError, match="dim"):
        pair_metrics(q, np.ones((4, 2)), [[0], [1]])
