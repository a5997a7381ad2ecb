"""Any timm model by its timm name, with weights from a file, the finetuner cache or the local Hugging Face cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from finetuner.models.backend import Backbone, Backend, register_backend
from finetuner.models.weights import find_weights, missing_weights_error

# timm's Hugging Face weight files -> the safetensors twin it prefers when the repo has one
_SAFE_ALTERNATIVES = {
    "pytorch_model.bin": "model.safetensors",
    "open_clip_pytorch_model.bin": "open_clip_model.safetensors",
}


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


def cached_hub_weights(pretrained_cfg: dict[str, Any]) -> Path | None:
    """The weights file of a timm pretrained config in the local Hugging Face cache, or None (never downloads).

    Example:
        >>> cached_hub_weights(timm.create_model("resnet18").pretrained_cfg)  # doctest: +SKIP
        PosixPath('.../models--timm--resnet18.a1_in1k/snapshots/.../model.safetensors')
    """
    from huggingface_hub import try_to_load_from_cache

    hub_id = pretrained_cfg.get("hf_hub_id")
    if not hub_id:
        return None
    repo_id, _, revision = hub_id.partition("@")
    filename = pretrained_cfg.get("hf_hub_filename") or "pytorch_model.bin"
    for candidate in (_SAFE_ALTERNATIVES.get(filename), filename):
        path = try_to_load_from_cache(repo_id, candidate, revision=revision or None) if candidate else None
        if isinstance(path, str):  # a path, not None or the "known missing" marker
            return Path(path)
    return None


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
        path = path or cached_hub_weights(model.pretrained_cfg)
        if path is None:
            raise missing_weights_error(name)
        model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": str(path)}, **kwargs)
    preprocessing = timm_preprocessing(model)
    return Backbone(
        module=model,
        preprocessing=preprocessing,
        spec={"source": TimmBackend.name, "name": name, "kwargs": kwargs},
        example_input=torch.randn(2, *preprocessing.input_size),
    )


class TimmBackend(Backend):
    """Any timm model: ``timm:<name>``, or a bare timm name that no other backend claims (tried last)."""

    name = "timm"
    prefix = "timm:"
    priority = 90

    def matches(self, name: str) -> bool:
        return is_timm_model(name)

    def create(self, name: str, pretrained: bool = True, **kwargs: Any) -> Backbone:
        return build_timm(name, pretrained, **kwargs)

    def rebuild(self, spec: dict[str, Any], folder: str | Path | None = None) -> torch.nn.Module:
        import timm

        return timm.create_model(spec["name"], pretrained=False, **spec.get("kwargs", {}))

    def names(self) -> list[str]:
        import timm

        return super().names() + timm.list_models()


TIMM = register_backend(TimmBackend())
