"""Run a model once with hooks on every module and record what ran, in which order, with which output."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from finetuner.tailor._inputs import Inputs, inference, run


@dataclass(eq=False)
class Record:
    """What one module did during the traced forward pass (its last call, for a module called several times)."""

    name: str  # first name in ``named_modules()``; "" for the root
    module: nn.Module
    calls: int = 0
    first_start: int = -1  # clock ticks: every module start and end advances one shared counter
    last_start: int = -1
    last_end: int = -1  # -1: never returned (did not run, or an early exit stopped it)
    output_shape: tuple[int, ...] | None = None
    is_dense: bool = False
    extra: dict = field(default_factory=dict)  # filled by the caller's on_output callback

    @property
    def ran(self) -> bool:
        return self.calls > 0


def output_info(output: Any) -> tuple[tuple[int, ...] | None, bool]:
    """``(shape without batch dim, is_dense)``; ``(None, False)`` unless the output is one tensor of rank >= 1."""
    if not isinstance(output, torch.Tensor) or output.ndim == 0:
        return None, False
    shape = tuple(output.shape[1:])
    dense = len(shape) == 1 or (len(shape) == 3 and shape[1:] == (1, 1))
    return shape, dense


def trace(
    model: nn.Module, inputs: Inputs, on_output: Callable[[Record, tuple, Any], None] | None = None
) -> tuple[list[Record], Any]:
    """Run ``model`` once in eval mode under no_grad with hooks on every module (the root included).

    Returns the records in ``named_modules()`` order and the model's output. Hooks are removed and training
    flags restored afterwards. ``on_output(record, args, output)`` is called at the end of every call.
    """
    records: dict[int, Record] = {}
    clock = itertools.count()

    def start(module: nn.Module, args: tuple) -> None:
        record = records[id(module)]
        record.calls += 1
        record.last_start = next(clock)
        if record.first_start < 0:
            record.first_start = record.last_start

    def end(module: nn.Module, args: tuple, output: Any) -> None:
        record = records[id(module)]
        record.last_end = next(clock)
        record.output_shape, record.is_dense = output_info(output)
        if on_output is not None:
            on_output(record, args, output)

    handles = []
    try:
        for name, module in model.named_modules():
            records[id(module)] = Record(name, module)
            # prepend: record before any other hook runs (an early-exit hook may raise)
            handles.append(module.register_forward_pre_hook(start, prepend=True))
            handles.append(module.register_forward_hook(end, prepend=True))
        with inference(model):
            output = run(model, inputs)
    finally:
        for handle in handles:
            handle.remove()
    return list(records.values()), output
