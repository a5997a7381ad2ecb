"""Experiment trackers: TensorBoard, MLflow and Weights & Biases behind one `Tracker` callback, all offline.

Adding a tracker is one module here (a `Tracker` subclass decorated with ``@register_tracker(name)``) and its
test: `TRACKERS` imports every module of this folder on its first lookup, and ``report_to=name`` builds it.
"""

from finetuner.training.trackers.base import (
    TRACKERS,
    Tracker,
    build_trackers,
    check_tracker_names,
    flatten,
    mlflow_name,
    register_tracker,
)
from finetuner.training.trackers.mlflow_tracker import MLflowTracker
from finetuner.training.trackers.tensorboard_tracker import TensorBoardTracker
from finetuner.training.trackers.wandb_tracker import WandbTracker

__all__ = [
    "TRACKERS",
    "MLflowTracker",
    "TensorBoardTracker",
    "Tracker",
    "WandbTracker",
    "build_trackers",
    "check_tracker_names",
    "flatten",
    "mlflow_name",
    "register_tracker",
]
