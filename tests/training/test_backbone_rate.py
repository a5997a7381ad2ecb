"""The backbone's own weights train at a tenth of the head's rate unless told; LoRA adapters at the head's."""

import pytest
import torch
from torch import nn

from finetuner.data import ShuffledBatchSampler
from finetuner.training import TrainConfig, Trainer
from finetuner.training.batches import TensorBatches


class Tuned(nn.Module):
    """A backbone that trains, and a head."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone, self.head = backbone, nn.Linear(4, 3)

    def forward(self, x):
        return self.head(self.backbone(x))


class LoraLike(nn.Module):
    """A frozen layer with an adapter, named as peft names it."""

    def __init__(self):
        super().__init__()
        self.base = nn.Linear(4, 4).requires_grad_(False)
        self.lora_A = nn.Linear(4, 4, bias=False)

    def forward(self, x):
        return self.base(x) + self.lora_A(x)


def rates(model, **config):
    batches = TensorBatches([torch.randn(8, 4)], torch.arange(8) % 3, ShuffledBatchSampler(8, 4, seed=0))
    settings = TrainConfig(epochs=1, batch_size=4, learning_rate=1e-3, device="cpu", **config)
    trainer = Trainer(model, nn.CrossEntropyLoss(), batches, settings)
    trainer.fit()
    return [(sum(p.numel() for p in group["params"]), group["lr"]) for group in trainer.optimizers[0].param_groups]


def test_the_backbone_trains_at_a_tenth_of_the_heads_rate():
    assert rates(Tuned(nn.Linear(4, 4))) == [(20, pytest.approx(1e-4)), (15, 1e-3)]


def test_a_given_backbone_rate_is_kept():
    assert rates(Tuned(nn.Linear(4, 4)), backbone_learning_rate=3e-4) == [(20, 3e-4), (15, 1e-3)]


def test_lora_adapters_train_at_the_heads_rate():
    assert rates(Tuned(LoraLike())) == [(16 + 15, 1e-3)]  # one group: the adapter and the head
