"""`ValidationEvaluator`: metrics on a whole evaluation set and on its two parts, items of the classes the model
trained on ("seen") and items of classes it never saw ("new"), from one encoding of the set.

A part's items are queries against the **whole** set (leave-one-out), the way a catalogue holds old and new
classes together: a new-class item that the tuned space pushes onto an old class counts as a miss."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from finetuner.data import LabeledData, PairData
from finetuner.evaluation.evaluator import EncodeFn, Evaluator
from finetuner.evaluation.metrics import retrieval_metrics

SEEN, NEW = "seen", "new"


class ValidationEvaluator:
    """Scores a model for selection: the headline metrics on the whole set, ``seen/<metric>`` for the items of the
    training classes and ``new/<metric>`` for the items of other classes as queries, each against the whole set
    (leave-one-out).

    The parts exist for labelled retrieval data that has both kinds of items (with at least two items in a
    part); selection then ranks candidates on ``seen/`` and guards ``new/``. Otherwise only the whole set counts.

    Per-class figures (``per_class``) name each class: ``seen/class/<name>/map@r`` and ``new/class/<name>/map@r``
    (and ``recall@<smallest k>``) when the set has both parts, each the mean over that class's items as queries of
    its part; ``class/<name>/...`` from the whole set otherwise (classification: ``class/<name>/accuracy``).

    Args:
        data: the evaluation set.
        train_classes: class names the model trains on (None: pairs or unknown).
        task, classes, k, max_queries, per_class: as for `Evaluator`.

    Example:
        >>> data = LabeledData([[1, 0], [1, .1], [0, 1], [.1, 1]], [0, 0, 1, 1], ["old", "new"])
        >>> evaluator = ValidationEvaluator(data, train_classes=["old"], k=(1,))
        >>> sorted(evaluator(lambda items: np.asarray(items, dtype=np.float32)))[:3]
        ['map@1', 'map@r', 'mrr']
        >>> evaluator.selection_key, evaluator.guard_key
        ('seen/map@r', 'new/map@r')
    """

    def __init__(
        self,
        data: LabeledData | PairData,
        train_classes: Sequence[str] | None = None,
        *,
        task: str = "embedding",
        classes: Sequence[str] | None = None,
        k: Sequence[int] = (1, 5, 10),
        max_queries: int | None = None,
        per_class: bool = True,
    ):
        self.k, self.max_queries = tuple(k), max_queries
        self.parts: dict[str, np.ndarray] = {}  # part name -> its rows, which query the whole set
        if isinstance(data, LabeledData) and task == "embedding" and train_classes is not None:
            trained = set(train_classes)
            seen = np.asarray([data.classes[label] in trained for label in data.labels], dtype=bool)
            labels = np.asarray(data.labels)
            for name, mask in ((SEEN, seen), (NEW, ~seen)):
                rows = np.flatnonzero(mask)
                if len(rows) < len(data) and _has_pairs_of_a_class(labels[rows]):
                    self.parts[name] = rows
        self.per_class_parts = per_class and self.has_guard  # else the whole set gives the per-class figures
        self.whole = Evaluator(
            data, task=task, classes=classes, k=k, max_queries=max_queries, per_class=per_class and not self.has_guard
        )

    @property
    def primary_metric(self) -> str:
        return self.whole.primary_metric

    @property
    def selection_key(self) -> str:
        """The metric candidates are ranked on: ``seen/<primary>`` when the set has both parts, else ``<primary>``."""
        return f"{SEEN}/{self.primary_metric}" if self.has_guard else self.primary_metric

    @property
    def guard_key(self) -> str | None:
        """The metric that may not drop (``new/<primary>``), or None when the set has no new classes to guard."""
        return f"{NEW}/{self.primary_metric}" if self.has_guard else None

    @property
    def has_guard(self) -> bool:
        return SEEN in self.parts and NEW in self.parts

    def columns(self) -> dict[str, Sequence[Any]]:
        return self.whole.columns()

    def __call__(self, encode: EncodeFn) -> dict[str, float]:
        return self.from_outputs({column: encode(items) for column, items in self.columns().items()})

    def from_outputs(
        self, outputs: Mapping[str, np.ndarray], distractors: tuple[np.ndarray, np.ndarray] | None = None
    ) -> dict[str, float]:
        """Metrics of the whole set plus each part's, prefixed ``seen/`` and ``new/``.

        ``distractors``: ``(outputs, labels)`` of more items of the training classes (labels in this set's class
        numbering), added to the index that ``new/`` queries search, so held-out classes are scored among as many
        old items as a real catalogue has, not only the few validation ones. ``seen/`` never searches them (they
        would be its own training items).
        """
        metrics = self.whole.from_outputs(outputs)
        if not self.parts:
            return metrics
        items, labels = np.asarray(outputs["items"]), self.whole.labels
        for name, rows in self.parts.items():
            order = np.concatenate([rows, np.setdiff1d(np.arange(len(items)), rows)])  # query i is index row i
            index, index_labels = items[order], labels[order]
            if name == NEW and distractors is not None:
                index = np.concatenate([index, np.asarray(distractors[0], dtype=index.dtype)])
                index_labels = np.concatenate([index_labels, np.asarray(distractors[1])])
            part = retrieval_metrics(
                items[rows], labels[rows], index, index_labels, exclude_self=True, k=self.k,
                max_queries=self.max_queries, per_class=self.per_class_parts,
            )  # fmt: skip
            metrics.update(self.whole.named(part, prefix=f"{name}/"))
        return metrics


def _has_pairs_of_a_class(labels: np.ndarray) -> bool:
    """Leave-one-out needs a class with two or more items."""
    return len(labels) > 0 and np.bincount(labels).max() >= 2
