"""`build_backbone`: resolve a name, folder or module to a `Backbone`; `rebuild_backbone` for loading."""

from __future__ import annotations

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
    return backend_for(name).build(name, pretrained=pretrained, **kwargs)


def rebuild_backbone(spec: dict[str, Any], folder: str | Path | None = None) -> nn.Module:
    """The architecture described by ``spec`` with random weights (a saved state dict is loaded on top).

    Example:
        >>> module = rebuild_backbone({"source": "torchvision", "name": "resnet18", "kwargs": {}})
    """
    return get_backend(spec.get("source")).rebuild(spec, folder)


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
