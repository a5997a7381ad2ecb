"""Tracing a module into an ONNX graph: the pieces `finetuner.export.export_onnx` and the feature engine share.

The TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``) is used on purpose: in torch 2.14 it
traces the module kinds finetuner produces in 0.2-0.6 s where the dynamo exporter takes 4-20 s on 2 CPU cores, and it
runs the Python forward as is, so hooks and caught exceptions need no special support.
"""

from __future__ import annotations

import copy
import inspect
import itertools
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

INPUT_NAME = "input"
OUTPUT_NAME = "embeddings"


def trace_to_onnx(
    module: nn.Module,
    args: tuple[Tensor, ...],
    file: str | Path,
    names: Sequence[str],
    opset: int | None = None,
    dynamic_axes: dict[str, dict[int, str]] | None = None,
    output_names: Sequence[str] = (OUTPUT_NAME,),
) -> None:
    """Trace ``module(*args)`` into the ONNX file ``file``, with graph inputs ``names`` and outputs ``output_names``
    (``embeddings``).

    Example:
        >>> trace_to_onnx(net, (torch.randn(2, 3, 32, 32),), "net.onnx", ["input"], dynamic_axes=axes)
        ... # doctest: +SKIP
    """
    fastpath = torch.backends.mha.get_fastpath_enabled()
    # nn.MultiheadAttention's fused inference kernel (torchvision ViT, nn.TransformerEncoder) has no ONNX export
    torch.backends.mha.set_fastpath_enabled(False)
    with torch.no_grad(), warnings.catch_warnings():
        # the TorchScript exporter is chosen on purpose (see the module docstring): no warning about it on every export
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX", category=DeprecationWarning)
        try:
            torch.onnx.export(
                module,
                args,
                str(file),
                dynamo=False,
                input_names=list(names),
                output_names=list(output_names),
                opset_version=opset,
                dynamic_axes=dynamic_axes or {},
            )
        finally:
            torch.backends.mha.set_fastpath_enabled(fastpath)


def dynamic_axes(
    names: Sequence[str],
    args: Sequence[Tensor],
    is_dict: bool,
    dynamic_batch: bool = True,
    outputs: Sequence[str] = (OUTPUT_NAME,),
) -> dict[str, dict[int, str]]:
    """The dynamic axes of the graph: the batch (when ``dynamic_batch``) and, for dict inputs, the sequence."""
    axes: dict[str, dict[int, str]] = {}
    for name, tensor in zip(names, args):
        dims = {0: "batch"} if dynamic_batch else {}
        if is_dict and tensor.dim() >= 2:
            dims[1] = "sequence"
        if dims:
            axes[name] = dims
    if dynamic_batch:
        axes.update({name: {0: "batch"} for name in outputs})
    return axes


class PositionalInputs(nn.Module):
    """Gives a module that takes a dict (or keywords) of tensors the positional signature the exporter traces.

    ``keywords`` (see `keyword_names`) are passed as keywords; None passes the dict.
    """

    def __init__(self, module: nn.Module, names: Sequence[str], keywords: Sequence[str] | None) -> None:
        super().__init__()
        self.module = module
        self.names = tuple(names)
        self.keywords = keywords

    def forward(self, *tensors: Tensor) -> Any:
        inputs = dict(zip(self.names, tensors))
        if self.keywords is None:
            return self.module(inputs)
        return self.module(**{name: inputs[name] for name in self.keywords})


def keyword_names(module: nn.Module, names: Sequence[str]) -> tuple[str, ...] | None:
    """The input names to pass to ``module`` as keywords, or None to pass it the dict."""
    params = inspect.signature(module.forward).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return tuple(names)
    return tuple(name for name in names if name in params) or None


@contextmanager
def export_ready(module: nn.Module) -> Iterator[nn.Module]:
    """Yield ``module`` in eval mode on CPU in float32 and restore its train/eval flags afterwards.

    A module that has tensors on another device or in another floating dtype is copied rather than changed.
    """
    tensors = itertools.chain(module.parameters(), module.buffers())
    if any(t.device.type != "cpu" or (t.is_floating_point() and t.dtype != torch.float32) for t in tensors):
        module = copy.deepcopy(module).to(device="cpu", dtype=torch.float32)
    modes = {m: m.training for m in module.modules()}
    module.eval()
    try:
        yield module
    finally:
        for m, training in modes.items():
            m.training = training


def to_cpu_float32(tensor: Tensor) -> Tensor:
    """``tensor`` detached on the CPU, floating point as float32 (integer token ids stay as they are)."""
    tensor = tensor.detach().cpu()
    return tensor.float() if tensor.is_floating_point() else tensor


def max_abs_diff(got: np.ndarray, expected: np.ndarray) -> float:
    """Largest absolute difference, NaN where only one side is NaN, infinite for different shapes."""
    if got.shape != expected.shape:
        return float("inf")
    diff = np.where(np.isnan(got) & np.isnan(expected), 0.0, np.abs(got - expected))
    return float(diff.max(initial=0.0))  # max propagates a one-sided NaN
