"""CLIP image–text dual encoders (open_clip), for training on (image, text) pairs with `CLIPLoss`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from finetuner.models.backend import Backbone, Backend, register_backend
from finetuner.models.weights import WeightsNotFoundError, load_state_dict

PREFIX = "open_clip:"
# CLIP's own normalisation constants (open_clip.constants.OPENAI_DATASET_MEAN / _STD)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class CLIPDualEncoder(nn.Module):
    """An open_clip model with one method per modality; ``forward`` picks one by the input's dtype.

    Embeddings are not normalised (losses and ``encode`` do that). CLIP's own ``logit_scale`` is frozen: the
    temperature is learnt by `finetuner.training.pair_losses.CLIPLoss`.

    Example:
        >>> backbone = build_clip(TINY_CONFIG)
        >>> backbone.module.encode_text(backbone.extras["tokenizer"](["a cat"])).shape
        torch.Size([1, 16])
    """

    def __init__(self, clip: nn.Module) -> None:
        super().__init__()
        self.clip = clip
        self.clip.logit_scale.requires_grad_(False)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` normalised images to ``(B, D)`` embeddings."""
        return self.clip.encode_image(images)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(B, context_length)`` token ids (from ``extras["tokenizer"]``) to ``(B, D)`` embeddings."""
        return self.clip.encode_text(tokens)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Images (float ``(B, 3, H, W)``) or token ids (integer ``(B, context_length)``) to ``(B, D)``."""
        return self.encode_image(inputs) if inputs.is_floating_point() else self.encode_text(inputs)


# A CLIP small enough for tests: 32x32 images, 2 blocks of width 32 per tower, 16-d embeddings.
TINY_CONFIG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}


def build_clip(
    name: str | dict[str, Any] = "open_clip:ViT-B-32", pretrained: bool = False, weights: str | Path | None = None
) -> Backbone:
    """A CLIP dual encoder from an open_clip architecture name or a config dict.

    No CLIP weights ship in a package here and nothing is downloaded: pretrained weights come from a file.

    Args:
        name: ``"open_clip:<architecture>"`` (``open_clip.list_models()``) or a config dict with ``embed_dim``,
            ``vision_cfg`` and ``text_cfg`` (like `TINY_CONFIG`).
        pretrained: load pretrained weights; needs ``weights``.
        weights: an open_clip state dict file (``open_clip_model.safetensors`` or ``.bin``); implies pretrained.

    Returns:
        A `Backbone`: module `CLIPDualEncoder`, an `ImageTextPreprocessing` (images and texts), and
        ``extras["tokenizer"]`` for texts.

    Example:
        >>> backbone = build_clip(TINY_CONFIG)
        >>> backbone.module(backbone.example_input).shape
        torch.Size([2, 16])
    """
    import open_clip

    from finetuner.data.preprocessing import ImagePreprocessing
    from finetuner.data.preprocessing.image_text import ImageTextPreprocessing

    config = _config(name)
    if pretrained and weights is None:
        label = name if isinstance(name, str) else "this CLIP config"
        raise WeightsNotFoundError(
            f"No pretrained weights for {label}: none ship in a package and finetuner never downloads. Pass "
            "weights='path/to/open_clip_model.safetensors' (CLI: --model-options '{\"weights\": \"path\"}'; an "
            "open_clip state dict for this architecture, fetched once where there is a network, e.g. from the Hugging "
            "Face repo of the open_clip checkpoint), or pretrained=False (CLI: --no-pretrained) for a random "
            "initialisation."
        )
    module = rebuild({"config": config})
    if weights is not None:
        module.clip.load_state_dict(load_state_dict(weights))
    size = config["vision_cfg"].get("image_size", 224)
    image = ImagePreprocessing(input_size=(3, size, size), mean=CLIP_MEAN, std=CLIP_STD, crop_pct=1.0)
    return Backbone(
        module=module,
        preprocessing=ImageTextPreprocessing(image, context_length=config["text_cfg"].get("context_length", 77)),
        spec={"source": CLIPBackend.name, "config": config},
        example_input=torch.randn(2, 3, size, size),
        extras={"tokenizer": open_clip.SimpleTokenizer(context_length=config["text_cfg"].get("context_length", 77))},
    )


def rebuild(spec: dict[str, Any], folder: str | Path | None = None) -> CLIPDualEncoder:
    """The `CLIPDualEncoder` that ``spec["config"]`` describes, with random weights.

    Example:
        >>> encoder = rebuild({"source": "clip", "config": TINY_CONFIG})
    """
    import open_clip

    config = dict(spec["config"])
    if "hf_model_name" in config["text_cfg"] or "hf_model_name" in config["vision_cfg"]:
        raise ValueError("CLIP towers from Hugging Face models are not supported: use an open_clip architecture")
    cls = open_clip.CustomTextCLIP if config.pop("custom_text", False) else open_clip.CLIP
    return CLIPDualEncoder(cls(**config))


def _config(name: str | dict[str, Any]) -> dict[str, Any]:
    import open_clip

    if isinstance(name, dict):
        return dict(name)
    architecture = name[len(PREFIX) :] if name.startswith(PREFIX) else name
    config = open_clip.get_model_config(architecture)
    if config is None:
        raise ValueError(f"unknown open_clip architecture {architecture!r}: see open_clip.list_models()")
    return config


class CLIPBackend(Backend):
    """open_clip dual encoders: ``open_clip:<architecture>``; they pool by themselves and train with `CLIPLoss`."""

    name = "clip"
    prefix = PREFIX
    pools_itself = True
    default_pair_loss = "CLIPLoss"

    def create(self, name: str, pretrained: bool = False, **kwargs: Any) -> Backbone:
        return build_clip(PREFIX + name, pretrained=pretrained, **kwargs)

    def rebuild(self, spec: dict[str, Any], folder: str | Path | None = None) -> CLIPDualEncoder:
        return rebuild(spec, folder)

    def cut(self, backbone: Backbone, layer_name: str | None) -> None:
        if layer_name is not None:
            raise ValueError(
                f"layer_name={layer_name!r} is not supported for CLIP dual encoders (each tower already gives one "
                "vector): leave layer_name unset, and freeze layers instead (freeze=[...])."
            )
        return None


CLIP = register_backend(CLIPBackend())


@CLIP.register_model(PREFIX + "ViT-B-32", output_dim=512, weights="file passed as weights=")
def vit_b_32(pretrained: bool = False, weights: str | Path | None = None) -> Backbone:
    """open_clip ViT-B/32 (image and text towers, 512-d embeddings).

    Example:
        >>> backbone = vit_b_32(pretrained=False)
    """
    return build_clip(PREFIX + "ViT-B-32", pretrained=pretrained, weights=weights)
