"""finetuner: turn a pretrained PyTorch model into a task-specific embedding model or classifier, locally.

The public API is re-exported here and imported lazily, so ``import finetuner`` stays fast.

Example:
    >>> import finetuner
    >>> run = finetuner.fit(model="efficientnet_lite0", train_data="fashion-mnist", freeze=True, output_dim=128)
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from finetuner.core.version import __version__

_EXPORTS = {
    "fit": "finetuner.api",
    "build_model": "finetuner.api",
    "evaluate": "finetuner.api",
    "load": "finetuner.api",
    "list_models": "finetuner.api",
    "display": "finetuner.api",
    "probe": "finetuner.probing",
    "sweep": "finetuner.probing",
    "preflight": "finetuner.preflighting",
    "Run": "finetuner.run",
    "EmbeddingModel": "finetuner.model",
    "tailor": "finetuner.tailor",
    "FitConfig": "finetuner.config",
    "TrainingDivergedError": "finetuner.training",
    "DataError": "finetuner.data",
}

__all__ = [
    "DataError",
    "EmbeddingModel",
    "FitConfig",
    "Run",
    "TrainingDivergedError",
    "__version__",
    "build_model",
    "display",
    "evaluate",
    "fit",
    "list_models",
    "load",
    "preflight",
    "probe",
    "sweep",
    "tailor",
]

if TYPE_CHECKING:  # pragma: no cover
    from finetuner import tailor
    from finetuner.api import build_model, display, evaluate, fit, list_models, load
    from finetuner.config import FitConfig
    from finetuner.data import DataError
    from finetuner.model import EmbeddingModel
    from finetuner.preflighting import preflight
    from finetuner.probing import probe, sweep
    from finetuner.run import Run
    from finetuner.training import TrainingDivergedError


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'finetuner' has no attribute {name!r}")
    module = import_module(_EXPORTS[name])
    value = module if module.__name__ == f"finetuner.{name}" else getattr(module, name)
    globals()[name] = value
    return value
