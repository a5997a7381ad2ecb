"""Model registry and backends: names to networks with their preprocessing, weights read from disk only."""

from finetuner.models._build import build_backbone, rebuild_backbone
from finetuner.models._registry import ModelEntry, list_models, register_model
from finetuner.models.backbone import Backbone
from finetuner.models.weights import WeightsNotFoundError, cache_dir, load_state_dict

__all__ = [
    "Backbone",
    "ModelEntry",
    "WeightsNotFoundError",
    "build_backbone",
    "cache_dir",
    "list_models",
    "load_state_dict",
    "rebuild_backbone",
    "register_model",
]
