"""Look inside a model by running it: ``summary``, ``display``, ``dense_layers``, ``default_embedding_layer``."""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import torch
from torch import nn

from finetuner.tailor._inputs import Inputs, describe, make_inputs
from finetuner.tailor._trace import Record, trace
from finetuner.tailor.pooling import pool_features, unwrap

# Layers that hand their input on unchanged (or as a view) at inference: never chosen as the embedding layer,
# the layer that computed the value is chosen instead.
_PASS_THROUGH = (
    nn.Identity,
    nn.Flatten,
    nn.Unflatten,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
)


@dataclass(frozen=True)
class LayerInfo:
    """One module that ran during ``summary``'s forward pass.

    Attributes:
        name: dotted path from ``model.named_modules()`` (e.g. ``"layer3.0.bn1"``); pass it to ``chop``,
            ``freeze`` or ``to_embedding_model(layer_name=...)``.
        type: class name of the module.
        output_shape: output shape without the batch dimension (of its last call), or ``None`` when the
            output is not a single tensor (a tuple, a dict, a ``ModelOutput``).
        params: number of parameters of the module, its sub-modules included (so a block counts its layers).
        trainable: how many of those have ``requires_grad=True``.
        is_dense: the module outputs one feature vector per sample: ``(B, D)`` or pooled ``(B, D, 1, 1)``.
        calls: how many times the module ran in one forward pass (a shared activation can run several times;
            it is listed once, at its first call).
    """

    name: str
    type: str
    output_shape: tuple[int, ...] | None
    params: int
    trainable: int
    is_dense: bool
    calls: int = 1

    @property
    def frozen(self) -> bool:
        """The module has parameters and none of them is trainable."""
        return self.params > 0 and self.trainable == 0


def summary(
    model: nn.Module,
    input_size: int | Sequence[int] | None = None,
    *,
    example_input: Inputs | None = None,
    input_dtype: torch.dtype = torch.float32,
) -> list[LayerInfo]:
    """List the modules of ``model`` in the order they run, with their output shapes and parameter counts.

    Runs one forward pass on a batch of 2 in eval mode under ``no_grad`` with forward hooks; the model's
    training flags are restored afterwards and the model is not otherwise changed. The root module is not
    listed (its totals are in ``display``'s footer); modules that did not run on the input are not listed.

    Args:
        model: any ``nn.Module``.
        input_size: shape of one sample, without the batch dimension, e.g. ``(3, 224, 224)``. Guessed when
            neither this nor ``example_input`` is given (see ``finetuner.tailor._inputs.default_input_size``).
        example_input: a tensor, or a dict of tensors passed as keyword arguments (text models).
        input_dtype: dtype of the dummy input built from ``input_size``.

    Returns:
        One ``LayerInfo`` per module that ran, ordered by the start of its first call (parents before children).

    Example:
        >>> [i.name for i in summary(torchvision.models.resnet18(), (3, 64, 64))][:3]
        ['conv1', 'bn1', 'relu']
    """
    inputs = make_inputs(model, input_size, example_input, input_dtype)
    records, _ = trace(model, inputs)
    return _layer_infos(records)


def dense_layers(
    model: nn.Module,
    input_size: int | Sequence[int] | None = None,
    *,
    example_input: Inputs | None = None,
    input_dtype: torch.dtype = torch.float32,
) -> list[str]:
    """Names of the layers that output one vector per sample (``(B, D)`` or ``(B, D, 1, 1)``), in run order."""
    return [
        info.name
        for info in summary(model, input_size, example_input=example_input, input_dtype=input_dtype)
        if info.is_dense
    ]


def default_embedding_layer(
    model: nn.Module,
    input_size: int | Sequence[int] | None = None,
    *,
    example_input: Inputs | None = None,
    input_dtype: torch.dtype = torch.float32,
) -> str:
    """The layer whose output is the model's natural embedding: the one that feeds its classifier.

    The rule, on one forward pass:

    1. The *classifier* is the last ``nn.Linear`` that ran whose output is (an element of) the model's output.
       The embedding is that Linear's input. The layer returned is the last one to finish before the
       classifier whose output, pooled by ``FeaturePool`` (flatten / average / class token / mean / last
       token), equals that input. Pass-through layers (``Dropout``, ``Identity``, ``Flatten``) are skipped in
       favour of the layer that computed the value. This gives torchvision ResNet ``avgpool``, EfficientNet
       ``avgpool``, ConvNeXt ``classifier.0`` (the LayerNorm whose flattened output feeds the Linear),
       ViT ``encoder`` (whose output is ``encoder.ln``'s; class token), MobileNetV3 ``classifier.1`` (the
       hidden layer of its 2-layer classifier, like timm's ``pre_logits``), timm models the layer behind
       ``forward_head(pre_logits=True)``, and a plain MLP the layer before its last Linear.
    2. With no classifier (an encoder, a Hugging Face ``AutoModel``, a timm model with ``num_classes=0``), the
       embedding is the model's own output pooled the same way (a ``ModelOutput``'s ``pooler_output`` if any,
       else the class token of ``last_hidden_state``), and the layer is the last one producing it (BERT:
       ``pooler``, or ``encoder`` without a pooler).
    3. When no layer's output matches (the model slices or mixes it in its own ``forward``), the last layer
       that finished before the classifier (or, without one, the last layer that ran) is returned.

    Raises:
        ValueError: when no layer at all qualifies; pass ``layer_name`` explicitly then.
    """
    inputs = make_inputs(model, input_size, example_input, input_dtype)
    return find_embedding(*trace(model, inputs, on_output=capture))[0]


def display(
    model: nn.Module,
    input_size: int | Sequence[int] | None = None,
    *,
    example_input: Inputs | None = None,
    input_dtype: torch.dtype = torch.float32,
    file: TextIO | None = None,
) -> str:
    """Print a table of ``summary(model, ...)`` and return it.

    Columns: layer name (indented by depth), type (``xN`` when called N times), output shape, parameters (of
    the module and its sub-modules), trainable (``yes`` / ``frozen`` / the trainable count when mixed / ``-``
    without parameters), and ``dense`` for layers that output one vector per sample; ``<- embedding`` marks
    ``default_embedding_layer``. The footer gives the input and total / trainable / frozen parameters.

    Args:
        file: where to print (default ``sys.stdout``).
    """
    inputs = make_inputs(model, input_size, example_input, input_dtype)
    records, output = trace(model, inputs, on_output=capture)
    try:
        embedding = find_embedding(records, output)[0]
    except ValueError:
        embedding = None
    table = format_table(_layer_infos(records), model, inputs, embedding)
    print(table, file=file if file is not None else sys.stdout)
    return table


def format_table(infos: list[LayerInfo], model: nn.Module, inputs: Inputs, embedding: str | None = None) -> str:
    header = ("Layer", "Type", "Output shape", "Params", "Trainable", "Dense")
    rows = []
    for info in infos:
        trainable = (
            "-"
            if info.params == 0
            else "yes"
            if info.trainable == info.params
            else "frozen"
            if info.trainable == 0
            else f"{info.trainable:,}"
        )
        dense = ("dense" if info.is_dense else "") + ("  <- embedding" if info.name == embedding else "")
        rows.append(
            (
                "  " * info.name.count(".") + info.name,
                info.type + (f" x{info.calls}" if info.calls > 1 else ""),
                "-" if info.output_shape is None else str(info.output_shape).replace(",)", ")"),
                f"{info.params:,}",
                trainable,
                dense,
            )
        )
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(row: tuple[str, ...]) -> str:
        cells = [
            cell.rjust(w) if i == 3 else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    rule = "-" * len(line(tuple("-" * w for w in widths)))
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    footer = [
        f"{type(model).__name__}: input {describe(inputs)}",
        f"Params: {total:,} total, {trainable:,} trainable, {total - trainable:,} frozen",
    ]
    if embedding is not None:
        footer.append(f"Default embedding layer: {embedding!r}")
    return "\n".join([line(header), rule, *map(line, rows), rule, *footer])


def _layer_infos(records: list[Record]) -> list[LayerInfo]:
    ran = sorted((r for r in records if r.name and r.ran), key=lambda r: r.first_start)
    return [
        LayerInfo(
            name=r.name,
            type=type(r.module).__name__,
            output_shape=r.output_shape,
            params=sum(p.numel() for p in r.module.parameters()),
            trainable=sum(p.numel() for p in r.module.parameters() if p.requires_grad),
            is_dense=r.is_dense,
            calls=r.calls,
        )
        for r in ran
    ]


def capture(record: Record, args: tuple, output: Any) -> None:
    """``trace`` callback for ``find_embedding``: keeps Linear inputs/outputs and small pooled copies of outputs."""
    if isinstance(record.module, nn.Linear):
        record.extra["linear_in"] = args[0] if args else None
        record.extra["linear_out"] = output
    try:
        x = unwrap(output)
    except TypeError:
        return
    if not x.is_floating_point() or x.ndim < 2:
        record.extra.pop("pooled", None)
        return
    modes = ("cls", "mean", "last") if x.ndim == 3 else ("auto",)
    # clone: a pooled view would keep the whole activation alive
    record.extra["pooled"] = {mode: pool_features(x, mode).clone() for mode in modes}


def find_embedding(records: list[Record], output: Any) -> tuple[str, str]:
    """``(layer name, FeaturePool mode)`` of the default embedding layer; see ``default_embedding_layer``."""
    by_end = sorted((r for r in records if r.name and r.last_end >= 0), key=lambda r: r.last_end, reverse=True)
    outputs = _tensors(output)
    classifier = next(
        (r for r in by_end if any(r.extra.get("linear_out") is t for t in outputs)),
        None,
    )
    target = None
    if classifier is not None:
        target, before = classifier.extra["linear_in"], classifier.last_start
        if not isinstance(target, torch.Tensor) or target.ndim != 2:
            classifier, target = None, None  # a per-token Linear is not a classifier
    if classifier is None:
        before = math.inf
        try:
            target = pool_features(output)
        except (TypeError, ValueError):
            target = None
    candidates = [
        r
        for r in by_end
        if r.last_end < before
        and r is not classifier
        and not isinstance(r.module, _PASS_THROUGH)
        and "pooled" in r.extra
    ]
    if target is not None:
        for record in candidates:
            for mode, pooled in record.extra["pooled"].items():
                if (
                    pooled.shape == target.shape
                    and pooled.dtype == target.dtype
                    and torch.allclose(pooled, target, rtol=1e-4, atol=1e-5)
                ):
                    return record.name, mode
    if candidates:
        return candidates[0].name, "auto"
    raise ValueError(
        "Could not find an embedding layer (no layer's output feeds the classifier or matches the model's output); "
        "pass layer_name= explicitly (see finetuner.tailor.display(model))."
    )


def _tensors(obj: Any) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, Mapping):
        obj = list(obj.values())
    if isinstance(obj, tuple | list):
        return [t for item in obj for t in _tensors(item)]
    return []
