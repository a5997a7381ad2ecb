"""The two shapes of data: ``LabeledData`` (items with class labels) and ``PairData`` (query/document pairs).

``finetuner.data.load_data`` reads every supported source into one of them (see ``finetuner.data.formats``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from finetuner.data.errors import DataError


class DatasetItems(Sequence):
    """The items of a dataset, read lazily: ``items[i] == dataset[indices[i]][key]``.

    The dataset's own loading (file reads, image decoding) runs where the item is used: in DataLoader workers.

    Args:
        dataset: a ``torch.utils.data.Dataset`` returning ``(item, label)`` (``key=0``), or any indexable
            whose rows hold the item under ``key`` (a ``datasets.Dataset`` row is a dict of columns).
        indices: the rows to expose, in order; all rows by default.
        key: where the item sits in a row.

    Example:
        >>> from torch.utils.data import TensorDataset
        >>> items = DatasetItems(TensorDataset(torch.arange(4), torch.zeros(4)))
        >>> len(items), int(items.subset([3, 1])[0])
        (4, 3)
    """

    def __init__(self, dataset: Dataset | Any, indices: Sequence[int] | None = None, key: int | str = 0):
        self.dataset = dataset
        self.indices = range(len(dataset)) if indices is None else indices
        self.key = key

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Any:
        return self.dataset[self.indices[i]][self.key]

    def __iter__(self) -> Iterator[Any]:
        return (self[i] for i in range(len(self)))

    def subset(self, indices: Sequence[int]) -> DatasetItems:
        """The items at ``indices``, still read lazily."""
        return DatasetItems(self.dataset, [self.indices[i] for i in indices], self.key)


def take_items(items: Sequence, indices: Sequence[int]) -> Sequence:
    """The items at ``indices``: lazy items (`DatasetItems`) stay lazy, nothing is decoded.

    Example:
        >>> take_items(["a", "b", "c"], range(1, 3))
        ['b', 'c']
    """
    return items.subset(indices) if isinstance(items, DatasetItems) else [items[i] for i in indices]


@dataclass(repr=False)
class LabeledData:
    """Items with integer class labels, for classification and metric learning.

    Args:
        items: image paths, PIL images, uint8 arrays, tensors or texts (anything a preprocessing loads).
        labels: one class index per item, in ``range(len(classes))``.
        classes: class names; ``classes[label]`` names an item's class.

    Example:
        >>> data = LabeledData(["a.jpg", "b.jpg", "c.jpg"], [0, 1, 1], ["cat", "dog"])
        >>> len(data), data.subset([1, 2]).labels
        (3, [1, 1])
    """

    items: Sequence
    labels: list[int]
    classes: list[str]

    def __post_init__(self) -> None:
        self.labels = [int(label) for label in self.labels]
        self.classes = [str(name) for name in self.classes]
        if len(self.items) != len(self.labels):
            raise DataError(f"got {len(self.items)} items but {len(self.labels)} labels: give one label per item")
        if self.labels and not 0 <= min(self.labels) <= max(self.labels) < len(self.classes):
            raise DataError(
                f"labels must be in range({len(self.classes)}) for {len(self.classes)} classes, "
                f"got values from {min(self.labels)} to {max(self.labels)}"
            )

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        shown = ", ".join(self.classes[:5]) + (", ..." if len(self.classes) > 5 else "")
        return f"LabeledData({len(self)} items, {len(self.classes)} classes: {shown})"

    def subset(self, indices: Sequence[int]) -> LabeledData:
        """The items at ``indices``, with the same class list.

        Example:
            >>> LabeledData(["a", "b"], [0, 1], ["x", "y"]).subset([1]).items
            ['b']
        """
        return LabeledData(take_items(self.items, indices), [self.labels[i] for i in indices], list(self.classes))

    def split(self, fraction: float, seed: int = 0) -> tuple[LabeledData, LabeledData]:
        """Split into two stratified, seeded parts; the second holds about ``fraction`` of each class.

        Per-class shares are rounded so the second part holds ``round(fraction * len(self))`` items.

        Args:
            fraction: share of the items for the second part, in (0, 1).
            seed: the same seed gives the same split.

        Returns:
            ``(rest, part)``, each in the original item order.

        Example:
            >>> data = LabeledData(list(range(10)), [0] * 5 + [1] * 5, ["a", "b"])
            >>> train, val = data.split(0.2, seed=0)
            >>> len(train), sorted(val.labels)
            (8, [0, 1])
        """
        rest, part = self.split_indices(fraction, seed)
        return self.subset(rest.tolist()), self.subset(part.tolist())

    def split_indices(self, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """The indices of `split`'s two parts, ``(rest, part)``, each sorted.

        Example:
            >>> LabeledData(list(range(4)), [0, 0, 1, 1], ["a", "b"]).split_indices(0.5)[1].tolist()
            [1, 2]
        """
        _check_fraction(fraction)
        rng = np.random.default_rng(seed)
        labels = np.asarray(self.labels, dtype=np.int64)
        per_class = [rng.permutation(np.flatnonzero(labels == c)) for c in range(len(self.classes))]
        sizes = np.array([len(indices) for indices in per_class], dtype=np.float64)
        # Largest-remainder rounding: per-class quotas that add up to the overall target.
        quotas = np.floor(sizes * fraction).astype(np.int64)
        remainders = sizes * fraction - quotas + rng.random(len(sizes)) * 1e-9  # random tie-break
        missing = int(round(fraction * len(labels))) - int(quotas.sum())
        quotas[np.argsort(-remainders)[:missing]] += 1
        part = np.sort(np.concatenate([indices[:q] for indices, q in zip(per_class, quotas)] + [np.empty(0, int)]))
        rest = np.setdiff1d(np.arange(len(labels)), part)
        _check_parts(len(rest), len(part), len(labels), fraction)
        return rest, part


@dataclass(repr=False)
class PairData:
    """Queries with a relevant document each, optionally scored or with a hard negative (triplets), for
    in-batch-negative training.

    Args:
        queries: query items (texts, images, ...).
        documents: ``documents[i]`` is relevant to ``queries[i]``.
        scores: optional relevance score per pair.
        negatives: optional hard negative per pair: ``negatives[i]`` is not relevant to ``queries[i]``.

    Example:
        >>> pairs = PairData(["red shoe", "blue hat"], ["shoe.jpg", "hat.jpg"])
        >>> len(pairs), pairs.subset([1]).documents
        (2, ['hat.jpg'])
    """

    queries: Sequence
    documents: Sequence
    scores: list[float] | None = None
    negatives: Sequence | None = None

    def __post_init__(self) -> None:
        if len(self.queries) != len(self.documents):
            raise DataError(
                f"got {len(self.queries)} queries but {len(self.documents)} documents: give one document per query"
            )
        if self.scores is not None:
            self.scores = [float(score) for score in self.scores]
            if len(self.scores) != len(self.queries):
                raise DataError(f"got {len(self.scores)} scores for {len(self.queries)} pairs: give one score per pair")
        if self.negatives is not None and len(self.negatives) != len(self.queries):
            raise DataError(
                f"got {len(self.negatives)} negatives for {len(self.queries)} pairs: give one negative per pair"
            )

    def __len__(self) -> int:
        return len(self.queries)

    def __repr__(self) -> str:
        negatives = ", with hard negatives" if self.negatives is not None else ""
        return f"PairData({len(self)} pairs, {'with' if self.scores is not None else 'no'} scores{negatives})"

    def subset(self, indices: Sequence[int]) -> PairData:
        """The pairs at ``indices``.

        Example:
            >>> PairData(["q1", "q2"], ["d1", "d2"], [1.0, 0.5]).subset([1]).scores
            [0.5]
        """
        scores = None if self.scores is None else [self.scores[i] for i in indices]
        negatives = None if self.negatives is None else take_items(self.negatives, indices)
        return PairData(take_items(self.queries, indices), take_items(self.documents, indices), scores, negatives)

    def split(self, fraction: float, seed: int = 0) -> tuple[PairData, PairData]:
        """Split at random (seeded) into two parts; the second holds ``round(fraction * len(self))`` pairs.

        Example:
            >>> train, val = PairData([f"q{i}" for i in range(10)], [f"d{i}" for i in range(10)]).split(0.3)
            >>> len(train), len(val)
            (7, 3)
        """
        _check_fraction(fraction)
        order = np.random.default_rng(seed).permutation(len(self))
        size = int(round(fraction * len(self)))
        _check_parts(len(self) - size, size, len(self), fraction)
        return self.subset(np.sort(order[size:]).tolist()), self.subset(np.sort(order[:size]).tolist())


def _check_fraction(fraction: float) -> None:
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be between 0 and 1 (exclusive), got {fraction}")


def _check_parts(rest: int, part: int, total: int, fraction: float) -> None:
    if rest == 0 or part == 0:
        raise DataError(
            f"cannot split {total} items with fraction={fraction}: one part would be empty; "
            "use more data or a fraction closer to 0.5"
        )


def check_at_least_two_classes(data: LabeledData) -> None:
    """Raise a ``DataError`` unless ``data`` has at least 2 classes, as metric-learning losses need.

    Example:
        >>> check_at_least_two_classes(LabeledData(["a", "b"], [0, 0], ["cat"]))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        finetuner.data.errors.DataError: metric learning needs at least 2 classes ...
    """
    present = sorted(set(data.labels))
    if len(present) < 2:
        found = f"only class {data.classes[present[0]]!r}" if present else "no labelled items"
        raise DataError(
            f"metric learning needs at least 2 classes to form negative pairs, found {found}; "
            "add items of other classes. A single class cannot be classified either: "
            "for one class vs the rest, add a second class holding the 'other' items."
        )


def encode_labels(raw_labels: Sequence[Any], names: Sequence[str] | None = None) -> tuple[list[int], list[str]]:
    """Map raw labels (strings or ints) to ``0..K-1``, ordering classes by sorted value.

    Strings that all look like integers sort numerically ("2" before "10").

    Args:
        raw_labels: one label per item.
        names: for int labels, ``names[label]`` is the class name (e.g. a torchvision ``dataset.classes``).

    Returns:
        ``(labels, classes)``.

    Example:
        >>> encode_labels(["dog", "cat", "dog"])
        ([1, 0, 1], ['cat', 'dog'])
    """
    values = [_plain_label(label) for label in raw_labels]
    kinds = {type(value) for value in values}
    if len(kinds) > 1:
        raise DataError("labels mix strings and numbers: use one type, e.g. all class names")
    if kinds == {str} and all(value.lstrip("-").isdigit() for value in values):
        unique = sorted(set(values), key=int)
    else:
        unique = sorted(set(values))
    index = {value: i for i, value in enumerate(unique)}
    named = names is not None and kinds == {int} and all(0 <= v < len(names) for v in unique)
    classes = [str(names[v]) if named else str(v) for v in unique]
    return [index[value] for value in values], classes


def _plain_label(label: Any) -> int | str:
    if isinstance(label, torch.Tensor) and label.numel() == 1:
        label = label.item()
    if isinstance(label, np.generic):
        label = label.item()
    if isinstance(label, str) and label.strip():
        return label.strip()
    if isinstance(label, int) and not isinstance(label, bool):
        return label
    raise DataError(f"invalid label {label!r}: labels must be class names (non-empty strings) or integers")
