"""Model backends and their registry: names to networks with their preprocessing, weights read from disk only."""

from finetuner.models._build import build_backbone, rebuild_backbone
from finetuner.models.backend import (
    Backbone,
    Backend,
    ModelEntry,
    backend_for,
    get_backend,
    get_entry,
    list_backends,
    list_models,
    register_backend,
    unregister_backend,
)
from finetuner.models.weights import WeightsNotFoundError, cache_dir, load_state_dict

__all__ = [
    "BACKENDS",
    "Backbone",
    "Backend",
    "ModelEntry",
    "WeightsNotFoundError",
    "backend_for",
    "build_backbone",
    "cache_dir",
    "get_backend",
    "get_entry",
    "list_backends",
    "list_models",
    "load_state_dict",
    "rebuild_backbone",
    "register_backend",
    "unregister_backend",
]
