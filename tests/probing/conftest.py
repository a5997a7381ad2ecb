"""Tiny image backbones for the probe tests (plain ``nn.Module`` objects, 32x32 inputs) and a private cache."""

import pytest
import torch
from torch import nn

IMAGE = (3, 32, 32)


class TinyCNN(nn.Module):
    """Stem, two stages and a classifier; ``stage2`` pooled is exactly ``avgpool``'s output."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.stage1 = nn.Sequential(nn.Conv2d(8, 12, 3, stride=2, padding=1), nn.BatchNorm2d(12), nn.ReLU())
        self.stage2 = nn.Sequential(nn.Conv2d(12, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.stage2(self.stage1(self.stem(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def tiny_vit() -> nn.Module:
    from timm.models.vision_transformer import VisionTransformer

    return VisionTransformer(img_size=32, patch_size=8, embed_dim=32, depth=5, num_heads=2, num_classes=10)


@pytest.fixture
def cnn():
    torch.manual_seed(0)
    return TinyCNN().eval()


@pytest.fixture
def vit():
    torch.manual_seed(0)
    return tiny_vit().eval()


@pytest.fixture
def cache_dir(tmp_path):
    return tmp_path / "cache"
