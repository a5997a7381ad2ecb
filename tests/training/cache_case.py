"""One feature-cache case, built the same way in the test process and under torchrun: 40 tiny images in shards of
8 through a seeded linear "backbone" that counts the rows it sees (and can crash after some)."""

import numpy as np
import torch
from torch import nn

from finetuner.data import ImagePreprocessing
from finetuner.training.cache import FeatureCache, fingerprint_module

PREP = ImagePreprocessing(input_size=(3, 8, 8), crop_pct=1.0, augment=None)
SHARD_SIZE = 8


class CountingNet(nn.Module):
    """Counts the rows it computes; with ``fail_after`` it raises once it has computed that many (a killed run)."""

    def __init__(self, fail_after: int | None = None):
        super().__init__()
        self.linear = nn.Linear(3 * 8 * 8, 4)
        self.rows, self.fail_after = 0, fail_after

    def forward(self, x):
        if self.fail_after is not None and self.rows >= self.fail_after:
            raise RuntimeError("simulated crash")
        self.rows += len(x)
        return self.linear(x.flatten(1))


def resume_case(folder, fail_after=None, num_items=40):
    """``(cache, net, items, compute)``; the same weights and items every time."""
    torch.manual_seed(0)
    net = CountingNet(fail_after)
    rng = np.random.default_rng(0)
    items = [rng.integers(0, 255, (8, 8, 3), dtype=np.uint8) for _ in range(num_items)]
    # PyTorch runs every batch, so the net sees (and counts, and crashes on) every row
    return FeatureCache(folder, shard_size=SHARD_SIZE, engine="torch"), net, items, compute


def compute(cache, net, items, views=1):
    return cache.features(
        net,
        fingerprint_module(net),
        items,
        PREP,
        device=torch.device("cpu"),
        views=views,
        batch_size=SHARD_SIZE,
        num_workers=0,
    )
