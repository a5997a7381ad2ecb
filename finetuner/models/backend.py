"""`Backend`: one model family (timm, torchvision, Hugging Face text, CLIP, ...), registered once.

A backend knows which names it builds, how to rebuild a saved architecture from its spec, and the few policies
the API needs (does the encoder pool by itself, how a ``layer_name`` cut works, which pair loss suits it).
Adding a model family is one module in ``finetuner/models/`` that subclasses `Backend` and calls
`register_backend`; `BACKENDS` imports every module of the folder on its first lookup. A `Backbone` is what a
backend builds: the network, its preprocessing and the spec that rebuilds it.

A name resolves (`backend_for`) in this order:

1. a registered entry name (`list_models`), whatever its backend;
2. a backend's ``prefix`` (``timm:``, ``torchvision:``, ``open_clip:``, ``hf:``);
3. the first backend, by ascending ``priority``, whose `Backend.matches` accepts the name: a folder or an
   ``org/name`` is Hugging Face text (40), then any timm name (90).
"""

from __future__ import annotations

import difflib
import fnmatch
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from torch import nn

from finetuner.core.registry import Registry


@dataclass
class Backbone:
    """A network ready for Tailor.

    Attributes:
        module: the network, with pretrained weights when asked for.
        preprocessing: turns raw items into inputs (`ImagePreprocessing` or `TextPreprocessing`).
        spec: JSON recipe that rebuilds the same architecture without weights (see `rebuild_backbone`).
        example_input: a batch the network accepts, used to inspect and chop it.
        classifier: dotted name of the original classification layer, if the network has one.
        extras: what else the family provides (CLIP: ``extras["tokenizer"]``).
    """

    module: nn.Module
    preprocessing: Any
    spec: dict[str, Any]
    example_input: Any = None
    classifier: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def backend(self) -> Backend:
        """The `Backend` that built this network (from ``spec["source"]``): its policies for the API.

        Example:
            >>> build_backbone("all-MiniLM-L6-v2").backend.pools_itself
            True
        """
        return get_backend(self.spec.get("source"))


@dataclass(frozen=True)
class ModelEntry:
    """One registered model name.

    Attributes:
        name: what users pass as ``model=``.
        backend: the name of its backend (``torchvision``, ``timm``, ``hf_text``, ``clip``, ...).
        output_dim: size of the default embedding (the features feeding the original classifier).
        weights: where pretrained weights come from, in words.
        builder: ``builder(pretrained: bool, **kwargs) -> Backbone``.
    """

    name: str
    backend: str
    output_dim: int | None
    weights: str
    builder: Callable[..., Backbone]


class Backend(ABC):
    """A model family: which names it builds, how to rebuild a saved spec, and its policies for the API.

    Subclasses set ``name`` (written as ``spec["source"]`` by every `Backbone` they build) and implement
    `rebuild`; open-ended families (any timm name) also set ``prefix`` / override `matches` and `create`.

    Attributes:
        name: the backend's name, ``spec["source"]`` of its backbones.
        prefix: names starting with it always go to this backend (``"timm:"``); None: no prefix.
        priority: order among backends whose `matches` accepts a name without prefix (lower first).
        pools_itself: the encoder already returns one vector per item (text, CLIP): Tailor attaches a head
            without chopping or pooling.
        default_pair_loss: the loss `fit` uses for pair data when none is given.

    Example:
        >>> class MyBackend(Backend):
        ...     name = "mine"
        ...     def rebuild(self, spec, folder=None):
        ...         return MyNet(**spec["kwargs"])
        >>> mine = register_backend(MyBackend())
        >>> @mine.register_model("my_net", output_dim=16, weights="none")
        ... def my_net(pretrained: bool = False) -> Backbone: ...
    """

    name: ClassVar[str]
    prefix: ClassVar[str | None] = None
    priority: ClassVar[int] = 50
    pools_itself: ClassVar[bool] = False
    default_pair_loss: ClassVar[str] = "MultipleNegativesRankingLoss"

    def __init__(self) -> None:
        self._entries: dict[str, ModelEntry] = {}

    def matches(self, name: str) -> bool:
        """Whether this backend builds ``name``, a name without a known prefix that is no registered entry."""
        return False

    def build(self, name: str, pretrained: bool = True, **kwargs: Any) -> Backbone:
        """Build ``name``: one of this backend's entries, or (its prefix removed) a name for `create`.

        Example:
            >>> get_backend("timm").build("timm:resnet18", pretrained=False).spec["name"]
            'resnet18'
        """
        entry = self._entries.get(name)
        if entry is not None:
            return entry.builder(pretrained=pretrained, **kwargs)
        if self.prefix and name.startswith(self.prefix):
            name = name[len(self.prefix) :]
        return self.create(name, pretrained, **kwargs)

    def create(self, name: str, pretrained: bool = True, **kwargs: Any) -> Backbone:
        """Build a name that is not a registered entry (prefix removed); families with named entries only
        need not override it."""
        raise unknown_model_error(name)

    @abstractmethod
    def rebuild(self, spec: dict[str, Any], folder: str | Path | None = None) -> nn.Module:
        """The architecture that ``spec`` describes, with random weights (the saved state dict goes on top)."""

    def cut(self, backbone: Backbone, layer_name: str | None) -> str | None:
        """Apply what this backend does itself for a ``layer_name`` cut, in place, and return the layer name
        still to chop with Tailor (None: nothing left to chop).

        The default leaves the cut to Tailor (`finetuner.tailor.chop`, for any ``nn.Module``). Text encoders
        keep their first blocks instead; CLIP refuses.
        """
        return layer_name

    def register_model(
        self, name: str, *, output_dim: int | None, weights: str
    ) -> Callable[[Callable[..., Backbone]], Callable[..., Backbone]]:
        """Decorator that registers ``builder(pretrained=False, **kwargs) -> Backbone`` as entry ``name``.

        Example:
            >>> @get_backend("timm").register_model("my_timm_net", output_dim=1280, weights="my file")
            ... def my_timm_net(pretrained: bool = False) -> Backbone: ...
        """
        existing = get_entry(name)
        if existing is not None:
            raise ValueError(f"Model {name!r} is already registered by the {existing.backend!r} backend: rename yours.")

        def decorator(builder: Callable[..., Backbone]) -> Callable[..., Backbone]:
            self._entries[name] = ModelEntry(name, self.name, output_dim, weights, builder)
            return builder

        return decorator

    def entries(self) -> list[ModelEntry]:
        """This backend's registered names, sorted (what `list_models` shows)."""
        return [entry for _, entry in sorted(self._entries.items())]

    def names(self) -> list[str]:
        """Names this backend builds, for "did you mean" suggestions; default: its registered entries."""
        return list(self._entries)


class CustomBackend(Backend):
    """The backend of a user's own ``nn.Module``: nothing to rebuild it from, so loading needs the module."""

    name = "custom"

    def rebuild(self, spec: dict[str, Any], folder: str | Path | None = None) -> nn.Module:
        raise ValueError(
            "This model was built from a custom nn.Module (source='custom'), so its architecture cannot be "
            "rebuilt from the saved files alone: pass the same module again, "
            "e.g. finetuner.load(folder, model=my_module)."
        )


# Every module of finetuner/models/ is imported on the first lookup: the family modules register the built-in
# backends (`register_backend` at module level), so `import finetuner` stays fast and a new family is one module.
BACKENDS: Registry[Backend] = Registry("model backend", "finetuner.models", base=Backend)


def register_backend(backend: Backend) -> Backend:
    """Register ``backend`` under ``backend.name`` and return it (registering the same object again is a no-op).

    Raises:
        ValueError: another backend has this name (give yours another one, or `unregister_backend` it first).

    Example:
        >>> tiny = register_backend(TinyBackend())  # doctest: +SKIP
    """
    return BACKENDS.register(backend.name, backend)


def unregister_backend(name: str) -> None:
    """Remove the backend ``name`` and its entries (for plugins and tests that register their own).

    Example:
        >>> unregister_backend("mine")  # doctest: +SKIP
    """
    BACKENDS.unregister(name)


def list_backends() -> list[Backend]:
    """The registered backends, sorted by name.

    Example:
        >>> [backend.name for backend in list_backends()]
        ['clip', 'custom', 'hf_text', 'timm', 'torchvision']
    """
    return [BACKENDS.get(name) for name in BACKENDS.names()]


def get_backend(source: str | None) -> Backend:
    """The backend named ``source`` (a `Backbone` spec's ``"source"``).

    Example:
        >>> get_backend("clip").default_pair_loss
        'CLIPLoss'
    """
    if source not in BACKENDS:
        raise ValueError(
            f"No model backend named {source!r} is registered (known: {', '.join(BACKENDS.names())}). A model "
            "saved from another backend needs the module that registers it imported first; a custom nn.Module "
            "is passed again: finetuner.load(folder, model=my_module)."
        )
    return BACKENDS.get(source)


def backend_for(name: str) -> Backend:
    """The backend that builds model ``name``, in the order the module docstring gives.

    Raises:
        ValueError: no backend builds ``name``; the message lists the closest known names.

    Example:
        >>> backend_for("resnet18").name, backend_for("timm:resnet18").name
        ('torchvision', 'timm')
    """
    entry = get_entry(name)
    if entry is not None:
        return BACKENDS.get(entry.backend)
    for backend in BACKENDS.values():
        if backend.prefix and name.startswith(backend.prefix):
            return backend
    for backend in sorted(BACKENDS.values(), key=lambda b: (b.priority, b.name)):
        if backend.matches(name):
            return backend
    raise unknown_model_error(name)


def get_entry(name: str) -> ModelEntry | None:
    """The registered entry ``name``, or None.

    Example:
        >>> get_entry("efficientnet_lite0").backend
        'timm'
    """
    return next((backend._entries[name] for backend in BACKENDS.values() if name in backend._entries), None)


def list_models(pattern: str = "*") -> list[ModelEntry]:
    """Registered models whose name matches ``pattern`` (fnmatch), sorted by name.

    Any timm model name works too (``build_backbone("timm:convnext_atto")`` or just its timm name);
    those are not listed one by one.

    Example:
        >>> [m.name for m in list_models("resnet*")][:2]
        ['resnet101', 'resnet152']
    """
    entries = [entry for backend in BACKENDS.values() for entry in backend.entries()]
    return sorted((entry for entry in entries if fnmatch.fnmatch(entry.name, pattern)), key=lambda e: e.name)


def unknown_model_error(name: str) -> ValueError:
    """A ValueError for an unknown model name that lists the closest names any backend knows."""
    candidates = list(dict.fromkeys(known for backend in BACKENDS.values() for known in backend.names()))
    close = difflib.get_close_matches(name, candidates, n=5, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return ValueError(
        f"Unknown model {name!r}.{hint} Run `finetuner list-models` (or finetuner.list_models()) for registered "
        "names; any timm model name works as 'timm:<name>'; a local folder (saved by run.save(), a Hugging Face "
        "or sentence-transformers folder) or an nn.Module instance works too."
    )


register_backend(CustomBackend())
