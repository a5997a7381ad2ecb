"""The model registry: names that `build_backbone` understands, with their backend and output size."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module

from finetuner.models.backbone import Backbone

# Modules that register their entries when imported; imported on first use so `import finetuner` stays fast.
_BACKEND_MODULES = (
    "finetuner.models.efficientnet_lite",
    "finetuner.models.torchvision_models",
    "finetuner.models.hf_text",
    "finetuner.models.clip",
    "finetuner.models.test_models",
)


@dataclass(frozen=True)
class ModelEntry:
    """One registered model name.

    Attributes:
        name: what users pass as ``model=``.
        backend: ``torchvision``, ``timm``, ``hf_text`` or ``clip``.
        output_dim: size of the default embedding (the features feeding the original classifier).
        weights: where pretrained weights come from, in words.
        builder: ``builder(pretrained: bool, **kwargs) -> Backbone``.
    """

    name: str
    backend: str
    output_dim: int | None
    weights: str
    builder: Callable[..., Backbone]


_REGISTRY: dict[str, ModelEntry] = {}
_loaded = False


def register_model(name: str, *, backend: str, output_dim: int | None, weights: str):
    """Decorator that registers ``builder(pretrained=False, **kwargs) -> Backbone`` under ``name``.

    Example:
        >>> @register_model("my_net", backend="torchvision", output_dim=16, weights="none")
        ... def my_net(pretrained: bool = False, **kwargs): ...
    """

    def decorator(builder: Callable[..., Backbone]) -> Callable[..., Backbone]:
        _REGISTRY[name] = ModelEntry(name, backend, output_dim, weights, builder)
        return builder

    return decorator


def _ensure_loaded() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in _BACKEND_MODULES:
            import_module(module)


def list_models(pattern: str = "*") -> list[ModelEntry]:
    """Registered models whose name matches ``pattern`` (fnmatch), sorted by name.

    Any timm model name works too (``build_backbone("timm:convnext_atto")`` or just its timm name);
    those are not listed one by one.

    Example:
        >>> [m.name for m in list_models("resnet*")][:2]
        ['resnet101', 'resnet152']
    """
    _ensure_loaded()
    return [entry for name, entry in sorted(_REGISTRY.items()) if fnmatch.fnmatch(name, pattern)]


def get_entry(name: str) -> ModelEntry | None:
    """The registry entry for ``name``, or None."""
    _ensure_loaded()
    return _REGISTRY.get(name)


def unknown_model_error(name: str, extra_names: list[str] = ()) -> ValueError:
    """A ValueError for an unknown model name that lists the closest known names."""
    _ensure_loaded()
    candidates = list(_REGISTRY) + list(extra_names)
    close = difflib.get_close_matches(name, candidates, n=5, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return ValueError(
        f"Unknown model {name!r}.{hint} Run `finetuner list-models` (or finetuner.list_models()) for registered "
        "names; any timm model name works as 'timm:<name>'; a local folder (saved by run.save(), a Hugging Face "
        "or sentence-transformers folder) or an nn.Module instance works too."
    )
