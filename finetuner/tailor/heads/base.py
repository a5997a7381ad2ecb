"""`Head`: the contract every head follows, and `HEADS`, the registry its subclasses fill by being defined.

A head maps the backbone's ``(B, D)`` features to the output (embeddings or logits) and describes itself with
``config()`` (its constructor arguments, JSON), so a saved model rebuilds it by type name. Defining a subclass
registers it: ``create_head(name, ...)`` builds it by name and ``head_from_config(head.to_config())`` rebuilds it.
The built-in heads are the modules of this folder, imported on the first lookup.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from finetuner.core.registry import Registry

# class name (the "type" a saved config names) and create_head's name ("projection") -> class
HEADS: Registry[type[Head]] = Registry(
    "head",
    "finetuner.tailor.heads",
    fix="Pass a finetuner.tailor.Head instance, or define a Head subclass to add a head.",
)


class Head(nn.Module, ABC):
    """Base class of heads: subclass it, implement ``forward`` and ``config()``, and the head can be built by name,
    saved and loaded.

    Subclassing registers the class under its class name (the ``"type"`` of its saved config) and under
    ``name=`` when given (``class LinearHead(Head, name="linear")``), the name `create_head` takes. Heads built
    by name are called as ``cls(in_features, out_features, **options)``.

    Example:
        >>> class ScaledHead(Head, name="scaled"):
        ...     def __init__(self, in_features: int, out_features: int, scale: float = 2.0):
        ...         super().__init__()
        ...         self.linear, self.scale = nn.Linear(in_features, out_features), scale
        ...     def forward(self, x):
        ...         return self.scale * self.linear(x)
        ...     def config(self):
        ...         return {"in_features": self.linear.in_features, "out_features": self.linear.out_features,
        ...                 "scale": self.scale}
        >>> head = create_head("scaled", 8, 4, scale=3.0)
        >>> head_from_config(head.to_config()).scale
        3.0
    """

    head_name: str  # the name create_head takes, set at registration

    def __init_subclass__(cls, name: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.head_name = name or cls.__name__
        HEADS.register(cls.__name__, cls, aliases=[cls.head_name] if cls.head_name != cls.__name__ else [])

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """The constructor's keyword arguments, JSON-serialisable: ``type(head).from_config(head.config())``
        rebuilds the architecture (with new weights)."""

    def initialize(self, features: torch.Tensor) -> None:
        """Data-dependent initialisation from a sample of the training features ``(N, D)``, called by `fit` once
        before training (e.g. a linear path set from their principal components). The default does nothing."""

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Head:
        """A new head of this class from ``config()`` output (override when the constructor needs more).

        Example:
            >>> LinearHead.from_config({"in_features": 8, "out_features": 4}).linear.out_features
            4
        """
        return cls(**config)

    def to_config(self) -> dict[str, Any]:
        """``config()`` plus the registered ``"type"``: what a saved model stores, for `head_from_config`.

        Example:
            >>> LinearHead(8, 4).to_config()["type"]
            'LinearHead'
        """
        return {"type": type(self).__name__, **self.config()}


def list_heads() -> list[str]:
    """The names `create_head` takes: built-in heads and every `Head` subclass defined so far.

    Example:
        >>> {"linear", "projection", "classification"} <= set(list_heads())
        True
    """
    return sorted({cls.head_name for cls in HEADS.values()})


def check_head(head: str | nn.Module) -> None:
    """Raise a ``ValueError`` unless ``head`` is a registered head name or a `Head` instance.

    A plain ``nn.Module`` is rejected: it cannot describe itself, so the model could not be saved and loaded.

    Example:
        >>> check_head(nn.Linear(8, 4))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: The head is a plain Linear: subclass finetuner.tailor.Head and implement config() ...
    """
    if isinstance(head, str):
        HEADS.get(head)
    elif not isinstance(head, Head):
        raise ValueError(
            f"The head is a plain {type(head).__name__}: subclass finetuner.tailor.Head and implement config() "
            "(its constructor arguments as JSON) so the model can be saved and loaded; or pass a head name "
            f"({', '.join(list_heads())})."
        )


def create_head(name: str | Head, in_features: int, out_features: int, **options: Any) -> Head:
    """A new head by name: ``cls(in_features, out_features, **options)``; a `Head` instance is returned as is.

    Args:
        name: a name from `list_heads` (``"projection"``, ``"linear"``, ``"classification"``, or a `Head`
            subclass's name), or a `Head`.
        in_features: size of the backbone's features.
        out_features: size of the output (embedding size, or number of classes).
        **options: the head's other arguments (``normalize=True``, ``num_layers=2``, ...).

    Raises:
        ValueError: an unknown name, or a module that is not a `Head`.

    Example:
        >>> create_head("linear", 512, 128).to_config()["type"]
        'LinearHead'
    """
    check_head(name)
    if isinstance(name, Head):
        return name
    return HEADS.get(name)(in_features, out_features, **options)


def head_from_config(config: Mapping[str, Any]) -> Head:
    """Rebuild a head (new weights) from its ``to_config()``; load its ``state_dict`` afterwards.

    Raises:
        ValueError: the ``"type"`` names no registered head (define or import its class first).

    Example:
        >>> head_from_config({"type": "LinearHead", "in_features": 8, "out_features": 4}).linear.in_features
        8
    """
    kwargs = dict(config)
    kind = kwargs.pop("type", None)
    cls = HEADS.find(kind)
    if cls is None or cls.__name__ != kind:
        known = sorted({cls.__name__ for cls in HEADS.values()})
        raise ValueError(
            f"Unknown head type {kind!r}; known: {known}. A custom head must be defined (its module "
            "imported) before the model that uses it is loaded."
        )
    return cls.from_config(kwargs)
