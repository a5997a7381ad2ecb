"""Tiny architectures with random weights for tests, examples and quick CLI checks (32×32 inputs)."""

from __future__ import annotations

import torch
from torch import nn

from finetuner.models._registry import register_model
from finetuner.models.backbone import Backbone
from finetuner.models.weights import missing_weights_error


class TinyResNet(nn.Module):
    """A two-stage residual CNN with BatchNorm and a classifier ``fc``, like a torchvision ResNet in miniature."""

    def __init__(self, num_classes: int = 10, width: int = 8):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.layer1 = nn.Sequential(nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.layer2 = nn.Sequential(
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(2 * width), nn.ReLU()
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = x + self.layer1(x)  # a residual add: not a plain chain of children
        x = self.layer2(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _tiny_backbone(module: nn.Module, name: str, pretrained: bool) -> Backbone:
    from finetuner.data.preprocessing import ImagePreprocessing

    if pretrained:
        raise missing_weights_error(name)
    return Backbone(
        module=module,
        preprocessing=ImagePreprocessing(input_size=(3, 32, 32), crop_pct=1.0),
        spec={"source": "test", "name": name},
        example_input=torch.randn(2, 3, 32, 32),
    )


@register_model("test_cnn", backend="test", output_dim=16, weights="none (random, for tests)")
def test_cnn(pretrained: bool = False) -> Backbone:
    """A tiny residual CNN with BatchNorm (random weights), 32×32 inputs.

    Example:
        >>> test_cnn().module.fc.in_features
        16
    """
    return _tiny_backbone(TinyResNet(), "test_cnn", pretrained)


@register_model("test_vit", backend="test", output_dim=32, weights="none (random, for tests)")
def test_vit(pretrained: bool = False) -> Backbone:
    """A 2-block timm Vision Transformer (dim 32, 2 heads, patch 8; random weights), 32×32 inputs.

    Example:
        >>> test_vit().module.num_features
        32
    """
    return _tiny_backbone(_tiny_vit(), "test_vit", pretrained)


def _tiny_vit() -> nn.Module:
    from timm.models.vision_transformer import VisionTransformer

    return VisionTransformer(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, num_classes=10)


def rebuild(spec: dict, folder=None) -> nn.Module:
    """The architecture of a saved test model, random weights."""
    return {"test_cnn": TinyResNet, "test_vit": _tiny_vit}[spec["name"]]()
