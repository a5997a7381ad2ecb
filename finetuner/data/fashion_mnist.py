"""The embedded default data: a 3,000-image Fashion-MNIST subset (MIT licence, see assets/)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from finetuner.data.records import LabeledData

ASSET = Path(__file__).parent / "assets" / "fashion_mnist_small.npz"
FASHION_MNIST_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
SPLITS = ("train", "test")


def load_fashion_mnist(split: str = "train") -> LabeledData:
    """The embedded Fashion-MNIST subset: 2,000 train / 1,000 test images, balanced over 10 classes.

    Args:
        split: ``"train"`` or ``"test"``.

    Returns:
        ``LabeledData`` whose items are ``(28, 28)`` uint8 arrays.

    Example:
        >>> data = load_fashion_mnist("test")
        >>> len(data), data.items[0].shape, data.classes[9]
        (1000, (28, 28), 'Ankle boot')
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    with np.load(ASSET) as arrays:
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
    return LabeledData(list(images), labels.tolist(), list(FASHION_MNIST_CLASSES))


def export_fashion_mnist(folder: str | os.PathLike, split: str = "train", per_class: int | None = None) -> Path:
    """Write the embedded subset as an image folder: ``folder/<class>/<split>_<index>.png``.

    Class folder names replace ``/`` with ``_`` (``T-shirt_top``), so ``load_data(folder)`` reads the
    images back with those names.

    Args:
        folder: where to write; created if missing.
        split: ``"train"`` or ``"test"``.
        per_class: write only the first ``per_class`` images of each class (for demos and tests).

    Returns:
        ``Path(folder)``.

    Example:
        >>> import tempfile
        >>> from finetuner.data import load_data
        >>> root = export_fashion_mnist(tempfile.mkdtemp(), "test", per_class=2)
        >>> len(load_data(root))
        20
    """
    data = load_fashion_mnist(split)
    root = Path(folder)
    written = {name: 0 for name in data.classes}
    for index, (image, label) in enumerate(zip(data.items, data.labels)):
        name = data.classes[label]
        if per_class is not None and written[name] >= per_class:
            continue
        class_dir = root / name.replace("/", "_")
        class_dir.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(class_dir / f"{split}_{index:05d}.png")
        written[name] += 1
    return root
