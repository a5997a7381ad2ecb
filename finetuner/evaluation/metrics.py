"""Pure evaluation metrics: chunked exact-kNN retrieval metrics, pair (query -> document) metrics, and
classification accuracy. Inputs are numpy arrays or torch tensors; nothing here keeps state.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from finetuner.evaluation._knn import (
    Scorer,
    as_embeddings,
    as_labels,
    first_relevant_rank,
    plan_chunks,
    ranked_topk,
)
from finetuner.evaluation._ranking import RankingSums

_SCORE_BUDGET_BYTES = 256 << 20  # per query block: scores + top-k bookkeeping; peak extra memory is a few times this


def retrieval_metrics(
    query_embeddings,
    query_labels,
    index_embeddings=None,
    index_labels=None,
    *,
    k: int | Sequence[int] = (1, 5, 10),
    distance: str = "cosine",
    exclude_self: bool | None = None,
    max_queries: int | None = None,
    chunk_size: int | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    per_class: bool = False,
) -> dict[str, float]:
    """Exact kNN retrieval metrics for labelled embeddings, computed in query blocks.

    Each query ranks the candidates (the index, minus the query's own item when ``exclude_self``) by
    score, best first. **Ties are broken by index order**: among equal scores the candidate with the
    lower row number in the index ranks first, so results are deterministic, and duplicate vectors are
    ranked like any other tie. A candidate is *relevant* when its label equals the query's label; R is
    the number of relevant candidates of that query (for leave-one-out: the size of its class minus 1).

    With ``rel_i`` = 1 if the item at rank i is relevant, ``hits@k`` = sum of ``rel_i`` for i <= k, per query:

    - ``recall@k``: 1 if ``hits@k`` > 0, else 0 (at least one relevant item in the top k; PML's
      "precision_at_1" equals ``recall@1``).
    - ``precision@k``: ``hits@k / k``.
    - ``map@k``: ``sum_{i<=k} rel_i * P(i) / min(k, R)`` with ``P(i) = hits@i / i``.
    - ``ndcg@k``: ``sum_{i<=k} rel_i / log2(i + 1)`` divided by the ideal value ``sum_{i<=min(k, R)} 1 / log2(i + 1)``.
    - ``map@r`` (MAP@R, Musgrave et al. 2020, "A Metric Learning Reality Check"): ``sum_{i<=R} rel_i * P(i) / R``.
    - ``r_precision``: ``hits@R / R``.
    - ``mrr``: ``1 / rank`` of the first relevant item over the *whole* ranking (not cut at k).

    Every metric is the mean over queries that have at least one relevant candidate (R >= 1). Queries
    with R = 0 (a class with a single item in leave-one-out, or a label absent from the index) are
    skipped for every metric, as pytorch-metric-learning's ``AccuracyCalculator`` does with its
    "lone" queries. When the index holds fewer than k candidates, the ranking counts as padded with
    irrelevant items (``precision@k`` still divides by k).

    Cost: ``O(Q x N x dim)`` work; memory ``O(chunk x N)`` whatever N. Each block keeps the top
    ``max(max(k), R)`` items of each query, so MAP@R is exact for any R (queries are grouped by R, and
    blocks with a large R hold fewer queries). Leave-one-out over N items is ``O(N^2)``: pass
    ``max_queries`` to score a seeded random sample of queries against the *full* index.

    Args:
        query_embeddings: ``(Q, dim)`` floats.
        query_labels: ``(Q,)`` ints.
        index_embeddings: ``(N, dim)`` floats, or None for leave-one-out on the queries.
        index_labels: ``(N,)`` ints; required with ``index_embeddings``.
        k: the cutoff(s) for the ``@k`` metrics.
        distance: ``"cosine"`` (embeddings are L2-normalised), ``"dot"`` (inner product) or
            ``"euclidean"`` (smaller distance ranks first).
        exclude_self: drop query i's own item, index row i, from its candidates (by index, never by
            distance). None means True exactly when no index is given. With an explicit index it
            requires the queries to be the first Q rows of the index.
        max_queries: score a random sample of this many queries (seeded by ``seed``), against all candidates.
        chunk_size: queries per block; None picks it so each block's scores take about 256 MiB.
        seed: seed for the ``max_queries`` sample.
        device: where to compute, e.g. ``"cuda"``; None uses the device of ``query_embeddings``.
        per_class: also return every metric per query class, as ``class/<label>/<metric>``: the mean over that
            class's scored queries (a class whose queries all have R = 0 has none).

    Returns:
        ``{"recall@1", ..., "precision@k", "map@k", "ndcg@k", "map@r", "r_precision", "mrr"}`` as floats, plus
        ``class/<label>/...`` with ``per_class``.

    Example:
        >>> emb = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9], [1, 1]], dtype=np.float32)
        >>> m = retrieval_metrics(emb, [0, 0, 1, 1, 2], k=1)
        >>> m["recall@1"], m["map@r"]  # item 4 is alone in its class and is skipped
        (1.0, 1.0)
    """
    ks = _check_ks(k)
    queries = as_embeddings(query_embeddings, "query_embeddings")
    query_labels, index_labels = _class_numbers(query_labels, index_labels)
    q_labels = as_labels(query_labels, queries.shape[0], "query_labels")
    if index_embeddings is None:
        if index_labels is not None:
            raise ValueError("index_labels given without index_embeddings; pass both, or neither for leave-one-out")
        index, i_labels = queries, q_labels
    else:
        if index_labels is None:
            raise ValueError("index_embeddings given without index_labels; pass the labels of the index too")
        index = as_embeddings(index_embeddings, "index_embeddings")
        i_labels = as_labels(index_labels, index.shape[0], "index_labels")
        _check_same_dim(queries, index, "index_embeddings")
    exclude_self = index_embeddings is None if exclude_self is None else bool(exclude_self)
    n_index = index.shape[0]
    if exclude_self and queries.shape[0] > n_index:
        raise ValueError(
            "exclude_self=True needs query i to be index row i, but there are more queries than index rows; "
            "pass exclude_self=False or put the queries first in the index"
        )
    n_candidates = n_index - int(exclude_self)
    if n_candidates < 1:
        raise ValueError("the index has no candidates left after excluding the query itself; add more items")

    rows = _sample_rows(queries.shape[0], max_queries, seed)
    label_values, classes = torch.unique(torch.cat([i_labels, q_labels[rows]]), return_inverse=True)
    i_cls, q_cls = classes[:n_index], classes[n_index:]
    n_rel = torch.bincount(i_cls, minlength=int(classes.max()) + 1)[q_cls]
    if exclude_self:
        n_rel -= (i_cls[rows] == q_cls).long()
    keep = n_rel > 0
    if not bool(keep.any()):
        raise ValueError(
            "no query has a relevant item in the index (every class needs at least two items for "
            "leave-one-out, or the query labels must appear in index_labels)"
        )
    depth = n_rel[keep].clamp(min=max(ks)).clamp(max=n_candidates)
    order = depth.argsort(stable=True)
    rows, q_cls, n_rel, depth = rows[keep][order], q_cls[keep][order], n_rel[keep][order], depth[order]

    dev = _device(queries, device)
    scorer = Scorer(index, distance, dev)
    i_cls = i_cls.to(dev)
    sums = RankingSums(ks, at_r=True, n_groups=len(label_values) if per_class else 0)
    for start, end in plan_chunks(depth.tolist(), n_index, _SCORE_BUDGET_BYTES, _check_chunk_size(chunk_size)):
        block = rows[start:end]
        cls = q_cls[start:end].to(dev)
        scores = scorer(queries[block])
        if exclude_self:
            scores[torch.arange(len(block), device=dev), block.to(dev)] = float("-inf")
        top = ranked_topk(scores, int(depth[end - 1]))
        rel = i_cls[top] == cls[:, None]
        first = rel.to(torch.uint8).argmax(1) + 1  # argmax returns the first maximum
        missing = (~rel.any(1)).nonzero().flatten()
        if missing.numel():
            first[missing] = first_relevant_rank(scores, lambda p, c=cls: i_cls[None, :] == c[p, None], missing)
        sums.add(rel, n_rel[start:end], first, q_cls[start:end] if per_class else None)
    keys = [f"{name}@{c}" for name in ("recall", "precision", "map", "ndcg") for c in ks]
    keys += ["map@r", "r_precision", "mrr"]
    metrics = sums.means(keys)
    for group, values in (sums.group_means(keys) if per_class else {}).items():
        label = int(label_values[group])
        metrics.update({f"class/{label}/{key}": value for key, value in values.items()})
    return metrics


def pair_metrics(
    query_embeddings,
    document_embeddings,
    relevant,
    *,
    k: int | Sequence[int] = (1, 5, 10),
    distance: str = "cosine",
    chunk_size: int | None = None,
    device: str | torch.device | None = None,
) -> dict[str, float]:
    """Retrieval metrics for pair data: each query ranks all documents; ``relevant`` says which count.

    Ranking and tie-breaking are as in :func:`retrieval_metrics` (ties: lower document index first).
    With R = the number of relevant documents of a query and ``hits@k`` those in its top k:

    - ``recall@k``: ``hits@k / R``, the information-retrieval recall (the fraction of the query's
      relevant documents found). With one relevant document per query it equals the hit rate that
      ``retrieval_metrics`` reports as ``recall@k``.
    - ``map@k``, ``ndcg@k`` (binary relevance) and ``mrr`` (first relevant document over the whole
      ranking) are defined exactly as in :func:`retrieval_metrics`.

    Queries with no relevant document are skipped. Memory is ``O(chunk x n_documents)``.

    Args:
        query_embeddings: ``(Q, dim)`` floats.
        document_embeddings: ``(M, dim)`` floats.
        relevant: per query, the list of relevant document indices; or a 1-D int array with the one
            relevant document of each query.
        k: the cutoff(s) for the ``@k`` metrics.
        distance: ``"cosine"``, ``"dot"`` or ``"euclidean"``.
        chunk_size: queries per block; None picks it so each block's scores take about 256 MiB.
        device: where to compute; None uses the device of ``query_embeddings``.

    Returns:
        ``{"recall@k", "map@k", "ndcg@k" for each k, "mrr"}`` as floats.

    Example:
        >>> q = np.array([[1, 0], [0, 1]], dtype=np.float32)
        >>> d = np.array([[0, 1], [1, 0], [1, 0.1]], dtype=np.float32)
        >>> pair_metrics(q, d, [[1, 2], [0]], k=1)["recall@1"]  # query 0 finds 1 of its 2 documents
        0.75
    """
    ks = _check_ks(k)
    queries = as_embeddings(query_embeddings, "query_embeddings")
    docs = as_embeddings(document_embeddings, "document_embeddings")
    _check_same_dim(queries, docs, "document_embeddings")
    lists = _relevance_lists(relevant, queries.shape[0], docs.shape[0])
    rows = torch.tensor([i for i, docs_i in enumerate(lists) if docs_i.numel()], dtype=torch.long)
    if rows.numel() == 0:
        raise ValueError("no query has a relevant document; give at least one document index per query")
    n_rel = torch.tensor([lists[i].numel() for i in rows.tolist()], dtype=torch.long)

    dev = _device(queries, device)
    scorer = Scorer(docs, distance, dev)
    n_docs = docs.shape[0]
    depth = min(max(ks), n_docs)
    sums = RankingSums(ks, at_r=False)
    for start, end in plan_chunks([depth] * len(rows), n_docs, _SCORE_BUDGET_BYTES, _check_chunk_size(chunk_size)):
        block = rows[start:end].tolist()
        scores = scorer(queries[rows[start:end]])
        top = ranked_topk(scores, depth)
        codes = torch.cat([j * n_docs + lists[i] for j, i in enumerate(block)]).to(dev)
        local = torch.arange(len(block), device=dev)[:, None]
        rel = torch.isin(local * n_docs + top, codes)
        first = rel.to(torch.uint8).argmax(1) + 1
        missing = (~rel.any(1)).nonzero().flatten()
        if missing.numel():

            def mask(piece, block=block):
                m = torch.zeros(len(piece), n_docs, dtype=torch.bool, device=dev)
                for j, p in enumerate(piece.tolist()):
                    m[j, lists[block[p]].to(dev)] = True
                return m

            first[missing] = first_relevant_rank(scores, mask, missing)
        sums.add(rel, n_rel[start:end], first)
    out = sums.means([f"fraction@{c}" for c in ks] + [f"{name}@{c}" for name in ("map", "ndcg") for c in ks] + ["mrr"])
    return {key.replace("fraction@", "recall@"): value for key, value in out.items()}


def classification_metrics(logits_or_pred, labels, *, per_class: bool = False) -> dict[str, float]:
    """Accuracy and macro-averaged F1 of class predictions.

    Args:
        logits_or_pred: ``(n, num_classes)`` scores (the argmax is the prediction) or ``(n,)`` int predictions.
        labels: ``(n,)`` int true classes.
        per_class: also return ``class/<label>/accuracy``, the fraction of that class's items predicted as it
            (its recall), for every class in ``labels``.

    Returns:
        ``{"accuracy", "macro_f1"}``; ``macro_f1`` averages the per-class F1 ``2TP / (2TP + FP + FN)``
        over every class that occurs in the labels or the predictions.

    Example:
        >>> classification_metrics(np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]), [0, 1, 1])["accuracy"]
        0.6666666666666666
    """
    if isinstance(logits_or_pred, torch.Tensor):
        scores = logits_or_pred.detach().cpu()
    else:
        scores = torch.from_numpy(np.asarray(logits_or_pred))
    if scores.ndim == 2:
        pred = scores.argmax(1)
    elif scores.ndim == 1 and not scores.is_floating_point():
        pred = scores.long()
    else:
        raise ValueError(f"expected (n, num_classes) logits or (n,) int predictions, got shape {tuple(scores.shape)}")
    truth = as_labels(labels, pred.shape[0], "labels")
    if pred.numel() == 0:
        raise ValueError("no predictions given; pass at least one item")
    classes = torch.unique(torch.cat([truth, pred]))
    tp = torch.stack([((pred == c) & (truth == c)).sum() for c in classes]).double()
    fp = torch.stack([((pred == c) & (truth != c)).sum() for c in classes]).double()
    fn = torch.stack([((pred != c) & (truth == c)).sum() for c in classes]).double()
    metrics = {
        "accuracy": float((pred == truth).double().mean()),
        "macro_f1": float((2 * tp / (2 * tp + fp + fn)).mean()),
    }
    for c in torch.unique(truth).tolist() if per_class else []:
        metrics[f"class/{c}/accuracy"] = float((pred[truth == c] == c).double().mean())
    return metrics


def _class_numbers(query_labels, index_labels):
    """Class names (strings or other non-numeric labels, as folder names are) numbered through one vocabulary
    shared by queries and index, so equal names get equal numbers; numeric labels unchanged."""
    given = [labels for labels in (query_labels, index_labels) if labels is not None]
    arrays = [labels if isinstance(labels, torch.Tensor) else np.asarray(labels) for labels in given]
    if not any(isinstance(a, np.ndarray) and a.dtype.kind in "USO" for a in arrays):
        return query_labels, index_labels  # numbers: checked (and floats refused) by as_labels
    names = [np.asarray(a, dtype=object).astype(str) for a in arrays]
    vocabulary = {name: number for number, name in enumerate(np.unique(np.concatenate([n.ravel() for n in names])))}
    numbered = [np.array([vocabulary[name] for name in n.ravel()], dtype=np.int64).reshape(n.shape) for n in names]
    return numbered[0], (numbered[1] if index_labels is not None else None)


def _check_ks(k) -> tuple[int, ...]:
    ks = (k,) if isinstance(k, int) else tuple(k)
    if not ks or any(not isinstance(c, (int, np.integer)) or isinstance(c, bool) or c < 1 for c in ks):
        raise ValueError(f"k must be a positive int or a sequence of them, got {k!r}")
    return tuple(sorted({int(c) for c in ks}))


def _check_chunk_size(chunk_size: int | None) -> int | None:
    if chunk_size is not None and (not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}")
    return None if chunk_size is None else int(chunk_size)


def _check_same_dim(queries: torch.Tensor, other: torch.Tensor, name: str) -> None:
    if queries.shape[1] != other.shape[1]:
        raise ValueError(
            f"query_embeddings have dim {queries.shape[1]} but {name} have dim {other.shape[1]}; "
            "encode both with the same model"
        )


def _sample_rows(n: int, max_queries: int | None, seed: int) -> torch.Tensor:
    if max_queries is None or max_queries >= n:
        return torch.arange(n)
    if not isinstance(max_queries, (int, np.integer)) or max_queries < 1:
        raise ValueError(f"max_queries must be a positive int or None, got {max_queries!r}")
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=generator)[: int(max_queries)].sort().values


def _device(queries: torch.Tensor, device) -> torch.device:
    return torch.device(device) if device is not None else queries.device


def _relevance_lists(relevant, n_queries: int, n_docs: int) -> list[torch.Tensor]:
    if isinstance(relevant, (np.ndarray, torch.Tensor)) and relevant.ndim == 1:
        relevant = [[int(d)] for d in relevant.tolist()]
    if len(relevant) != n_queries:
        raise ValueError(f"relevant must have one entry per query ({n_queries}), got {len(relevant)}")
    lists = []
    for i, docs in enumerate(relevant):
        docs = [docs] if isinstance(docs, (int, np.integer)) else list(docs)
        t = torch.tensor(sorted({int(d) for d in docs}), dtype=torch.long)
        if t.numel() and (int(t[0]) < 0 or int(t[-1]) >= n_docs):
            raise ValueError(f"relevant[{i}] holds a document index outside [0, {n_docs}); check the pairs")
        lists.append(t)
    return lists
