"""Training: the loop, its configuration, losses, callbacks, checkpoints, the feature cache and DDP helpers."""

from finetuner.training.callbacks import (
    BestModelCheckpoint,
    Callback,
    EarlyStopping,
    EvaluationCallback,
    TrainingCheckpoint,
    WiSEFTCallback,
)
from finetuner.training.config import TrainConfig
from finetuner.training.divergence import TrainingDivergedError
from finetuner.training.losses import build_loss, build_miner
from finetuner.training.trainer import Trainer

__all__ = [
    "BestModelCheckpoint",
    "Callback",
    "EarlyStopping",
    "EvaluationCallback",
    "TrainConfig",
    "Trainer",
    "TrainingCheckpoint",
    "TrainingDivergedError",
    "WiSEFTCallback",
    "build_loss",
    "build_miner",
]
