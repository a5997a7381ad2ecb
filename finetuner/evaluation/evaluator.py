"""``RetrievalEvaluator``: encode labelled items, then :func:`retrieval_metrics`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from finetuner.evaluation.base import EncodeFn, Evaluator
from finetuner.evaluation.metrics import pair_metrics, retrieval_metrics


class RetrievalEvaluator(Evaluator):
    """Retrieval metrics of an encoder on labelled items, for checkpoint selection and reports.

    Args:
        query_items: items that ``encode_fn`` accepts (paths, images, texts, tensors).
        query_labels: one int label per query item.
        index_items: the items to search; None for leave-one-out on the queries.
        index_labels: one int label per index item; required with ``index_items``.
        name: prefix of the returned keys.
        **metric_kwargs: passed to :func:`retrieval_metrics` (``k``, ``distance``, ``max_queries``, ...).

    Example:
        >>> import numpy as np
        >>> evaluator = RetrievalEvaluator([[1, 0], [1, 0.1], [0, 1], [0.1, 1]], [0, 0, 1, 1], k=1)
        >>> evaluator(lambda items: np.asarray(items, dtype=np.float32))["eval/map@r"]
        1.0
    """

    primary_metric = "map@r"
    greater_is_better = True

    def __init__(
        self,
        query_items: Sequence,
        query_labels: Sequence[int],
        index_items: Sequence | None = None,
        index_labels: Sequence[int] | None = None,
        name: str = "eval",
        **metric_kwargs,
    ):
        super().__init__(name)
        if (index_items is None) != (index_labels is None):
            raise ValueError("pass index_items and index_labels together, or neither for leave-one-out")
        self.query_items = query_items
        self.query_labels = query_labels
        self.index_items = index_items
        self.index_labels = index_labels
        self.metric_kwargs = metric_kwargs

    def __call__(self, encode_fn: EncodeFn) -> dict[str, float]:
        """Encode queries (and index) with ``encode_fn`` and return ``{f"{name}/{metric}": value}``."""
        queries = encode_fn(self.query_items)
        index = None if self.index_items is None else encode_fn(self.index_items)
        metrics = retrieval_metrics(queries, self.query_labels, index, self.index_labels, **self.metric_kwargs)
        return {f"{self.name}/{key}": value for key, value in metrics.items()}


def evaluate_data(
    encode: Callable[[Sequence], np.ndarray], query_data: Any, index_data: Any = None, **metric_kwargs: Any
) -> dict[str, float]:
    """Load labelled data or pairs (anything `finetuner.data.load_data` reads), encode it and compute
    :func:`retrieval_metrics` (leave-one-out without ``index_data``) or :func:`pair_metrics`.

    Index labels are renumbered by class name to the query's numbering, so two folders with the same class
    names compare whatever order their classes load in.

    Example:
        >>> metrics = evaluate_data(model.encode, "data/query", "data/index", k=(1, 5))  # doctest: +SKIP
    """
    from finetuner.data import PairData, load_data

    query = load_data(query_data)
    if isinstance(query, PairData):  # query i's relevant document is document i
        k = metric_kwargs.get("k", (1, 5, 10))
        return pair_metrics(encode(query.queries), encode(query.documents), np.arange(len(query)), k=k)
    if index_data is None:
        return retrieval_metrics(encode(query.items), query.labels, **metric_kwargs)
    index = load_data(index_data)
    numbering = {name: i for i, name in enumerate(query.classes)}
    index_labels = [numbering.get(index.classes[label], len(numbering) + label) for label in index.labels]
    return retrieval_metrics(encode(query.items), query.labels, encode(index.items), index_labels, **metric_kwargs)
