"""`VectorPreprocessing`: rows of given vectors as float tensors (preprocessing kind ``"vectors"``)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from finetuner.data.errors import DataError
from finetuner.data.preprocessing.base import register_preprocessing


@register_preprocessing("vectors")
@dataclass(frozen=True)
class VectorPreprocessing:
    """Turns one vector (a row of an array, a list of floats, a tensor) into a float32 tensor of width ``dim``.

    Args:
        dim: the width of every vector.

    Example:
        >>> prep = VectorPreprocessing(3)
        >>> prep.collate([prep.load([1, 2, 3], train=True), prep.load(np.zeros(3), train=False)]).shape
        torch.Size([2, 3])
    """

    dim: int
    kind: str = field(default="vectors", init=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.dim, bool) or not isinstance(self.dim, int) or self.dim < 1:
            raise ValueError(f"dim must be a positive width, got {self.dim!r}.")

    @property
    def input_size(self) -> tuple[int]:
        """One sample's shape, ``(dim,)`` (what `EmbeddingModel.example_input` builds a batch from)."""
        return (self.dim,)

    def load(self, item: Any, train: bool) -> torch.Tensor:
        vector = torch.as_tensor(np.asarray(item, dtype=np.float32))
        if vector.shape != (self.dim,):
            raise DataError(f"expected a vector of {self.dim} numbers, got shape {tuple(vector.shape)}")
        return vector

    def collate(self, samples: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack(samples)

    def to_config(self) -> dict:
        return {"kind": self.kind, "dim": self.dim}

    def save(self, folder: str | os.PathLike) -> None:
        """Nothing beside ``config.json``."""

    @classmethod
    def from_config(cls, config: dict, folder: str | os.PathLike | None = None) -> VectorPreprocessing:
        return cls(int(config["dim"]))
