"""The bottom layer every other package may use: device and precision choices, atomic file writes and safe reads,
finiteness checks."""

from finetuner.core.device import autocast, autocast_dtype, move_to, resolve_device, seed_everything
from finetuner.core.files import (
    atomic_file,
    atomic_folder,
    read_json,
    read_safetensors,
    read_torch_state,
    remove_abandoned_staging,
)
from finetuner.core.tensors import compare_states, mismatch_summary, non_finite_tensors

__all__ = [
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
]
