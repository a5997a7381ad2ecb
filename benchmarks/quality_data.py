"""Data sets and splits of the quality benchmark (`benchmarks/quality.py`): every set installs offline.

- ``fashion-mnist``: finetuner's embedded subset (3,000 images, 10 classes; MIT).
- ``digits``: scikit-learn's bundled ``load_digits`` (1,797 8x8 images, 10 classes; the UCI optdigits set, CC BY 4.0,
  shipped in scikit-learn, BSD-3).
- ``fortunes``: finetuner's embedded text set (888 quotes, 6 categories; Debian fortune-mod data).

Splits: *same-class* (train on a class-balanced part of the items, test on the other items of the same classes)
and *class-disjoint* (train on half the classes, test on every item of the other half). Recipe settings are chosen
on a *validation carve* of the training part only: held-out items of the kept classes and wholly held-out classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class BenchData:
    """One data set: raw items (images as uint8 arrays, or strings), integer labels, class names."""

    name: str
    kind: str  # "image" or "text"
    items: list
    labels: np.ndarray
    classes: list[str]
    source: str
    test_mask: np.ndarray | None = field(default=None, repr=False)  # a fixed test part of the items, if shipped


def fashion_mnist() -> BenchData:
    from finetuner.data import load_fashion_mnist

    train, test = load_fashion_mnist("train"), load_fashion_mnist("test")
    items = list(train.items) + list(test.items)
    labels = np.array(list(train.labels) + list(test.labels))
    mask = np.r_[np.zeros(len(train), bool), np.ones(len(test), bool)]
    source = "finetuner's embedded Fashion-MNIST subset (Zalando, MIT): 2,000 train + 1,000 test images"
    return BenchData("fashion-mnist", "image", items, labels, list(train.classes), source, mask)


def digits() -> BenchData:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (bunch.images * (255 / 16)).round().astype(np.uint8)  # 0..16 grey levels -> 0..255
    source = "scikit-learn's bundled load_digits (UCI optdigits, CC BY 4.0; scikit-learn BSD-3): 1,797 8x8 images"
    return BenchData("digits", "image", list(images), bunch.target.astype(int), [str(d) for d in range(10)], source)


def fortunes() -> BenchData:
    from finetuner.data import load_data

    data = load_data("fortunes")
    source = "finetuner's embedded fortunes (Debian fortune-mod data files): 888 quotes, 6 categories"
    return BenchData("fortunes", "text", list(data.items), np.asarray(data.labels), list(data.classes), source)


DATASETS = {"fashion-mnist": fashion_mnist, "digits": digits, "fortunes": fortunes}


def stratified(indices: np.ndarray, labels: np.ndarray, fraction: float, rng: np.random.Generator):
    """``(rest, held)``: ``fraction`` of each class's indices held out (at least one, never all)."""
    held = []
    for label in np.unique(labels[indices]):
        members = rng.permutation(indices[labels[indices] == label])
        count = min(len(members) - 1, max(1, round(fraction * len(members))))
        held.extend(members[:count])
    held = np.sort(np.array(held, dtype=int))
    return np.setdiff1d(indices, held), held


def same_class_split(data: BenchData, seed: int = 0, test_fraction: float = 0.4):
    """``(train, test)`` indices over the same classes: the shipped test part, else a stratified split."""
    everything = np.arange(len(data.labels))
    if data.test_mask is not None:
        return everything[~data.test_mask], everything[data.test_mask]
    return stratified(everything, data.labels, test_fraction, np.random.default_rng(seed))


def class_disjoint_split(data: BenchData, seed: int = 0):
    """``(train, test, seen classes)``: train on the same-class training items of a seeded half of the classes, test
    on every item of the other half."""
    train, _ = same_class_split(data, seed)
    order = np.random.default_rng(seed).permutation(len(data.classes))
    seen = np.sort(order[: len(order) // 2])
    return train[np.isin(data.labels[train], seen)], np.flatnonzero(~np.isin(data.labels, seen)), seen


def validation_carve(train: np.ndarray, labels: np.ndarray, seed: int = 0, item_fraction: float = 0.2):
    """``(fit, held-out items, held-out classes)`` indices from the training part only: a third of its classes
    (at least one) held out whole, and ``item_fraction`` of each remaining class's items."""
    rng = np.random.default_rng(seed + 1)
    classes = np.unique(labels[train])
    held_classes = rng.permutation(classes)[: max(1, round(len(classes) / 3))]
    unseen = train[np.isin(labels[train], held_classes)]
    fit, items = stratified(train[~np.isin(labels[train], held_classes)], labels, item_fraction, rng)
    return fit, items, unseen
