"""The bottom layer every other package may use: device and precision choices, atomic file writes and safe reads,
finiteness checks, the `Registry` of every extension family, and the package version.

Names are imported lazily, so the torch-free modules (``core.registry``, ``core.version``, ``core.files``) load
without PyTorch: ``import finetuner`` and ``from finetuner.export import OnnxEncoder`` stay light.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "autocast": "finetuner.core.device",
    "autocast_dtype": "finetuner.core.device",
    "move_to": "finetuner.core.device",
    "resolve_device": "finetuner.core.device",
    "seed_everything": "finetuner.core.device",
    "atomic_file": "finetuner.core.files",
    "atomic_folder": "finetuner.core.files",
    "read_json": "finetuner.core.files",
    "read_safetensors": "finetuner.core.files",
    "read_torch_state": "finetuner.core.files",
    "remove_abandoned_staging": "finetuner.core.files",
    "staging_folder": "finetuner.core.files",
    "Registry": "finetuner.core.registry",
    "compare_states": "finetuner.core.tensors",
    "mismatch_summary": "finetuner.core.tensors",
    "non_finite_tensors": "finetuner.core.tensors",
    "__version__": "finetuner.core.version",
}

__all__ = [
    "Registry",
    "__version__",
    "atomic_file",
    "atomic_folder",
    "autocast",
    "autocast_dtype",
    "compare_states",
    "mismatch_summary",
    "move_to",
    "non_finite_tensors",
    "read_json",
    "read_safetensors",
    "read_torch_state",
    "remove_abandoned_staging",
    "resolve_device",
    "seed_everything",
    "staging_folder",
]

if TYPE_CHECKING:  # pragma: no cover
    from finetuner.core.device import autocast, autocast_dtype, move_to, resolve_device, seed_everything
    from finetuner.core.files import (
        atomic_file,
        atomic_folder,
        read_json,
        read_safetensors,
        read_torch_state,
        remove_abandoned_staging,
    )
    from finetuner.core.registry import Registry
    from finetuner.core.tensors import compare_states, mismatch_summary, non_finite_tensors
    from finetuner.core.version import __version__


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'finetuner.core' has no attribute {name!r}")
    value = getattr(import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
