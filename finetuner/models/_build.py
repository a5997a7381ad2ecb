"""`build_backbone`: resolve a name, folder or module to a `Backbone`; `rebuild_backbone` for loading."""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from finetuner.models.backend import Backbone, CustomBackend, backend_for, get_backend


def build_backbone(
    model: str | Path | nn.Module | Backbone,
    *,
    pretrained: bool = True,
    input_size: tuple[int, ...] | None = None,
    example_input: Any = None,
    **kwargs: Any,
) -> Backbone:
    """Resolve ``model`` to a `Backbone`: a registered name, ``timm:<name>``, ``torchvision:<name>``,
    ``open_clip:<arch>``, any timm name, a Hugging Face / sentence-transformers folder, a Hugging Face name
    (``hf:<name>`` or ``org/name``, from the local cache only), or an ``nn.Module`` (give ``input_size`` or
    ``example_input`` so it can be inspected). Names resolve as `finetuner.models.backend_for` says.

    Example:
        >>> backbone = build_backbone("resnet18", pretrained=False)
        >>> type(backbone.module).__name__
        'ResNet'
    """
    if isinstance(model, Backbone):
        return model
    if isinstance(model, nn.Module):
        return _custom_backbone(model, input_size, example_input)
    name = str(model)
    try:
        backbone = backend_for(name).build(name, pretrained=pretrained, **kwargs)
    except TypeError as error:
        refused = _unknown_option_error(name, error, kwargs)
        if refused is None:
            raise
        raise refused from None
    return backbone if input_size is None else _with_input_size(backbone, name, tuple(input_size))


def rebuild_backbone(spec: dict[str, Any], folder: str | Path | None = None) -> nn.Module:
    """The architecture described by ``spec`` with random weights (a saved state dict is loaded on top).

    Example:
        >>> module = rebuild_backbone({"source": "torchvision", "name": "resnet18", "kwargs": {}})
    """
    return get_backend(spec.get("source")).rebuild(spec, folder)


def _unknown_option_error(name: str, error: TypeError, options: dict[str, Any]) -> ValueError | None:
    """A model option the builder does not take, as one line with the builder's close matches (None: another
    TypeError). The builder that refused is found by its name in the frame that called it."""
    found = re.match(r"(\S+)\(\) got an unexpected keyword argument '(\w+)'", str(error))
    if found is None or found[2] not in options:
        return None
    builder, option = found[1].removesuffix(".__init__"), found[2]
    frame = error.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    scope = {**frame.tb_frame.f_globals, **frame.tb_frame.f_locals} if frame else {}
    known = [
        parameter
        for value in scope.values()
        if callable(value) and getattr(value, "__qualname__", None) == builder
        for parameter in _parameters(value)
    ]
    close = difflib.get_close_matches(option, known, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return ValueError(f"model_options: {name} ({builder}) takes no option {option!r}.{hint}")


def _parameters(function: Any) -> list[str]:
    try:
        return [p for p in inspect.signature(function).parameters if p not in ("self", "args", "kwargs")]
    except (TypeError, ValueError):
        return []


def _with_input_size(backbone: Backbone, name: str, size: tuple[int, ...]) -> Backbone:
    """A named image model read at ``size``: its preprocessing resized when the network runs at that size,
    otherwise a ValueError (never ignored)."""
    from finetuner.data.preprocessing import ImagePreprocessing

    preprocessing = backbone.preprocessing
    if not isinstance(preprocessing, ImagePreprocessing):
        raise ValueError(f"input_size={size} is for image models; {name} reads {preprocessing.kind}: leave it out.")
    if tuple(preprocessing.input_size) == size:
        return backbone
    example = torch.randn(2, *size)
    module, training = backbone.module, backbone.module.training
    try:
        with torch.no_grad():
            module.eval()(example)
    except Exception as error:  # noqa: BLE001 - any failure means the network does not take this size
        raise ValueError(
            f"input_size={size} does not fit {name}, which reads {tuple(preprocessing.input_size)} "
            f"({type(error).__name__}: {str(error).splitlines()[0][:120]}). Leave input_size out, or build the "
            f"network for that size (timm ViTs: model_options={{'img_size': {size[-1]}}})."
        ) from None
    finally:
        module.train(training)
    resized = dataclasses.replace(preprocessing, input_size=size)
    return dataclasses.replace(backbone, preprocessing=resized, example_input=example)


def _custom_backbone(module: nn.Module, input_size: tuple[int, ...] | None, example_input: Any) -> Backbone:
    from finetuner.data.preprocessing import ImagePreprocessing

    if example_input is None and input_size is None:
        raise ValueError(
            f"Cannot inspect a custom {type(module).__name__} without an input: pass input_size=(3, 224, 224) "
            "(the shape of one sample) or example_input=<a batch the model accepts>."
        )
    if example_input is None:
        example_input = torch.randn(2, *input_size)
    preprocessing = ImagePreprocessing(input_size=tuple(input_size)) if input_size and len(input_size) == 3 else None
    return Backbone(
        module=module, preprocessing=preprocessing, spec={"source": CustomBackend.name}, example_input=example_input
    )
