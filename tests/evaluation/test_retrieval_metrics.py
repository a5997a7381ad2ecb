"""retrieval_metrics against a naive reference (loops and sorted lists), hand-computed examples, and PML."""

import math

import numpy as np
import pytest
import torch

from finetuner.evaluation import retrieval_metrics

KS = (1, 3, 5)


def naive_score(q: np.ndarray, x: np.ndarray, distance: str) -> float:
    q, x = q.astype(np.float64), x.astype(np.float64)
    if distance == "cosine":
        return float(np.dot(q / np.linalg.norm(q), x / np.linalg.norm(x)))
    if distance == "dot":
        return float(np.dot(q, x))
    return -float(np.sum((q - x) ** 2))


def naive_per_query(rel: list[int], ks) -> dict[str, float]:
    """Every metric of one query from its full relevance list (rank 1 first), straight from the definitions."""
    n_rel = sum(rel)

    def hits(k):
        return sum(rel[:k])

    def precision_at(i):
        return hits(i) / i

    out = {}
    for k in ks:
        out[f"recall@{k}"] = 1.0 if hits(k) > 0 else 0.0
        out[f"precision@{k}"] = hits(k) / k
        out[f"map@{k}"] = sum(precision_at(i) for i in range(1, k + 1) if i <= len(rel) and rel[i - 1]) / min(k, n_rel)
        dcg = sum(1 / math.log2(i + 1) for i in range(1, k + 1) if i <= len(rel) and rel[i - 1])
        out[f"ndcg@{k}"] = dcg / sum(1 / math.log2(i + 1) for i in range(1, min(k, n_rel) + 1))
    out["map@r"] = sum(precision_at(i) for i in range(1, n_rel + 1) if rel[i - 1]) / n_rel
    out["r_precision"] = hits(n_rel) / n_rel
    out["mrr"] = 1 / (rel.index(1) + 1)
    return out


def naive_retrieval(queries, q_labels, index, i_labels, distance, exclude_self, ks=KS, rows=None):
    per_query = []
    for qi in range(len(queries)) if rows is None else rows:
        cands = [j for j in range(len(index)) if not (exclude_self and j == qi)]
        ranked = sorted(cands, key=lambda j: (-naive_score(queries[qi], index[j], distance), j))
        rel = [int(i_labels[j] == q_labels[qi]) for j in ranked]
        if sum(rel) > 0:
            per_query.append(naive_per_query(rel, ks))
    return {key: float(np.mean([m[key] for m in per_query])) for key in per_query[0]}


def assert_close(got: dict, want: dict):
    assert set(got) == set(want)
    for key in want:
        assert got[key] == pytest.approx(want[key], abs=1e-9), key


def make_data(seed, n, dim, n_classes, dtype, ties):
    rng = np.random.default_rng(seed)
    if ties:  # unit vectors with entries in {0, +-0.5}: every score is exact, many ties, duplicates
        emb = np.zeros((n, 8))
        for row in emb:
            row[rng.choice(8, 4, replace=False)] = rng.choice([-0.5, 0.5], 4)
        emb[1] = emb[0]  # an exact duplicate in a different class or not
    else:
        emb = rng.standard_normal((n, dim))
    labels = rng.integers(0, n_classes, n)
    labels[-1] = n_classes  # a class with a single item
    return emb.astype(dtype), labels


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("distance", ["cosine", "dot", "euclidean"])
@pytest.mark.parametrize("ties", [False, True])
def test_leave_one_out_matches_naive(seed, dtype, distance, ties):
    emb, labels = make_data(seed, 37, 6, 5, dtype, ties)
    want = naive_retrieval(emb, labels, emb, labels, distance, exclude_self=True)
    assert_close(retrieval_metrics(emb, labels, k=KS, distance=distance), want)
    assert_close(retrieval_metrics(emb, labels, k=KS, distance=distance, chunk_size=5), want)  # 5 does not divide 37


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ties", [False, True])
def test_query_index_split_matches_naive(seed, dtype, ties):
    emb, labels = make_data(seed, 50, 6, 4, dtype, ties)
    queries, q_labels, index, i_labels = emb[:13], labels[:13], emb[13:], labels[13:]
    q_labels[0] = 99  # a label absent from the index: skipped
    want = naive_retrieval(queries, q_labels, index, i_labels, "cosine", exclude_self=False)
    for chunk_size in (None, 1, 4):
        got = retrieval_metrics(queries, q_labels, index, i_labels, k=KS, chunk_size=chunk_size)
        assert_close(got, want)


def test_exclude_self_with_explicit_index_matches_naive():
    emb, labels = make_data(3, 30, 6, 3, np.float32, ties=True)
    want = naive_retrieval(emb[:10], labels[:10], emb, labels, "dot", exclude_self=True)
    got = retrieval_metrics(emb[:10], labels[:10], emb, labels, k=KS, distance="dot", exclude_self=True, chunk_size=3)
    assert_close(got, want)


def test_large_r_and_small_k():
    # Two big classes: R ~ 40 per query, far deeper than max(k) = 1, in uneven chunks.
    emb, _ = make_data(4, 81, 5, 2, np.float64, ties=False)
    labels = np.arange(81) % 2
    want = naive_retrieval(emb, labels, emb, labels, "euclidean", exclude_self=True, ks=(1,))
    assert_close(retrieval_metrics(emb, labels, k=1, distance="euclidean", chunk_size=7), want)


def test_integer_ties_many_duplicates():
    # Integer vectors in a tiny range: most scores tie, so the index-order rule decides nearly every rank.
    rng = np.random.default_rng(5)
    emb = rng.integers(-1, 2, (40, 3)).astype(np.float32)
    labels = rng.integers(0, 3, 40)
    for distance in ("dot", "euclidean"):
        want = naive_retrieval(emb, labels, emb, labels, distance, exclude_self=True)
        assert_close(retrieval_metrics(emb, labels, k=KS, distance=distance, chunk_size=6), want)


def test_hand_computed_leave_one_out():
    # Points on a line, euclidean, k=(1, 3). Item: position (label)
    #   0: 0 (A)  1: 1 (A)  2: 2 (B)  3: 3 (B)  4: 5 (A)
    # Rankings (ties by lower index) and relevance, R = same-label items other than the query:
    #   q0: 1 2 3 4 -> 1 0 0 1, R=2    q1: 0 2 3 4 (0 and 2 tie at distance 1; 0 first) -> 1 0 0 1, R=2
    #   q2: 1 3 0 4 (1 and 3 tie) -> 0 1 0 0, R=1    q3: 2 1 4 0 (1 and 4 tie) -> 1 0 0 0, R=1
    #   q4: 3 2 1 0 -> 0 0 1 1, R=2
    idcg2 = 1 + 1 / math.log2(3)
    per_query = {
        "recall@1": [1, 1, 0, 1, 0],
        "recall@3": [1, 1, 1, 1, 1],
        "precision@1": [1, 1, 0, 1, 0],
        "precision@3": [1 / 3] * 5,
        "map@1": [1, 1, 0, 1, 0],  # rel_1 * P(1) / min(1, R)
        "map@3": [1 / 2, 1 / 2, (1 / 2) / 1, 1, (1 / 3) / 2],  # q2: P(2)=1/2; q4: P(3)=1/3, min(3, R)=2
        "ndcg@1": [1, 1, 0, 1, 0],
        "ndcg@3": [1 / idcg2, 1 / idcg2, 1 / math.log2(3), 1, (1 / math.log2(4)) / idcg2],
        "map@r": [1 / 2, 1 / 2, 0, 1, 0],  # top R: q0, q1: [1, 0] -> P(1)/2
        "r_precision": [1 / 2, 1 / 2, 0, 1, 0],
        "mrr": [1, 1, 1 / 2, 1, 1 / 3],
    }
    want = {key: sum(values) / 5 for key, values in per_query.items()}
    assert want["map@3"] == pytest.approx(8 / 15) and want["mrr"] == pytest.approx(23 / 30)
    emb = np.array([[0.0], [1.0], [2.0], [3.0], [5.0]], dtype=np.float32)
    labels = np.array([0, 0, 1, 1, 0])
    for chunk_size in (None, 1, 2):
        assert_close(retrieval_metrics(emb, labels, k=(1, 3), distance="euclidean", chunk_size=chunk_size), want)


def test_hand_computed_split_with_lone_query_and_deep_first_hit():
    # Index on a line: positions 0 1 2 3 4 with labels 0 1 1 1 2. Queries (euclidean, k=1):
    #   qa at 0.2, label 2: ranking 0 1 2 3 4 -> relevance 0 0 0 0 1, R=1: first hit at rank 5 (past top-k)
    #   qb at 9.0, label 7: not in the index, R=0: skipped for every metric
    #   qc at 2.9, label 1: ranking 3 2 4 1 0 -> 1 1 0 1 0, R=3: map@r = (1/1 + 2/2) / 3, r_precision = 2/3
    index = np.array([[0.0], [1.0], [2.0], [3.0], [4.0]])
    queries = np.array([[0.2], [9.0], [2.9]])
    got = retrieval_metrics(queries, [2, 7, 1], index, [0, 1, 1, 1, 2], k=1, distance="euclidean")
    want = {
        "recall@1": 1 / 2,
        "precision@1": 1 / 2,
        "map@1": 1 / 2,
        "ndcg@1": 1 / 2,
        "map@r": (0 + 2 / 3) / 2,
        "r_precision": (0 + 2 / 3) / 2,
        "mrr": (1 / 5 + 1) / 2,
    }
    assert_close(got, want)


def test_k_larger_than_candidates_pads_with_irrelevant():
    # 3 items, leave-one-out: 2 candidates. Item 0 and 1 share a label; k=5 counts 3 padded misses.
    emb = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    got = retrieval_metrics(emb, [0, 0, 1], k=5)
    assert got["precision@5"] == pytest.approx(1 / 5)
    assert got["recall@5"] == 1.0 and got["map@5"] == 1.0 and got["ndcg@5"] == 1.0


def test_max_queries_samples_queries_against_full_index():
    emb, labels = make_data(6, 60, 6, 4, np.float32, ties=False)
    full = retrieval_metrics(emb, labels, k=KS)
    assert retrieval_metrics(emb, labels, k=KS, max_queries=500) == full
    rows = torch.randperm(60, generator=torch.Generator().manual_seed(3))[:20].sort().values.tolist()
    want = naive_retrieval(emb, labels, emb, labels, "cosine", exclude_self=True, rows=rows)
    got = retrieval_metrics(emb, labels, k=KS, max_queries=20, seed=3)
    assert_close(got, want)
    assert retrieval_metrics(emb, labels, k=KS, max_queries=20, seed=3) == got


def test_torch_inputs_match_numpy():
    emb, labels = make_data(7, 30, 6, 3, np.float32, ties=False)
    want = retrieval_metrics(emb, labels)
    assert retrieval_metrics(torch.from_numpy(emb), torch.from_numpy(labels)) == want
    assert list(want) == [
        *[f"{name}@{k}" for name in ("recall", "precision", "map", "ndcg") for k in (1, 5, 10)],
        "map@r",
        "r_precision",
        "mrr",
    ]


@pytest.mark.parametrize("leave_one_out", [True, False])
def test_agrees_with_pml_accuracy_calculator(leave_one_out):
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

    emb, labels = make_data(8, 120, 8, 6, np.float32, ties=False)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)  # PML's default kNN is L2: same ranking as cosine
    calc = AccuracyCalculator(
        include=("precision_at_1", "mean_average_precision_at_r", "r_precision"), k="max_bin_count"
    )
    if leave_one_out:
        pml = calc.get_accuracy(emb, labels)
        ours = retrieval_metrics(emb, labels, k=1, chunk_size=7)
    else:
        pml = calc.get_accuracy(emb[:30], labels[:30], emb[30:], labels[30:])
        ours = retrieval_metrics(emb[:30], labels[:30], emb[30:], labels[30:], k=1)
    assert ours["recall@1"] == pytest.approx(pml["precision_at_1"], abs=1e-6)
    assert ours["map@r"] == pytest.approx(pml["mean_average_precision_at_r"], abs=1e-6)
    assert ours["r_precision"] == pytest.approx(pml["r_precision"], abs=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(query_embeddings=np.ones((3, 2)), query_labels=[0, 0]), "one label per embedding"),
        (dict(query_embeddings=np.ones((3, 2)), query_labels=[0.0, 0.0, 1.0]), "must be integers"),
        (dict(query_embeddings=np.array([[0.0, np.nan], [1, 1]]), query_labels=[0, 0]), "NaN"),
        (dict(query_embeddings=np.ones((2, 2)), query_labels=[0, 0], distance="l1"), "distance must be"),
        (dict(query_embeddings=np.ones((2, 2)), query_labels=[0, 0], k=0), "positive int"),
        (dict(query_embeddings=np.ones((2, 2)), query_labels=[0, 0], chunk_size=0), "chunk_size"),
        (dict(query_embeddings=np.ones((2, 2)), query_labels=[0, 1]), "no query has a relevant"),
        (dict(query_embeddings=np.ones((2, 2)), query_labels=[0, 0], index_labels=[0]), "without index_embeddings"),
        (dict(query_embeddings=np.ones((2, 2)), query_labels=[0, 0], index_embeddings=np.ones((2, 2))), "index_labels"),
        (
            dict(
                query_embeddings=np.ones((2, 2)),
                query_labels=[0, 0],
                index_embeddings=np.ones((2, 3)),
                index_labels=[0, 0],
            ),
            "dim",
        ),
        (
            dict(
                query_embeddings=np.ones((3, 2)),
                query_labels=[0, 0, 0],
                index_embeddings=np.ones((2, 2)),
                index_labels=[0, 0],
                exclude_self=True,
            ),
            "exclude_self",
        ),
        (dict(query_embeddings=np.ones(4), query_labels=[0, 0, 0, 0]), "2-D"),
    ],
)
def test_bad_input_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        retrieval_metrics(**kwargs)


def test_class_names_as_labels_score_like_their_numbers():
    emb = np.random.default_rng(0).normal(size=(12, 4)).astype(np.float32)
    names = np.array(["bag", "shoe", "coat"])[np.arange(12) % 3]
    numbers = np.arange(12) % 3
    assert retrieval_metrics(emb, names) == retrieval_metrics(emb, numbers)
    named = retrieval_metrics(emb[:6], list(names[:6]), emb[6:], list(names[6:]))
    assert named == retrieval_metrics(emb[:6], numbers[:6], emb[6:], numbers[6:])
