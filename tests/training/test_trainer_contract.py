"""Trainer receives what it calls in its constructor; a callback that needs more fails before training."""

import pytest
import torch
from torch import nn

from finetuner.data import ShuffledBatchSampler
from finetuner.training import BestModelCheckpoint, EvaluationCallback, TrainConfig, Trainer
from finetuner.training.batches import TensorBatches


def tiny_trainer(callbacks, **given):
    features, labels = torch.randn(16, 4), torch.arange(16) % 2
    batches = TensorBatches([features], labels, ShuffledBatchSampler(16, 8, seed=0))
    return Trainer(nn.Linear(4, 2), nn.CrossEntropyLoss(), batches, TrainConfig(epochs=1, device="cpu"),
                   callbacks=callbacks, **given)


def test_best_model_checkpoint_without_save_model_names_the_missing_argument(tmp_path):
    trainer = tiny_trainer([EvaluationCallback(), BestModelCheckpoint(tmp_path)], evaluate=lambda: {"map@r": 1.0})
    with pytest.raises(ValueError, match=r"BestModelCheckpoint needs the trainer's save_model: build Trainer\(\.\.\., "
                                         r"save_model=\.\.\.\)"):
        trainer.fit()
    assert trainer.history == []  # refused before the first epoch


def test_evaluation_callback_without_evaluate_names_it():
    with pytest.raises(ValueError, match="EvaluationCallback needs the trainer's evaluate"):
        tiny_trainer([EvaluationCallback()]).fit()


def test_constructor_arguments_reach_the_callbacks(tmp_path):
    saved = []
    trainer = tiny_trainer(
        [EvaluationCallback(), BestModelCheckpoint(tmp_path, monitor="eval/map@r")],
        evaluate=lambda: {"map@r": 0.5},
        save_model=saved.append,
    )
    trainer.fit()
    assert saved == [tmp_path] and trainer.history[-1]["eval/map@r"] == 0.5
