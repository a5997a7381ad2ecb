"""Checks on real items: every exporter compares what the exported files compute with ``model.encode`` on real
items (images, texts) before anything is written, not only on the model's random example batch.

The items are ``check_items=`` when given, else the few training items the model carries
(``model.card_data.example_items``: ``fit`` records them, ``save`` keeps them) that can still be read. This module
registers no format.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from finetuner.model import EmbeddingModel


def check_items(model: EmbeddingModel, given: Sequence[Any] | str | Path | None = None) -> list[Any]:
    """The real items to check an export of ``model`` on; empty when there are none.

    Args:
        model: the model being exported.
        given: items (image paths, PIL images, arrays, texts), or a folder whose image files are the items;
            None: the model's ``card_data.example_items`` that still exist (paths) or are texts.

    Raises:
        ValueError: ``given`` is an empty list, or a folder without images.

    Example:
        >>> check_items(model, "data/train/shoes")[:2]  # doctest: +SKIP
        ['data/train/shoes/1.jpg', 'data/train/shoes/2.jpg']
    """
    if isinstance(given, (str, os.PathLike)) and Path(given).is_dir():
        items: list[Any] = sorted(str(p) for p in Path(given).rglob("*") if p.suffix.lower() in _IMAGE_SUFFIXES)
        if not items:
            raise ValueError(f"check_items={str(given)!r} is a folder without images (.jpg, .png, ...).")
        return items
    if given is not None:
        items = list(given)
        if not items:
            raise ValueError("check_items is empty: pass some real items, or leave it out (None).")
        return items
    examples = getattr(getattr(model, "card_data", None), "example_items", None) or []
    text = getattr(model.preprocessing, "kind", None) == "text"
    return [item for item in examples if isinstance(item, str) and (text or Path(item).is_file())]


def max_difference(got: np.ndarray, expected: np.ndarray) -> float:
    """The largest absolute difference between two batches of vectors, infinite when their shapes differ."""
    got, expected = np.asarray(got), np.asarray(expected)
    return float(np.abs(got - expected).max(initial=0.0)) if got.shape == expected.shape else float("inf")


def cosine_similarities(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two ``(N, D)`` batches."""
    return np.sum(_unit(a) * _unit(b), axis=1)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
