"""`Evaluator`: the one evaluation path of `fit`, its callbacks and `finetuner.evaluate`.

An evaluator holds one evaluation set; it is called with a way of turning items into outputs: an ``encode``
function over raw items, or outputs computed beforehand per column (cached features through the head).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from finetuner.data import LabeledData, PairData, load_data
from finetuner.evaluation.metrics import classification_metrics, pair_metrics, retrieval_metrics

logger = logging.getLogger("finetuner")

EncodeFn = Callable[[Sequence[Any]], np.ndarray]


class Evaluator:
    """Metrics of an encoder on one evaluation set.

    Labelled data gives retrieval metrics (leave-one-out, or queries against ``index``); classification gives
    accuracy of the logits, with labels aligned to the model's ``classes`` by name; pairs give ranking metrics
    (query i's relevant document is document i).

    Args:
        data: `LabeledData` or `PairData` (anything `load_data` reads).
        index: labelled data to search instead of leave-one-out; its labels are renumbered by class name.
        task: ``embedding`` or ``classification``.
        classes: the model's class names (classification: eval labels are mapped to these by name).
        k, max_queries: passed to `retrieval_metrics`.
        per_class: also give per-class figures named by class: ``class/<name>/recall@<smallest k>`` and
            ``class/<name>/map@r`` (retrieval), ``class/<name>/accuracy`` (classification); pairs have none.

    Example:
        >>> evaluator = Evaluator(LabeledData([[1, 0], [1, .1], [0, 1], [.1, 1]], [0, 0, 1, 1], ["a", "b"]), k=(1,))
        >>> evaluator(lambda items: np.asarray(items, dtype=np.float32))["recall@1"]
        1.0
    """

    def __init__(
        self,
        data: Any,
        index: Any = None,
        *,
        task: str = "embedding",
        classes: Sequence[str] | None = None,
        k: Sequence[int] = (1, 5, 10),
        max_queries: int | None = None,
        per_class: bool = False,
    ):
        self.data = data if isinstance(data, (LabeledData, PairData)) else load_data(data)
        self.index = None if index is None else index if isinstance(index, LabeledData) else load_data(index)
        self.task, self.k, self.max_queries, self.per_class = task, tuple(k), max_queries, per_class
        if self.index is not None and isinstance(self.data, PairData):
            raise ValueError("index data applies to labelled queries; pairs are ranked against their own documents.")
        self.labels = np.asarray(getattr(self.data, "labels", []))
        self.known = None
        self.class_names = list(getattr(self.data, "classes", []))  # what the labels' numbers name
        if task == "classification" and classes is not None and isinstance(self.data, LabeledData):
            self.labels, self.known = _align(self.data, list(classes))
            self.class_names = list(classes)

    @property
    def primary_metric(self) -> str:
        """The metric that selects checkpoints (greater is better)."""
        if isinstance(self.data, PairData):
            return "mrr"
        return "accuracy" if self.task == "classification" else "map@r"

    def columns(self) -> dict[str, Sequence[Any]]:
        """The raw items of each column that the model encodes."""
        data = self.data
        if isinstance(data, PairData):
            return {"queries": data.queries, "documents": data.documents}
        return {"items": data.items} | ({"index": self.index.items} if self.index is not None else {})

    def __call__(self, encode: EncodeFn) -> dict[str, float]:
        """Encode each column with ``encode(items) -> (N, D)`` and compute the metrics."""
        return self.from_outputs({column: encode(items) for column, items in self.columns().items()})

    def from_outputs(self, outputs: Mapping[str, np.ndarray]) -> dict[str, float]:
        """Metrics from outputs computed beforehand, one array per column of `columns`."""
        if isinstance(self.data, PairData):
            documents = outputs["documents"]
            return pair_metrics(outputs["queries"], documents, np.arange(len(documents)), k=self.k)
        items = np.asarray(outputs["items"])
        if self.task == "classification":
            return self._classification(items)
        options = {"k": self.k, "max_queries": self.max_queries, "per_class": self.per_class}
        if self.index is None:
            return self.named(retrieval_metrics(items, self.labels, **options))
        numbering = {name: i for i, name in enumerate(self.data.classes)}
        index_labels = [numbering.get(self.index.classes[label], len(numbering) + label) for label in self.index.labels]
        return self.named(retrieval_metrics(items, self.labels, outputs["index"], index_labels, **options))

    def named(self, metrics: dict[str, float], prefix: str = "") -> dict[str, float]:
        """``metrics`` with each ``class/<label>/<metric>`` renamed ``<prefix>class/<name>/<metric>``, keeping only
        the per-class figures listed for ``per_class``."""
        keep = ("accuracy",) if self.task == "classification" else (f"recall@{min(self.k)}", "map@r")
        named = {}
        for key, value in metrics.items():
            if not key.startswith("class/"):
                named[prefix + key] = value
                continue
            label, metric = key[len("class/") :].split("/", 1)
            if metric in keep:
                named[f"{prefix}class/{self.class_names[int(label)]}/{metric}"] = value
        return named

    def _classification(self, logits: np.ndarray) -> dict[str, float]:
        if self.known is None:
            return self.named(classification_metrics(logits, self.labels, per_class=self.per_class))
        known = self.known
        metrics = (
            self.named(classification_metrics(logits[known], self.labels[known], per_class=self.per_class))
            if known.any()
            else {}
        )
        unknown = int((~known).sum())
        if unknown:  # an item of a class the model cannot name is a wrong prediction: counted in accuracy
            metrics["known/accuracy"] = metrics.get("accuracy", 0.0)
            metrics["accuracy"] = float((logits[known].argmax(1) == self.labels[known]).sum() / len(self.labels))
            metrics["unknown_class_items"] = float(unknown)
        return metrics


def _align(data: LabeledData, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Evaluation labels renumbered to the model's class order, and which items have a class the model knows."""
    numbering = {name: i for i, name in enumerate(classes)}
    names = [data.classes[label] for label in data.labels]
    unknown = sorted({name for name in names if name not in numbering})
    if unknown:
        logger.warning(
            "evaluation data has %d classes the model was not trained on (%s); their items count as errors in "
            "accuracy (known/accuracy leaves them out) and as unknown_class_items",
            len(unknown),
            ", ".join(unknown[:5]),
        )
    labels = np.asarray([numbering.get(name, -1) for name in names])
    return labels, labels >= 0


def evaluate_data(encode: EncodeFn, query_data: Any, index_data: Any = None, **options: Any) -> dict[str, float]:
    """`Evaluator` on data `load_data` reads, in one call: retrieval metrics (leave-one-out without
    ``index_data``) or pair metrics.

    Example:
        >>> metrics = evaluate_data(model.encode, "data/query", "data/index", k=(1, 5))  # doctest: +SKIP
    """
    return Evaluator(query_data, index_data, **options)(encode)
