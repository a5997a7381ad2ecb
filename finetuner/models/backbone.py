"""`Backbone`: a built network together with its preprocessing and the recipe to rebuild it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn


@dataclass
class Backbone:
    """A network ready for Tailor.

    Attributes:
        module: the network, with pretrained weights when asked for.
        preprocessing: turns raw items into inputs (`ImagePreprocessing` or `TextPreprocessing`).
        spec: JSON recipe that rebuilds the same architecture without weights (see `rebuild_backbone`).
        example_input: a batch the network accepts, used to inspect and chop it.
        classifier: dotted name of the original classification layer, if the network has one.
    """

    module: nn.Module
    preprocessing: Any
    spec: dict[str, Any]
    example_input: Any = None
    classifier: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)
