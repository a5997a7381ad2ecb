"""A run whose loss or weights stop being numbers stops with `TrainingDivergedError` (step, epoch, likely cause),
keeps the checkpoints of earlier epochs, and never writes NaN/inf weights anywhere."""

import math

import pytest
import torch
from torch import nn

import finetuner
from finetuner.data import ShuffledBatchSampler
from finetuner.training import TrainConfig, Trainer, TrainingDivergedError
from finetuner.training.batches import TensorBatches
from finetuner.training.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint


class NaNAtCall(nn.Module):
    """A metric loss (mean squared embedding) that returns NaN (or ``value``) on the calls listed."""

    def __init__(self, calls, value=float("nan")):
        super().__init__()
        self.bad_calls, self.value, self.calls = set(calls), value, 0

    def forward(self, embeddings, labels=None, indices=None):
        self.calls += 1
        loss = embeddings.pow(2).mean()
        return loss * self.value if self.calls in self.bad_calls else loss


def fit(arrays, tmp_path, **overrides):
    options = dict(pretrained=False, freeze=True, output_dim=8, epochs=3, batch_size=8, output_dir=tmp_path / "out",
                   cache_dir=tmp_path / "cache")
    return finetuner.fit("test_cnn", arrays, **{**options, **overrides})


def test_a_huge_learning_rate_stops_with_a_clear_error_and_saves_nothing(arrays, tmp_path):
    """The reported bug: learning_rate=1e9 used to train on and save inf BatchNorm statistics, with exit code 0."""
    with pytest.raises(TrainingDivergedError) as error:
        fit(arrays, tmp_path, learning_rate=1e9, head="projection")  # the reported case: BatchNorm went inf
    message = str(error.value)
    assert "\n" not in message
    assert "epoch 1/3" in message and "learning_rate=1e+09" in message and "grad_clip=1.0" in message, message
    assert isinstance(error.value, ValueError)
    assert not (tmp_path / "out" / "model").exists() and list_checkpoints(tmp_path / "out" / "checkpoints") == []


def test_a_nan_loss_names_its_step_and_keeps_the_last_good_checkpoint(arrays, tmp_path):
    loss = NaNAtCall(calls=[5])  # 3 batches an epoch: the 5th step is in epoch 2
    with pytest.raises(TrainingDivergedError, match=r"step 5 \(epoch 2/3\): the loss is not finite") as error:
        fit(arrays, tmp_path, loss=loss, cache=False)
    assert str(tmp_path / "out" / "checkpoints") in str(error.value)
    checkpoints = list_checkpoints(tmp_path / "out" / "checkpoints")
    assert [c.name for c in checkpoints] == ["epoch-0001"]
    state = load_checkpoint(checkpoints[0])
    assert all(torch.isfinite(t).all() for t in state["model"].values() if t.is_floating_point())
    assert not (tmp_path / "out" / "model").exists()


def test_an_infinite_loss_in_bf16_names_the_precision(arrays, tmp_path):
    with pytest.raises(TrainingDivergedError, match="precision='fp32'"):
        fit(arrays, tmp_path, loss=NaNAtCall(calls=[1], value=float("inf")), precision="bf16", output_dir=None)


def test_save_refuses_non_finite_weights(tmp_path):
    model = finetuner.build_model("test_cnn", pretrained=False, output_dim=8)
    with torch.no_grad():
        next(model.head.parameters())[0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"Refusing to save .*: NaN or infinite values in head\."):
        model.save(tmp_path / "model")
    assert not (tmp_path / "model").exists() and list(tmp_path.iterdir()) == []


def test_checkpoints_refuse_non_finite_weights(tmp_path):
    state = {"model": {"w": torch.tensor([1.0, math.inf])}, "epoch": 1, "history": []}
    with pytest.raises(ValueError, match="Refusing to write checkpoint .*epoch-0001: NaN or infinite values in w "):
        save_checkpoint(tmp_path, state)
    assert list(tmp_path.iterdir()) == []


class ScaledTrainer(Trainer):
    """The trainer with GradScaler switched on, as under fp16 on CUDA (GradScaler also runs on the CPU)."""

    def _setup(self):
        model = super()._setup()
        self.scaler = torch.amp.GradScaler("cpu", enabled=True)
        return model


def scaled_run(bad_calls, epochs=2):
    torch.manual_seed(0)
    features, labels = torch.randn(32, 6), torch.arange(32) % 4
    head = nn.Linear(6, 4)
    batches = TensorBatches([features], labels, ShuffledBatchSampler(32, 8))
    config = TrainConfig(epochs=epochs, batch_size=8, device="cpu", learning_rate=0.1)
    trainer = ScaledTrainer(head, NaNAtCall(bad_calls, value=float("inf")), batches, config)
    return trainer, head


def test_with_grad_scaling_an_overflowing_step_is_skipped_not_an_error():
    trainer, head = scaled_run(bad_calls=[2, 6])
    history = trainer.fit()
    assert [r["epoch"] for r in history] == [1, 2]
    assert all(math.isfinite(r["loss"]) for r in history)
    assert all(torch.isfinite(p).all() for p in head.parameters())


def test_with_grad_scaling_an_epoch_of_overflows_is_an_error():
    trainer, _ = scaled_run(bad_calls=range(1, 100))
    with pytest.raises(TrainingDivergedError, match="every step"):
        trainer.fit()


class Masked(nn.Module):
    """A linear layer with a buffer of -inf by design (like a causal attention mask)."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(6, 4)
        self.register_buffer("mask", torch.full((2, 2), -math.inf).triu(1))

    def forward(self, x):
        return self.linear(x) + self.mask.exp().sum()  # exp(-inf) = 0: finite outputs


def test_buffers_that_start_non_finite_are_not_divergence():
    features, labels = torch.randn(32, 6), torch.arange(32) % 4
    batches = TensorBatches([features], labels, ShuffledBatchSampler(32, 8))
    trainer = Trainer(Masked(), NaNAtCall(calls=[]), batches, TrainConfig(epochs=2, batch_size=8, device="cpu"))
    assert [r["epoch"] for r in trainer.fit()] == [1, 2]


def test_a_nan_loss_stops_at_the_next_progress_sync_not_at_the_epochs_end():
    features, labels = torch.randn(200, 6), torch.arange(200) % 4
    batches = TensorBatches([features], labels, ShuffledBatchSampler(200, 8))  # 25 steps an epoch
    loss = NaNAtCall(calls=[3])
    trainer = Trainer(nn.Linear(6, 4), loss, batches, TrainConfig(epochs=1, batch_size=8, device="cpu"))
    with pytest.raises(TrainingDivergedError, match=r"step 3 \(epoch 1/1\)"):
        trainer.fit()
    assert loss.calls == 20  # checked with the progress bar's sync every 20 steps: no sync per step
