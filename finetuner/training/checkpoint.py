"""Atomic, pickle-free training checkpoints: a folder per epoch, written under a temporary name and renamed."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import torch

from finetuner.core.files import atomic_folder, read_json, read_safetensors, read_torch_state
from finetuner.core.tensors import non_finite_tensors

_EPOCH_DIR = re.compile(r"^epoch-(\d+)$")
_TRAINER_KEYS = ("optimizers", "schedulers", "epoch", "global_step", "torch_rng")


def save_checkpoint(folder: str | Path, state: dict[str, Any], keep: int = 2) -> Path:
    """Save a trainer `state_dict` as ``folder/epoch-NNNN/`` atomically and keep the newest ``keep`` of them.

    Raises:
        ValueError: a weight is NaN or infinite (such a state is never written).

    Example:
        >>> save_checkpoint("out/checkpoints", trainer.state_dict())  # doctest: +SKIP
        PosixPath('out/checkpoints/epoch-0003')
    """
    from safetensors.torch import save_file

    folder = Path(folder)
    target = folder / f"epoch-{state['epoch']:04d}"
    model_state = {k: v.detach().cpu().contiguous() for k, v in state["model"].items()}
    bad = non_finite_tensors(model_state.items())
    if bad:
        raise ValueError(
            f"Refusing to write checkpoint {target}: NaN or infinite values in {', '.join(bad[:3])} "
            "(training diverged: lower the learning rate, or set grad_clip)."
        )
    with atomic_folder(target) as staging:
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

    The state's ``"source"`` names the folder read, for error messages.

    Raises:
        FileNotFoundError: ``path`` holds no checkpoint.
        ValueError: a file of the checkpoint is damaged, truncated or not what finetuner wrote.

    Example:
        >>> state = load_checkpoint("out/checkpoints")  # doctest: +SKIP
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"resume_from={str(path)!r} does not exist: pass the checkpoints folder of a run.")
    if not (path / "trainer_state.pt").is_file():
        checkpoints = list_checkpoints(path)
        if not checkpoints:
            hint = (
                " It holds a saved model: to train it further, pass it as the model instead."
                if (path / "config.json").is_file()
                else ""
            )
            raise FileNotFoundError(
                f"No training checkpoint in {path}: expected epoch-NNNN folders written by fit "
                f"(output_dir/checkpoints, or a TrainingCheckpoint folder).{hint}"
            )
        path = checkpoints[-1]
    state = read_torch_state(path / "trainer_state.pt", "the trainer state of a finetuner checkpoint")
    missing = [key for key in _TRAINER_KEYS if key not in state] if isinstance(state, dict) else list(_TRAINER_KEYS)
    if missing:
        lacks = ", ".join(missing)
        raise ValueError(f"{path / 'trainer_state.pt'} is not a finetuner trainer state: it lacks {lacks}.")
    state["model"] = read_safetensors(path / "model.safetensors", "the model weights of a finetuner checkpoint")
    state["history"] = read_json(path / "history.json", "the training history of a finetuner checkpoint")
    state["source"] = f"checkpoint {path}"
    return state
