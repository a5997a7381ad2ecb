"""`build_backbone`: resolve a name, folder or module to a `Backbone`; `rebuild_backbone` for loading."""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import Any

import torch
from torch import nn

from finetuner.models._registry import get_entry, unknown_model_error
from finetuner.models.backbone import Backbone

# spec["source"] -> "module:function" that rebuilds the architecture (random weights) from a spec and a folder
_REBUILDERS = {
    "torchvision": "finetuner.models.torchvision_models:rebuild",
    "timm": "finetuner.models.timm_models:rebuild",
    "hf_text": "finetuner.models.hf_text:rebuild",
    "clip": "finetuner.models.clip:rebuild",
    "test": "finetuner.models.test_models:rebuild",
}


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
    ``example_input`` so it can be inspected).

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
    entry = get_entry(name)
    if entry is not None:
        return entry.builder(pretrained=pretrained, **kwargs)
    if name.startswith("timm:"):
        from finetuner.models.timm_models import build_timm

        return build_timm(name[len("timm:") :], pretrained, **kwargs)
    if name.startswith("torchvision:"):
        from finetuner.models.torchvision_models import build_torchvision

        return build_torchvision(name[len("torchvision:") :], pretrained, **kwargs)
    if name.startswith("open_clip:"):
        from finetuner.models.clip import build_clip

        return build_clip(name, pretrained=pretrained, **kwargs)
    if Path(name).is_dir() or name.startswith("hf:") or "/" in name:
        from finetuner.models.hf_text import build_hf_text

        return build_hf_text(name.removeprefix("hf:"), pretrained=pretrained, **kwargs)
    from finetuner.models.timm_models import is_timm_model

    if is_timm_model(name):
        from finetuner.models.timm_models import build_timm

        return build_timm(name, pretrained, **kwargs)
    import timm

    raise unknown_model_error(name, timm.list_models())


def rebuild_backbone(spec: dict[str, Any], folder: str | Path | None = None) -> nn.Module:
    """The architecture described by ``spec`` with random weights (a saved state dict is loaded on top).

    Example:
        >>> module = rebuild_backbone({"source": "torchvision", "name": "resnet18", "kwargs": {}})
    """
    source = spec.get("source")
    if source not in _REBUILDERS:
        raise ValueError(
            f"This model was built from a custom nn.Module (source={source!r}), so its architecture cannot be "
            "rebuilt from the saved files alone: pass the same module again, "
            "e.g. finetuner.load(folder, model=my_module)."
        )
    module_name, function = _REBUILDERS[source].split(":")
    return getattr(import_module(module_name), function)(spec, folder)


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
    return Backbone(module=module, preprocessing=preprocessing, spec={"source": "custom"}, example_input=example_input)
