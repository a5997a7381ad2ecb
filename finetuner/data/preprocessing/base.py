"""The `Preprocessing` protocol, and `PREPROCESSINGS`: its kinds by name (``"image"``, ``"text"``,
``"image_text"``), one module each in this folder, registered with ``@register_preprocessing(kind)``.

``load`` runs in DataLoader workers (decode + transform one item), ``collate`` stacks a batch, and
``to_config`` / `preprocessing_from_config` make it JSON-serialisable for ``save()`` / ``load()``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, runtime_checkable

from finetuner.core.registry import Registry

T = TypeVar("T", bound=type)

# kind -> class with ``from_config(config, folder)``; the modules of this folder are imported on the first lookup
PREPROCESSINGS: Registry[type] = Registry("preprocessing kind", "finetuner.data.preprocessing")


def register_preprocessing(kind: str) -> Callable[[T], T]:
    """Class decorator: `preprocessing_from_config` rebuilds configs of ``kind`` (the ``"kind"`` key of the
    class's ``to_config()``) with ``cls.from_config(config, folder)``.

    Example:
        >>> @register_preprocessing("audio")
        ... class AudioPreprocessing:
        ...     @classmethod
        ...     def from_config(cls, config, folder=None):
        ...         return cls()
        >>> type(preprocessing_from_config({"kind": "audio"})).__name__
        'AudioPreprocessing'
    """

    return PREPROCESSINGS.register(kind)


@runtime_checkable
class Preprocessing(Protocol):
    """What the data, inference, training and saving code expect of a preprocessing (image, text, image-text).

    ``ImagePreprocessing``, ``TextPreprocessing`` and ``ImageTextPreprocessing`` implement it; a new kind is one
    module in ``finetuner/data/preprocessing/`` whose class is decorated with ``@register_preprocessing(kind)``.
    ``isinstance(obj, Preprocessing)`` checks that the members exist.

    Attributes:
        kind: the ``"kind"`` key of ``to_config()``: ``"image"``, ``"text"``, ``"image_text"``.

    Example:
        >>> isinstance(preprocessing_from_config({"kind": "image"}), Preprocessing)
        True
    """

    kind: str

    def load(self, item: Any, train: bool) -> Any:
        """Decode and transform one raw item (runs in DataLoader workers)."""

    def collate(self, samples: list) -> Any:
        """Combine loaded samples into a batch: a tensor or a dict of tensors."""

    def to_config(self) -> dict:
        """A JSON-serialisable dict with the ``"kind"`` key, for `preprocessing_from_config`."""

    def save(self, folder: str | os.PathLike) -> None:
        """Write the files ``from_config`` needs besides the config (a tokenizer), or nothing, into ``folder``."""


def preprocessing_from_config(config: dict, folder: str | os.PathLike | None = None) -> Preprocessing:
    """Rebuild a preprocessing from its ``to_config()`` dict, dispatching on ``config["kind"]``.

    Args:
        config: the saved dict; ``kind`` is a name of `PREPROCESSINGS` (``"image"``, ``"text"``, ``"image_text"``).
        folder: the saved model's folder (text preprocessing reads its tokenizer files there).

    Raises:
        ValueError: an unknown kind (the message lists the known ones).

    Example:
        >>> prep = preprocessing_from_config({"kind": "image", "input_size": [3, 32, 32]})
        >>> prep.input_size
        (3, 32, 32)
    """
    return PREPROCESSINGS.get(config.get("kind")).from_config(config, folder)
