"""`CachedLoss` (GradCache): the gradients of a batch embedded in mini-batches equal those of the plain batch."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

import finetuner
from finetuner.data import PairData, ShuffledBatchSampler
from finetuner.training import TrainConfig, Trainer, build_loss
from finetuner.training.batches import PairTensorBatches
from finetuner.training.losses import compose_loss
from finetuner.training.pair_losses import (
    CachedCLIPLoss,
    CachedLoss,
    CachedMultipleNegativesRankingLoss,
    CLIPLoss,
    MultipleNegativesRankingLoss,
)


def tiny_model() -> nn.Module:
    return nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 8))


def gradients(model: nn.Module, loss: nn.Module) -> list[torch.Tensor]:
    return [p.grad.clone() for p in [*model.parameters(), *loss.parameters()]]


def plain_and_cached(loss: nn.Module, batch: tuple, scale: float = 1.0, model: nn.Module | None = None):
    """(loss value, gradients) of the plain batch and of the cached loss with mini-batches of 8, from the same
    start; ``backward()`` runs on ``scale * loss`` as the trainer's fp16 scaler and accumulation do."""
    model = model or tiny_model()
    results = []
    for cached in (False, True):
        run_model, run_loss = copy.deepcopy(model), copy.deepcopy(loss)
        if cached:
            run_loss = CachedLoss(run_loss, mini_batch_size=8)
        value = run_loss.forward_batch(run_model, batch)
        (scale * value).backward()
        results.append((value.item(), gradients(run_model, run_loss)))
    return results


@pytest.mark.parametrize("negatives", [False, True])
def test_cached_ranking_loss_gradients_equal_the_plain_large_batch(negatives):
    torch.manual_seed(0)
    batch = (torch.randn(64, 8), torch.randn(64, 8), None, torch.randn(64, 8) if negatives else None)
    (plain_value, plain), (cached_value, cached) = plain_and_cached(MultipleNegativesRankingLoss(), batch)
    assert cached_value == pytest.approx(plain_value, abs=1e-5)
    for a, b in zip(plain, cached):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=0)


def test_cached_clip_loss_gradients_include_the_temperature_and_follow_the_loss_scale():
    torch.manual_seed(0)
    batch = (torch.randn(64, 8), torch.randn(64, 8), None, None)
    (plain_value, plain), (cached_value, cached) = plain_and_cached(CLIPLoss(), batch, scale=4.0)
    assert cached_value == pytest.approx(plain_value, abs=1e-5)
    assert len(plain) == len(cached) == 5  # four model tensors and the logit scale
    for a, b in zip(plain, cached):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=0)
    assert cached[-1].abs().item() > 0


def test_dropout_draws_the_same_masks_in_both_passes():
    """One mini-batch of the whole batch: the replayed pass must draw the masks of the first pass, which are the
    masks of a plain forward from the same random state."""
    model = nn.Sequential(nn.Linear(8, 16), nn.Dropout(0.5), nn.Linear(16, 8))
    batch = (torch.randn(16, 8), torch.randn(16, 8), None, None)
    grads = []
    for loss in (MultipleNegativesRankingLoss(), CachedLoss(MultipleNegativesRankingLoss(), mini_batch_size=16)):
        run_model = copy.deepcopy(model)
        torch.manual_seed(3)
        loss.forward_batch(run_model, batch).backward()
        grads.append([p.grad for p in run_model.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(b, a, atol=1e-6, rtol=0)


class DictModel(nn.Module):
    """Takes a dict of tensors, like a text model: BatchNorm shows whether statistics are updated once."""

    def __init__(self):
        super().__init__()
        self.norm, self.proj = nn.BatchNorm1d(8), nn.Linear(8, 4)

    def forward(self, inputs):
        return self.proj(self.norm(inputs["x"]))


def test_dict_inputs_are_split_and_batchnorm_statistics_move_once_per_mini_batch():
    model = DictModel()
    batch = ({"x": torch.randn(32, 8)}, {"x": torch.randn(32, 8)}, None, None)
    CachedLoss("MultipleNegativesRankingLoss", mini_batch_size=8).forward_batch(model, batch).backward()
    assert model.norm.num_batches_tracked.item() == 8  # 2 columns x 4 mini-batches, replayed pass only
    assert model.proj.weight.grad is not None


def test_trainer_with_a_cached_loss_matches_the_plain_loss_step_for_step():
    torch.manual_seed(0)
    columns = {"queries": torch.randn(64, 8), "documents": torch.randn(64, 8)}
    start = tiny_model()
    trained = []
    for loss in (MultipleNegativesRankingLoss(), CachedMultipleNegativesRankingLoss(mini_batch_size=8)):
        model = copy.deepcopy(start)
        batches = PairTensorBatches(columns, None, ShuffledBatchSampler(64, 32, seed=0))
        Trainer(model, loss, batches, TrainConfig(epochs=2, batch_size=32, optimizer="sgd", device="cpu")).fit()
        trained.append(list(model.parameters()))
    for a, b in zip(*trained):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=0)


def test_named_cached_losses_and_their_errors():
    assert isinstance(build_loss("CachedInfoNCELoss", mini_batch_size=4, scale=5.0).loss, MultipleNegativesRankingLoss)
    assert build_loss("CachedCLIPLoss").loss.__class__ is CLIPLoss and isinstance(CachedCLIPLoss(), CachedLoss)
    assert CachedMultipleNegativesRankingLoss.uses_negatives and not CachedCLIPLoss.uses_negatives
    with pytest.raises(ValueError, match="mini_batch_size must be a positive number of items, got 0"):
        CachedLoss(mini_batch_size=0)
    with pytest.raises(ValueError, match="use gradient_accumulation_steps"):
        compose_loss(build_loss("TripletMarginLoss"), mini_batch_size=8)
    with pytest.raises(ValueError, match="CLIPLoss does not use hard negatives"):
        batch = (torch.randn(4, 8), torch.randn(4, 8), None, torch.randn(4, 8))
        CachedCLIPLoss(mini_batch_size=2).forward_batch(tiny_model(), batch)


def test_fit_with_mini_batch_size_trains_like_the_plain_batch(tmp_path):
    """A linear head: the default projection head's BatchNorm would normalise each mini-batch on its own."""
    images = np.random.default_rng(0).integers(0, 255, (16, 32, 32, 3), dtype=np.uint8)
    pairs = PairData(list(images), list(np.roll(images, 1, axis=0)), None, None)
    common = dict(pretrained=False, epochs=1, batch_size=16, optimizer="sgd", val_split=0, val_class_split=0,
                  cache=False, device="cpu", augment=False)  # fmt: skip
    plain = finetuner.fit("test_vit", pairs, output_dim=8, head="linear", **common)
    cached = finetuner.fit("test_vit", pairs, output_dim=8, head="linear", mini_batch_size=4, **common)
    assert cached.history[0]["loss"] == pytest.approx(plain.history[0]["loss"], abs=1e-5)
    for a, b in zip(plain.model.parameters(), cached.model.parameters()):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=0)
