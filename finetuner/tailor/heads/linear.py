"""`LinearHead`: one ``nn.Linear``, optionally L2-normalised."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from finetuner.tailor.heads.base import Head


class LinearHead(Head, name="linear"):
    """One ``nn.Linear``, optionally followed by L2 normalisation.

    Args:
        in_features: size of the backbone's features.
        out_features: size of the embedding.
        normalize: L2-normalise the output.

    Example:
        >>> LinearHead(512, 128)(torch.randn(4, 512)).shape
        torch.Size([4, 128])
    """

    def __init__(self, in_features: int, out_features: int, normalize: bool = False):
        super().__init__()
        self.in_features, self.out_features, self.normalize = in_features, out_features, normalize
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.linear(x)
        return F.normalize(x, dim=-1) if self.normalize else x

    def config(self) -> dict[str, Any]:
        return {"in_features": self.in_features, "out_features": self.out_features, "normalize": self.normalize}
