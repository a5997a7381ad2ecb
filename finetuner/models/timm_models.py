"""Any timm model by its timm name, with weights from the local Hugging Face cache or a file."""

from __future__ import annotations

from pathlib import Path

import torch

from finetuner.models.backbone import Backbone
from finetuner.models.weights import find_weights, missing_weights_error


def is_timm_model(name: str) -> bool:
    """True when timm can build ``name`` (an architecture, optionally with a ``.tag``)."""
    import timm

    return timm.is_model(name)


def timm_preprocessing(model: torch.nn.Module):
    """The `ImagePreprocessing` timm recommends for ``model``."""
    import timm

    from finetuner.data.preprocessing import ImagePreprocessing

    config = timm.data.resolve_data_config({}, model=model)
    return ImagePreprocessing(
        input_size=tuple(config["input_size"]),
        mean=tuple(config["mean"]),
        std=tuple(config["std"]),
        interpolation=config["interpolation"],
        crop_pct=config["crop_pct"],
    )


def build_timm(name: str, pretrained: bool = True, weights: str | Path | None = None, **kwargs) -> Backbone:
    """Build timm model ``name``; pretrained weights come from ``weights``, the finetuner cache or the HF cache.

    Example:
        >>> backbone = build_timm("resnet18", pretrained=False)
        >>> backbone.spec
        {'source': 'timm', 'name': 'resnet18', 'kwargs': {}}
    """
    import timm

    model = timm.create_model(name, pretrained=False, **kwargs)
    if pretrained:
        path = Path(weights) if weights else find_weights(name.replace("/", "_"))
        if path is not None:
            model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": str(path)}, **kwargs)
        else:
            try:  # the Hugging Face cache, offline: only what is already on disk
                import huggingface_hub.constants as hub_constants

                hub_constants.HF_HUB_OFFLINE = True
                model = timm.create_model(name, pretrained=True, **kwargs)
            except Exception as error:  # any failure to find cached weights
                raise missing_weights_error(name) from error
    preprocessing = timm_preprocessing(model)
    return Backbone(
        module=model,
        preprocessing=preprocessing,
        spec={"source": "timm", "name": name, "kwargs": kwargs},
        example_input=torch.randn(2, *preprocessing.input_size),
    )


def rebuild(spec: dict, folder=None) -> torch.nn.Module:
    """The architecture of a saved timm model, random weights."""
    import timm

    return timm.create_model(spec["name"], pretrained=False, **spec.get("kwargs", {}))
