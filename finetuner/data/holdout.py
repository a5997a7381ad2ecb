"""Automatic validation data: held-out items of the training classes and, with enough classes, whole held-out
classes that stand for the classes users add later."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from finetuner.data.errors import DataError
from finetuner.data.records import LabeledData, PairData

MIN_CLASSES_FOR_CLASS_HOLDOUT = 4


@dataclass
class Holdout:
    """Training data and the validation data taken from it.

    Attributes:
        train: what training sees.
        validation: held-out items of the training classes plus every item of the held-out classes (None: nothing
            was held out).
        held_out_classes: names of the classes that are wholly in ``validation``.
    """

    train: LabeledData | PairData
    validation: LabeledData | PairData | None
    held_out_classes: list[str]


class HoldoutRows(NamedTuple):
    """`hold_out_indices`'s sorted index arrays into the data: what trains, the held-out items of the training
    classes, the items of the held-out classes."""

    train: np.ndarray
    items: np.ndarray
    classes: np.ndarray


def hold_out(
    data: LabeledData | PairData, val_split: float = 0.1, val_class_split: float = 0.2, *, seed: int = 0
) -> Holdout:
    """Take validation data out of ``data``: a stratified ``val_split`` fraction of each training class and, with 4
    or more classes, about a ``val_class_split`` fraction of whole classes (at least one, and at least two classes
    stay for training). Pairs are split by ``val_split`` only. Seeded: the same seed gives the same split. The
    defaults are `fit`'s and `probe`'s (`finetuner.config.DataConfig`).

    Example:
        >>> data = LabeledData([f"{c}{i}.png" for c in "abcde" for i in range(10)], [i // 10 for i in range(50)],
        ...                    list("abcde"))
        >>> split = hold_out(data, val_split=0.2, val_class_split=0.2, seed=0)
        >>> len(split.train), len(split.validation), split.held_out_classes
        (32, 18, ['e'])
    """
    for name, value in (("val_split", val_split), ("val_class_split", val_class_split)):
        if not 0 <= value < 1:
            raise ValueError(f"{name} must be in [0, 1), got {value}.")
    if isinstance(data, PairData):
        if not val_split:
            return Holdout(data, None, [])
        train, validation = data.split(val_split, seed=seed)
        return Holdout(train, validation, [])
    train, held_items, held_classes = hold_out_indices(data, val_split, val_class_split, seed=seed)
    validation = np.sort(np.concatenate([held_items, held_classes]))
    if not len(validation):
        return Holdout(data, None, [])
    return Holdout(
        data.subset(train.tolist()),
        data.subset(validation.tolist()),
        sorted({data.classes[data.labels[i]] for i in held_classes}),
    )


def hold_out_indices(
    data: LabeledData, val_split: float = 0.1, val_class_split: float = 0.2, *, seed: int = 0
) -> HoldoutRows:
    """`hold_out` as sorted index arrays into ``data``: `HoldoutRows` ``(train, held-out items of the training classes,
    items of the held-out classes)``, for callers that index precomputed features.

    Example:
        >>> data = LabeledData(list(range(40)), [i // 10 for i in range(40)], list("abcd"))
        >>> [len(part) for part in hold_out_indices(data, val_split=0.1, val_class_split=0.25)]
        [27, 3, 10]
    """
    labels = np.asarray(data.labels)
    present = np.unique(labels)
    count = 0
    if val_class_split and len(present) >= MIN_CLASSES_FOR_CLASS_HOLDOUT:
        count = min(max(1, int(round(val_class_split * len(present)))), len(present) - 2)
    held_classes = np.random.default_rng(seed).choice(present, size=count, replace=False)
    in_held_class = np.isin(labels, held_classes)
    rest = np.flatnonzero(~in_held_class)
    held_items = np.empty(0, dtype=np.int64)
    if val_split:
        try:
            _, part = data.subset(rest.tolist()).split_indices(val_split, seed=seed)
        except DataError:
            raise DataError(
                f"too little data to hold out {val_split:.0%} of the items of the training classes for validation "
                f"({len(rest)} items): pass eval_data=..., or val_split=0 and val_class_split=0 to train on all of it"
            ) from None
        held_items = rest[part]
    validation = np.concatenate([held_items, np.flatnonzero(in_held_class)]).astype(np.int64)
    if len(validation) and np.bincount(labels[validation]).max() < 2:
        raise DataError(
            f"too little data to hold out validation items ({len(validation)} held out, no class with two): "
            "pass eval_data=..., a larger val_split, or val_split=0 and val_class_split=0 to train on all of it"
        )
    train = np.setdiff1d(np.arange(len(labels)), validation)
    return HoldoutRows(train, np.sort(held_items), np.flatnonzero(in_held_class))
