"""The trainer's step structure: gradient accumulation, optimizer-step hooks, log records, eval every N steps."""

import logging

import pytest
import torch
from torch import nn

from finetuner.core.log import configure_logging
from finetuner.data import ShuffledBatchSampler
from finetuner.training import Callback, EvaluationCallback, TrainConfig, Trainer
from finetuner.training.batches import TensorBatches


class Steps(Callback):
    """Records what a callback sees after each optimizer step and in each log record."""

    def __init__(self):
        self.steps, self.records = [], []

    def on_step_end(self, trainer):
        self.steps.append((trainer.global_step, trainer.optimizers[0].param_groups[0]["lr"]))

    def on_log(self, trainer, record):
        self.records.append(record)


def run(batch_size, accumulation=1, items=32, epochs=1, callbacks=(), **config):
    torch.manual_seed(0)
    features, labels = torch.randn(items, 4), torch.arange(items) % 3
    torch.manual_seed(1)
    model = nn.Linear(4, 3)
    batches = TensorBatches([features], labels, ShuffledBatchSampler(items, batch_size, seed=0))
    settings = TrainConfig(
        epochs=epochs, batch_size=batch_size, gradient_accumulation_steps=accumulation, optimizer="sgd",
        learning_rate=0.5, device="cpu", **config,
    )  # fmt: skip
    trainer = Trainer(model, nn.CrossEntropyLoss(), batches, settings, callbacks=callbacks, evaluate=lambda: {"m": 1.0})
    trainer.fit()
    return trainer


def test_accumulated_small_batches_train_like_one_large_batch():
    large, small = run(batch_size=32), run(batch_size=8, accumulation=4)
    for a, b in zip(large.model.parameters(), small.model.parameters()):
        torch.testing.assert_close(b, a, atol=1e-6, rtol=0)
    assert large.global_step == small.global_step == 1
    assert small.history[0]["loss"] == pytest.approx(large.history[0]["loss"], abs=1e-6)


def test_a_last_partial_group_is_averaged_over_its_own_batches():
    """40 items in batches of 8 with 4 accumulation steps: a group of 4 batches, then a group of 1."""
    large = run(batch_size=32, items=40, accumulation=1)  # batches of 32 and 8: the same groups
    small = run(batch_size=8, items=40, accumulation=4)
    assert small.global_step == large.global_step == small.steps_per_epoch == 2
    for a, b in zip(large.model.parameters(), small.model.parameters()):
        torch.testing.assert_close(b, a, atol=1e-6, rtol=0)


def test_schedules_and_hooks_count_optimizer_steps():
    steps = Steps()
    trainer = run(batch_size=4, accumulation=2, items=32, epochs=2, callbacks=[steps], scheduler="linear",
                  logging_steps=3)  # fmt: skip
    assert [s for s, _ in steps.steps] == list(range(1, 9))  # 8 batches / 2 per step, twice
    assert steps.steps[-1][1] == pytest.approx(0.0)  # the linear schedule ends exactly at the last step
    logged = [r for r in steps.records if "train/loss" in r]
    assert [r["step"] for r in logged] == [3, 6]
    assert logged[0]["train/learning_rate"] == pytest.approx(0.5 * (1 - 2 / 8))  # the rate of the third step
    epochs = [r for r in steps.records if "epoch/loss" in r]
    assert [(r["step"], r["epoch/loss"]) for r in epochs] == [(4, trainer.history[0]["loss"]),
                                                              (8, trainer.history[1]["loss"])]  # fmt: skip
    assert trainer.log_history == steps.records


def test_eval_steps_evaluate_between_epochs_but_not_twice_at_an_epoch_end():
    steps = Steps()
    calls = []

    def evaluate():
        calls.append(1)
        return {"map@r": float(len(calls))}

    features, labels = torch.randn(32, 4), torch.arange(32) % 3
    batches = TensorBatches([features], labels, ShuffledBatchSampler(32, 8, seed=0))  # 4 steps per epoch
    callbacks = [EvaluationCallback(every_steps=3), steps]
    trainer = Trainer(nn.Linear(4, 3), nn.CrossEntropyLoss(), batches, TrainConfig(epochs=2, device="cpu"),
                      callbacks=callbacks, evaluate=evaluate)  # fmt: skip
    trainer.fit()
    evaluations = [(r["step"], r["eval/map@r"]) for r in steps.records if "eval/map@r" in r]
    # steps 3 and 6 between epochs, the epoch ends 4 and 8 (step 8 is not evaluated twice)
    assert evaluations == [(3, 1.0), (4, 2.0), (6, 3.0), (8, 4.0)]
    assert [h["eval/map@r"] for h in trainer.history] == [2.0, 4.0]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"gradient_accumulation_steps": 0}, "gradient_accumulation_steps must be a positive number of steps"),
        ({"logging_steps": 1.5}, "logging_steps must be a whole number"),
        ({"mini_batch_size": 0}, "mini_batch_size must be a positive number of items"),
        ({"matryoshka_dims": (64, 0)}, "matryoshka_dims must be positive embedding sizes"),
    ],
)
def test_bad_step_settings_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**options)


def test_epoch_lines_reach_stderr_unless_logging_is_configured(monkeypatch, capsys):
    logger = logging.getLogger("finetuner")
    monkeypatch.setattr(logging.getLogger(), "handlers", [])  # a plain Python session: nothing configured
    monkeypatch.setattr(logger, "handlers", [])
    monkeypatch.setattr(logger, "level", logging.NOTSET)
    configure_logging()
    configure_logging()  # twice: still one handler
    run(batch_size=8, epochs=2)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("finetuner: epoch")]
    assert len(lines) == 2 and lines[0].startswith("finetuner: epoch 1/2 loss=")
    configure_logging(verbose=False)
    run(batch_size=8)
    assert "finetuner: epoch" not in capsys.readouterr().err
    monkeypatch.setattr(logging.getLogger(), "handlers", [logging.NullHandler()])  # the user configures logging
    configure_logging()
    assert logger.handlers == []  # ours is gone: no line twice
