"""Atomic, pickle-free training checkpoints: a folder per epoch, written under a temporary name and renamed."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import torch

from finetuner.core.files import atomic_folder

_EPOCH_DIR = re.compile(r"^epoch-(\d+)$")


def save_checkpoint(folder: str | Path, state: dict[str, Any], keep: int = 2) -> Path:
    """Save a trainer `state_dict` as ``folder/epoch-NNNN/`` atomically and keep the newest ``keep`` of them.

    Example:
        >>> save_checkpoint("out/checkpoints", trainer.state_dict())  # doctest: +SKIP
        PosixPath('out/checkpoints/epoch-0003')
    """
    from safetensors.torch import save_file

    folder = Path(folder)
    target = folder / f"epoch-{state['epoch']:04d}"
    with atomic_folder(target) as staging:
        model_state = {k: v.detach().cpu().contiguous() for k, v in state["model"].items()}
        save_file(model_state, str(staging / "model.safetensors"))
        rest = {k: v for k, v in state.items() if k not in ("model", "history")}
        torch.save(rest, staging / "trainer_state.pt")
        (staging / "history.json").write_text(json.dumps(state["history"], indent=1))
    for old in list_checkpoints(folder)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def list_checkpoints(folder: str | Path) -> list[Path]:
    """Complete checkpoint folders under ``folder``, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and _EPOCH_DIR.match(p.name)]
    return sorted(found, key=lambda p: int(_EPOCH_DIR.match(p.name).group(1)))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint` (a folder, or the parent holding ``epoch-*`` folders:
    then the newest), without executing pickled code.

    Example:
        >>> state = load_checkpoint("out/checkpoints")  # doctest: +SKIP
    """
    from safetensors.torch import load_file

    path = Path(path)
    if not (path / "trainer_state.pt").is_file():
        checkpoints = list_checkpoints(path)
        if not checkpoints:
            raise FileNotFoundError(f"No training checkpoint in {path}: expected epoch-NNNN folders written by fit.")
        path = checkpoints[-1]
    state = torch.load(path / "trainer_state.pt", map_location="cpu", weights_only=True)
    state["model"] = load_file(str(path / "model.safetensors"))
    state["history"] = json.loads((path / "history.json").read_text())
    return state
