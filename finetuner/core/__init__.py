"""The bottom layer every other package may use: device and precision choices, atomic file writes."""

from finetuner.core.device import autocast, autocast_dtype, move_to, resolve_device, seed_everything
from finetuner.core.files import atomic_file, atomic_folder

__all__ = ["atomic_file", "atomic_folder", "autocast", "autocast_dtype", "move_to", "resolve_device", "seed_everything"]
