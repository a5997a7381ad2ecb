"""torchvision classification models, with weights read from disk only (never downloaded)."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from finetuner.models.backend import Backbone, Backend, register_backend
from finetuner.models.weights import find_weights, load_state_dict, missing_weights_error

# name -> size of the default embedding (the features that feed the original classifier; MobileNetV3: the hidden
# layer of its 2-layer classifier, timm's pre_logits)
_OUTPUT_DIMS = {
    **{name: dim for name, dim in zip(("resnet18", "resnet34"), (512, 512))},
    **{name: 2048 for name in ("resnet50", "resnet101", "resnet152")},
    **dict(zip((f"efficientnet_b{i}" for i in range(8)), (1280, 1280, 1408, 1536, 1792, 2048, 2304, 2560))),
    "mobilenet_v3_small": 1024,
    "mobilenet_v3_large": 1280,
    "vit_b_16": 768,
    "vit_b_32": 768,
    "convnext_tiny": 768,
    "convnext_small": 768,
    "convnext_base": 1024,
}


def build_torchvision(name: str, pretrained: bool = True, weights: str | Path | None = None, **kwargs) -> Backbone:
    """Build torchvision model ``name``; pretrained weights come from ``weights`` or the local caches.

    Example:
        >>> backbone = build_torchvision("resnet18", pretrained=False)
        >>> backbone.preprocessing.input_size
        (3, 224, 224)
    """
    import torchvision

    from finetuner.data.preprocessing import ImagePreprocessing

    model: nn.Module = torchvision.models.get_model(name, weights=None, **kwargs)
    default_weights = torchvision.models.get_model_weights(name).DEFAULT
    if pretrained:
        filename = Path(default_weights.url).name
        path = Path(weights) if weights else find_weights(name, (filename,))
        if path is None:
            raise missing_weights_error(name, (filename,))
        model.load_state_dict(load_state_dict(path))
    transform = default_weights.transforms()
    crop = transform.crop_size[0]
    preprocessing = ImagePreprocessing(
        input_size=(3, crop, crop),
        mean=tuple(transform.mean),
        std=tuple(transform.std),
        interpolation=transform.interpolation.value,
        crop_pct=crop / transform.resize_size[0],
    )
    return Backbone(
        module=model,
        preprocessing=preprocessing,
        spec={"source": "torchvision", "name": name, "kwargs": kwargs},
        example_input=torch.randn(2, 3, crop, crop),
    )


class TorchvisionBackend(Backend):
    """torchvision classification models: the names below, or any torchvision name as ``torchvision:<name>``."""

    name = "torchvision"
    prefix = "torchvision:"

    def create(self, name: str, pretrained: bool = True, **kwargs: Any) -> Backbone:
        return build_torchvision(name, pretrained, **kwargs)

    def rebuild(self, spec: dict[str, Any], folder: str | Path | None = None) -> nn.Module:
        return build_torchvision(spec["name"], pretrained=False, **spec.get("kwargs", {})).module


TORCHVISION = register_backend(TorchvisionBackend())
for _name, _dim in _OUTPUT_DIMS.items():
    TORCHVISION.register_model(_name, output_dim=_dim, weights="torchvision file on disk")(
        partial(build_torchvision, _name)
    )
