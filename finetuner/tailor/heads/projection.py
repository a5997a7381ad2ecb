"""`ProjectionHead`: an MLP of Linear, BatchNorm1d and ReLU layers."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from finetuner.tailor.heads.base import Head


class ProjectionHead(Head, name="projection"):
    """An MLP projection head: ``(Linear -> BatchNorm1d -> ReLU) x (num_layers - 1) -> Linear``.

    ``num_layers`` counts the Linear layers, so the default has three. (The original finetuner called a head
    with two Linear layers "3-layer"; this one has what its name says.) BatchNorm1d needs batches of 2 or more
    in training mode.

    Args:
        in_features: size of the backbone's features.
        out_features: size of the embedding.
        num_layers: number of Linear layers (at least 1; 1 is the same as ``LinearHead``).
        hidden_features: width of the hidden layers; ``in_features`` by default.
        normalize: L2-normalise the output.

    Example:
        >>> ProjectionHead(512, 128)(torch.randn(4, 512)).shape
        torch.Size([4, 128])
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        num_layers: int = 3,
        hidden_features: int | None = None,
        normalize: bool = False,
    ):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {num_layers}")
        self.in_features, self.out_features, self.num_layers = in_features, out_features, num_layers
        self.hidden_features = hidden_features or in_features
        self.normalize = normalize
        layers: list[nn.Module] = []
        width = in_features
        for _ in range(num_layers - 1):
            layers += [nn.Linear(width, self.hidden_features), nn.BatchNorm1d(self.hidden_features), nn.ReLU()]
            width = self.hidden_features
        layers.append(nn.Linear(width, out_features))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(x)
        return F.normalize(x, dim=-1) if self.normalize else x

    def config(self) -> dict[str, Any]:
        return {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "num_layers": self.num_layers,
            "hidden_features": self.hidden_features,
            "normalize": self.normalize,
        }
