"""Heads for a chopped backbone; each describes itself with ``config()``, and ``build_head`` rebuilds it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class LinearHead(nn.Module):
    """One ``nn.Linear``, optionally followed by L2 normalisation.

    Args:
        in_features: size of the backbone's features.
        out_features: size of the embedding.
        normalize: L2-normalise the output.
    """

    def __init__(self, in_features: int, out_features: int, normalize: bool = False):
        super().__init__()
        self.in_features, self.out_features, self.normalize = in_features, out_features, normalize
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.linear(x)
        return F.normalize(x, dim=-1) if self.normalize else x

    def config(self) -> dict[str, Any]:
        """JSON-serialisable description; ``build_head(head.config())`` rebuilds the architecture."""
        return {
            "type": "LinearHead",
            "in_features": self.in_features,
            "out_features": self.out_features,
            "normalize": self.normalize,
        }


class ProjectionHead(nn.Module):
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
        """JSON-serialisable description; ``build_head(head.config())`` rebuilds the architecture."""
        return {
            "type": "ProjectionHead",
            "in_features": self.in_features,
            "out_features": self.out_features,
            "num_layers": self.num_layers,
            "hidden_features": self.hidden_features,
            "normalize": self.normalize,
        }


class ClassificationHead(nn.Linear):
    """A single ``nn.Linear(in_features, num_classes)`` giving logits.

    It *is* an ``nn.Linear`` (same initialisation, same ``weight`` / ``bias`` names), so the torchvision recipe
    ``model.fc = nn.Linear(512, num_classes)`` is reproduced exactly.
    """

    def __init__(self, in_features: int, num_classes: int):
        super().__init__(in_features, num_classes)
        self.num_classes = num_classes

    def config(self) -> dict[str, Any]:
        """JSON-serialisable description; ``build_head(head.config())`` rebuilds the architecture."""
        return {"type": "ClassificationHead", "in_features": self.in_features, "num_classes": self.num_classes}


HEADS: dict[str, type[nn.Module]] = {
    "LinearHead": LinearHead,
    "ProjectionHead": ProjectionHead,
    "ClassificationHead": ClassificationHead,
}


HEAD_NAMES = {"projection": ProjectionHead, "linear": LinearHead}


def make_head(head: str | nn.Module, in_features: int, out_features: int, normalize: bool = False) -> nn.Module:
    """A head by name (``"projection"``: `ProjectionHead`, ``"linear"``: `LinearHead`), or ``head`` itself when it
    is already a module.

    Example:
        >>> make_head("linear", 512, 128).config()["type"]
        'LinearHead'
    """
    if isinstance(head, nn.Module):
        return head
    if head not in HEAD_NAMES:
        raise ValueError(f"Unknown head {head!r}: use 'projection', 'linear' or an nn.Module.")
    return HEAD_NAMES[head](in_features, out_features, normalize=normalize)


def build_head(config: Mapping[str, Any]) -> nn.Module:
    """Rebuild a head (random weights) from its ``config()``; load its ``state_dict`` afterwards.

    Raises:
        ValueError: an unknown ``type``.
    """
    kwargs = dict(config)
    kind = kwargs.pop("type", None)
    if kind not in HEADS:
        raise ValueError(f"Unknown head type {kind!r}; known: {sorted(HEADS)}")
    return HEADS[kind](**kwargs)
