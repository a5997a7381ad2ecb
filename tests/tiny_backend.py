"""Tiny random models for the tests (``test_cnn``, ``test_vit``; 32×32 inputs), as a backend registered from outside
the package: the worked example of "adding a model backend = one module + its test".

`tests/conftest.py` imports this module, which registers the backend; scripts run in a subprocess
(`tests/training/ddp_fit_script.py`) import it themselves.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from finetuner.data.preprocessing import ImagePreprocessing
from finetuner.models import Backbone, Backend, WeightsNotFoundError, register_backend


class TinyResNet(nn.Module):
    """A two-stage residual CNN with BatchNorm and a classifier ``fc``, like a torchvision ResNet in miniature;
    ``same_padding``: the strided convolution pads like TensorFlow's "same" (timm's ``Conv2dSame``, as in
    EfficientNet-Lite), from the input's shape at run time."""

    def __init__(self, num_classes: int = 10, width: int = 8, same_padding: bool = False):
        from timm.layers import Conv2dSame

        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.layer1 = nn.Sequential(nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        strided = (
            Conv2dSame(width, 2 * width, 5, stride=2, bias=False)
            if same_padding
            else nn.Conv2d(width, 2 * width, 3, stride=2, padding=1, bias=False)
        )
        self.layer2 = nn.Sequential(strided, nn.BatchNorm2d(2 * width), nn.ReLU())
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = x + self.layer1(x)  # a residual add: not a plain chain of children
        x = self.layer2(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


def tiny_vit() -> nn.Module:
    """A 2-block timm Vision Transformer (dim 32, 2 heads, patch 8), 32×32 inputs."""
    from timm.models.vision_transformer import VisionTransformer

    return VisionTransformer(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, num_classes=10)


ARCHITECTURES = {"test_cnn": TinyResNet, "test_cnn_same": partial(TinyResNet, same_padding=True), "test_vit": tiny_vit}


class TinyBackend(Backend):
    """``test_cnn`` and ``test_vit`` with random weights; the spec records the name, `rebuild` reads it back."""

    name = "test"

    def rebuild(self, spec: dict[str, Any], folder: str | Path | None = None) -> nn.Module:
        return ARCHITECTURES[spec["name"]]()


def tiny_backbone(name: str, pretrained: bool = False) -> Backbone:
    """Backbone ``name`` of `ARCHITECTURES`; there are no pretrained weights."""
    if pretrained:
        raise WeightsNotFoundError(f"{name} is a random test model: pass pretrained=False.")
    return Backbone(
        module=ARCHITECTURES[name](),
        preprocessing=ImagePreprocessing(input_size=(3, 32, 32), crop_pct=1.0),
        spec={"source": TinyBackend.name, "name": name},
        example_input=torch.randn(2, 3, 32, 32),
    )


TINY = register_backend(TinyBackend())
for _name, _dim in (("test_cnn", 16), ("test_cnn_same", 16), ("test_vit", 32)):
    TINY.register_model(_name, output_dim=_dim, weights="none (random, for tests)")(partial(tiny_backbone, _name))
