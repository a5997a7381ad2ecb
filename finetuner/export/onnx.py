"""ONNX export of an embedding module, checked against onnxruntime (`OnnxEncoder` runs the exported file).

The export uses PyTorch's TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``). In torch 2.14 both
exporters give correct graphs for the module kinds finetuner produces (chopped torchvision/timm CNNs with a projection
head, Hugging Face text encoders with pooling, wrappers that stop the forward early with a hook that raises), but
tracing takes 0.2-0.6 s where the dynamo exporter takes 4-20 s on 2 CPU cores, and it runs the Python forward as is,
so hooks and caught exceptions need no special support. Tracing records one path through the code, so the check runs
the graph at the example shapes *and* at another batch size (and sequence length, for text) to catch shapes or branches
that tracing fixed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from finetuner.core import staging_folder
from finetuner.inference.onnx_graph import (
    INPUT_NAME,
    OUTPUT_NAME,
    PositionalInputs,
    dynamic_axes,
    export_ready,
    keyword_names,
    max_abs_diff,
    to_cpu_float32,
    trace_to_onnx,
)


class OnnxCheckError(RuntimeError):
    """The exported ONNX graph does not reproduce the PyTorch module's outputs."""


def export_onnx(
    module: nn.Module,
    example_input: Tensor | Mapping[str, Tensor],
    path: str | Path,
    *,
    opset: int | None = None,
    dynamic_batch: bool = True,
    check: bool = True,
    atol: float = 1e-4,
    metadata: Mapping[str, str] | None = None,
    output_names: Sequence[str] = (OUTPUT_NAME,),
) -> Path:
    """Export an embedding module to an ONNX file, in eval mode, on CPU and in float32.

    The module takes either one tensor (an image batch; the graph input is called ``input``) or a dict of token tensors
    such as ``input_ids`` / ``attention_mask`` / ``token_type_ids`` (graph inputs keep the dict's keys). A module that
    takes a dict is called as ``module(inputs)``, as `TailoredModel` is, unless its ``forward`` has parameters named
    after some of the keys (HF style), in which case it is called with those as keywords (e.g.
    ``module(input_ids=..., attention_mask=...)``). It must return one ``(B, D)`` tensor (graph output ``embeddings``),
    or a tuple of as many tensors as ``output_names``.
    For dict inputs the sequence axis (axis 1) is always dynamic.

    The file is written atomically: the graph is exported and checked in a temporary folder next to ``path`` and only
    then renamed into place, so a failed export or check leaves any previous file untouched. Models over 2 GB keep
    their weights in ``<path>.data`` next to the graph (ONNX external data); keep the two files together. Exporting
    and checking such a model takes about 2.5 times its size in memory. The module's train/eval flags are restored
    afterwards; a module on another device or in another dtype is copied, not moved.

    Args:
        module: the embedding model.
        example_input: a batch the module accepts; its values only matter for the check.
        path: where to write the ``.onnx`` file; parent folders are created.
        opset: ONNX opset version; ``None`` uses the exporter's default (the TorchScript exporter supports up to 20).
        dynamic_batch: make the batch axis dynamic.
        check: run the file with onnxruntime (CPU) on the example input, and on a variant with another batch size and
            sequence length where those axes are dynamic, and compare with PyTorch.
        atol: the largest absolute difference the check accepts.
        metadata: strings stored in the file's ``metadata_props`` (onnxruntime reads them back with
            ``session.get_modelmeta().custom_metadata_map``).
        output_names: the graph's outputs, one per tensor the module returns (every one has a dynamic batch axis).

    Returns:
        ``path`` as a `Path`.

    Raises:
        OnnxCheckError: the check found a difference larger than ``atol`` or onnxruntime could not run the graph;
            nothing is written to ``path`` then.
        ValueError: the module does not return a single tensor.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
        >>> export_onnx(model, torch.randn(2, 3, 32, 32), "model.onnx")
        PosixPath('model.onnx')
        >>> from finetuner.export import OnnxEncoder
        >>> OnnxEncoder("model.onnx")(torch.randn(5, 3, 32, 32)).shape
        (5, 8)
    """
    path = Path(path)
    is_dict = isinstance(example_input, Mapping)
    names = list(example_input) if is_dict else [INPUT_NAME]
    args = tuple(to_cpu_float32(t) for t in (example_input.values() if is_dict else [example_input]))
    with export_ready(module) as model:
        # eval(): a new module is in train mode, and the exporter sets that mode back, recursively, when it is done
        graph_module = PositionalInputs(model, names, keyword_names(model, names)).eval() if is_dict else model
        # a module that returns no tensor, or not one per output name, fails here, before exporting
        expected = _run_torch(graph_module, args, len(output_names))
        with staging_folder(path) as tmp_dir:
            tmp_file = tmp_dir / path.name
            trace_to_onnx(
                graph_module, args, tmp_file, names, opset,
                dynamic_axes(names, args, is_dict, dynamic_batch, output_names), output_names=output_names,
            )
            _gather_external_data(tmp_dir, path.name)
            if metadata:
                _set_metadata(tmp_file, metadata)
            if check:
                batches = _check_inputs(args, is_dict, dynamic_batch)
                _check(graph_module, tmp_file, names, output_names, batches, expected, atol, path)
            _move_into_place(tmp_dir, path)
    return path


def _run_torch(module: nn.Module, args: tuple[Tensor, ...], outputs: int = 1) -> list[np.ndarray]:
    with torch.no_grad():
        out = module(*args)
    tensors = (out,) if isinstance(out, Tensor) else tuple(out) if isinstance(out, tuple) else ()
    if len(tensors) != outputs or not all(isinstance(t, Tensor) for t in tensors):
        wanted = "one (B, D) tensor" if outputs == 1 else f"{outputs} tensors"
        raise ValueError(
            f"export_onnx needs a module that returns {wanted}; this one returns {type(out).__name__}. "
            "Wrap it so forward returns the embeddings (e.g. pool the last hidden state)."
        )
    return [t.float().numpy() for t in tensors]


def _check_inputs(args: tuple[Tensor, ...], is_dict: bool, dynamic_batch: bool) -> list[tuple[Tensor, ...]]:
    """The example, plus one batch with every dynamic axis changed: one more row, one token fewer."""
    variant = args
    if dynamic_batch:
        variant = tuple(torch.cat([t, t[:1]]) for t in variant)
    if is_dict and all(t.dim() >= 2 and t.shape[1] > 1 for t in variant):
        variant = tuple(t[:, :-1] for t in variant)
    return [args] if variant is args else [args, variant]


def _check(
    module: nn.Module,
    file: Path,
    names: Sequence[str],
    output_names: Sequence[str],
    batches: list[tuple[Tensor, ...]],
    example_output: list[np.ndarray],
    atol: float,
    path: Path,
) -> None:
    """Compare onnxruntime with PyTorch on each batch; the first batch is the example, whose output is known."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(file), providers=["CPUExecutionProvider"])
    graph_inputs = {i.name for i in session.get_inputs()}
    for i, args in enumerate(batches):
        shapes = {name: tuple(t.shape) for name, t in zip(names, args)}
        expected = example_output if i == 0 else _run_torch(module, args, len(output_names))
        feed = {name: t.numpy() for name, t in zip(names, args) if name in graph_inputs}
        try:
            outputs = session.run(list(output_names), feed)
        except Exception as e:  # onnxruntime raises its own exception types
            raise OnnxCheckError(
                f"onnxruntime could not run the exported graph on inputs of shapes {shapes}: {e}\n"
                f"Nothing was written to {path}. {_HINT}"
            ) from e
        for name, got, want in zip(output_names, outputs, expected):
            diff = max_abs_diff(got, want)
            if not diff <= atol:
                raise OnnxCheckError(
                    f"The exported graph's {name!r} differs from PyTorch by {diff:.3g} (atol={atol}) on inputs of "
                    f"shapes {shapes}; outputs {got.shape} vs {want.shape}. Nothing was written to {path}. {_HINT}"
                )


_HINT = (
    "Tracing records one run of forward: shapes computed in Python (e.g. reshape(2, -1)) or branches on tensor "
    "values get fixed. Use tensor ops such as x.flatten(1), try dynamic_batch=False, raise atol for small numeric "
    "differences, or pass check=False to write the file anyway."
)


def _set_metadata(file: Path, metadata: Mapping[str, str]) -> None:
    """Store ``metadata`` in the graph's ``metadata_props`` (external weight files are left as they are)."""
    import onnx

    model = onnx.load(str(file), load_external_data=False)
    onnx.helper.set_model_props(model, {**{p.key: p.value for p in model.metadata_props}, **metadata})
    onnx.save_model(model, str(file))


def _gather_external_data(folder: Path, name: str) -> None:
    """Move weights stored outside the graph into one ``<name>.data`` file.

    The TorchScript exporter writes a model over protobuf's 2 GB limit as one file per weight next to the graph.
    """
    extra = [p for p in folder.iterdir() if p.name != name]
    if not extra:
        return
    import onnx

    model = onnx.load(str(folder / name))  # reads the external files
    for p in extra:
        p.unlink()
    onnx.save_model(
        model, str(folder / name), save_as_external_data=True, all_tensors_to_one_file=True, location=f"{name}.data"
    )
    shutil.copymode(folder / name, folder / f"{name}.data")  # onnx creates it owner-only; match the graph file


def _move_into_place(tmp_dir: Path, path: Path) -> None:
    """Rename the checked files over their destination, the weights before the graph; drop a stale ``.data`` file."""
    data, dest_data = tmp_dir / f"{path.name}.data", path.with_name(f"{path.name}.data")
    has_data = data.exists()
    if has_data:
        os.replace(data, dest_data)
    os.replace(tmp_dir / path.name, path)
    if not has_data:
        dest_data.unlink(missing_ok=True)
