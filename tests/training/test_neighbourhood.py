"""NeighbourhoodLoss: the frozen features' in-batch similarities distilled into a head's, and the Trainer's call."""

import pytest
import torch
from torch import nn

from finetuner.data import ClassBalancedSampler
from finetuner.training import TrainConfig, Trainer, build_loss
from finetuner.training.batches import TensorBatches
from finetuner.training.neighbourhood import NeighbourhoodLoss, similarity_distillation


def test_distillation_is_zero_for_a_rotation_and_positive_for_a_random_map():
    torch.manual_seed(0)
    x = torch.randn(32, 16)
    rotation, _ = torch.linalg.qr(torch.randn(16, 16))
    assert float(similarity_distillation(x, x @ rotation)) < 1e-10
    assert float(similarity_distillation(x, x @ torch.randn(16, 4))) > 0.01


def test_center_changes_the_teacher():
    x = torch.rand(16, 8) + 5.0  # all-positive features: raw cosines near 1, centred ones spread
    assert float(similarity_distillation(x, x - x.mean(0))) > 0.1
    assert float(similarity_distillation(x, x - x.mean(0), center=x.mean(0))) < 1e-10


def test_negative_weight_is_a_clear_error():
    with pytest.raises(ValueError, match="keep_neighbourhood"):
        NeighbourhoodLoss(build_loss("TripletMarginLoss"), weight=-1.0)


def _train(weight: float, features: torch.Tensor, labels: torch.Tensor) -> nn.Module:
    torch.manual_seed(0)
    head = nn.Linear(features.shape[1], features.shape[1])
    with torch.no_grad():
        head.weight.copy_(torch.eye(features.shape[1]))
        head.bias.zero_()
    loss = NeighbourhoodLoss(build_loss("TripletMarginLoss"), weight)
    sampler = ClassBalancedSampler(labels.tolist(), 4, 16, seed=0)
    config = TrainConfig(epochs=15, learning_rate=3e-2, device="cpu", precision="fp32", num_workers=0)
    Trainer(head, loss, TensorBatches([features], labels, sampler), config).fit()
    return head


def test_the_trainer_hands_the_inputs_and_the_weight_keeps_the_frozen_neighbourhoods():
    torch.manual_seed(0)
    labels = torch.arange(4).repeat_interleave(16)
    features = torch.randn(64, 12) + 0.5 * torch.randn(4, 12)[labels]
    drift = {}
    for weight in (0.0, 30.0):
        head = _train(weight, features, labels)
        with torch.no_grad():
            drift[weight] = float(similarity_distillation(features, head(features)))
    assert drift[30.0] < 0.5 * drift[0.0]
