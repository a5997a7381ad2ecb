"""Device and precision choices: CUDA when present, every path also on the CPU."""

from __future__ import annotations

import contextlib
import random

import numpy as np
import torch


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` → the local CUDA device when present (the one torchrun assigned), else the CPU.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    if str(device) != "auto":
        resolved = torch.device(device)
        if resolved.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device={device!r} but CUDA is not available here: use device='cpu' or 'auto'.")
        return resolved
    if torch.cuda.is_available():
        from finetuner.core.distributed import local_rank

        return torch.device("cuda", local_rank())
    return torch.device("cpu")


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device``, or None for plain fp32."""
    if precision == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("precision='fp16' needs CUDA; on the CPU use 'bf16' or 'fp32'.")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def autocast(device: torch.device, dtype: torch.dtype | None):
    """An autocast context for ``dtype``, or a no-op context for fp32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def move_to(batch, device: torch.device, channels_last: bool = False):
    """Move a tensor, or a dict/list/tuple of tensors, to ``device`` (non-blocking from pinned memory)."""
    if isinstance(batch, torch.Tensor):
        batch = batch.to(device, non_blocking=True)
        if channels_last and batch.dim() == 4:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch
    if isinstance(batch, dict):
        return {key: move_to(value, device, channels_last) for key, value in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to(value, device, channels_last) for value in batch)
    return batch
