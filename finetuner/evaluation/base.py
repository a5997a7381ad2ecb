"""The evaluator contract: a callable that turns an encoder into flat, prefixed metrics."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import numpy as np

EncodeFn = Callable[[list], np.ndarray]


class Evaluator(ABC):
    """Base class of evaluators (sentence-transformers style).

    ``__call__(encode_fn)`` returns flat ``{f"{name}/{metric}": value}``. ``primary_metric`` names the
    metric to select checkpoints on, ``primary_key`` is its key in the returned dict, and
    ``greater_is_better`` says which way is better.
    """

    primary_metric: str
    greater_is_better: bool = True

    def __init__(self, name: str):
        self.name = name

    @property
    def primary_key(self) -> str:
        """The key of ``primary_metric`` in the dict that ``__call__`` returns, e.g. ``"eval/map@r"``."""
        return f"{self.name}/{self.primary_metric}"

    @abstractmethod
    def __call__(self, encode_fn: EncodeFn) -> dict[str, float]:
        """Encode the evaluation items with ``encode_fn(items) -> (n, dim) array`` and return the metrics."""
