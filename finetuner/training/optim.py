"""Optimizers and learning-rate schedules by name."""

from __future__ import annotations

import difflib
import math
from typing import Any

import torch

_OPTIMIZERS = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD", "rmsprop": "RMSprop", "lion": "Lion"}


def build_optimizer(params: list, name: str, learning_rate: float, **kwargs: Any) -> torch.optim.Optimizer:
    """``adam``, ``adamw``, ``sgd`` (or any ``torch.optim`` class name) over ``params``.

    Example:
        >>> layer = torch.nn.Linear(2, 2)
        >>> build_optimizer(list(layer.parameters()), "adamw", 1e-3, weight_decay=0.01).__class__.__name__
        'AdamW'
    """
    class_name = _OPTIMIZERS.get(name.lower(), name)
    cls = getattr(torch.optim, class_name, None)
    if not isinstance(cls, type) or not issubclass(cls, torch.optim.Optimizer):
        known = sorted(n for n in dir(torch.optim) if isinstance(getattr(torch.optim, n), type) and n[0].isupper())
        close = difflib.get_close_matches(class_name, known + list(_OPTIMIZERS), n=3, cutoff=0.4)
        raise ValueError(f"Unknown optimizer {name!r}. Did you mean {', '.join(close) or 'adam'}? Known: {known}.")
    return cls(params, lr=learning_rate, **kwargs)


def build_scheduler(
    optimizer: torch.optim.Optimizer, name: str | None, total_steps: int, warmup_ratio: float = 0.0
) -> torch.optim.lr_scheduler.LambdaLR | None:
    """Linear warm-up then ``cosine`` or ``linear`` decay to zero, stepped once per batch; None for a constant rate.

    Example:
        >>> layer = torch.nn.Linear(2, 2)
        >>> opt = build_optimizer(list(layer.parameters()), "sgd", 0.1)
        >>> build_scheduler(opt, "cosine", total_steps=100, warmup_ratio=0.1).get_last_lr()
        [0.0]
    """
    if name is None:
        return None
    warmup = int(total_steps * warmup_ratio)

    def factor(step: int) -> float:
        if step < warmup:
            return step / max(1, warmup)
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return 0.5 * (1 + math.cos(math.pi * progress)) if name == "cosine" else 1 - progress

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
