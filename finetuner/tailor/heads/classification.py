"""`ClassificationHead`: the logits layer of a classifier."""

from __future__ import annotations

from typing import Any

from torch import nn

from finetuner.tailor.heads.base import Head


class ClassificationHead(Head, nn.Linear, name="classification"):
    """A single ``nn.Linear(in_features, num_classes)`` giving logits.

    It *is* an ``nn.Linear`` (same initialisation, same ``weight`` / ``bias`` names), so the torchvision recipe
    ``model.fc = nn.Linear(512, num_classes)`` is reproduced exactly.

    Example:
        >>> ClassificationHead(512, 10)(torch.randn(4, 512)).shape
        torch.Size([4, 10])
    """

    def __init__(self, in_features: int, num_classes: int):
        super().__init__(in_features, num_classes)
        self.num_classes = num_classes

    def config(self) -> dict[str, Any]:
        return {"in_features": self.in_features, "num_classes": self.num_classes}
