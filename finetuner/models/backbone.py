"""`Backbone`: a built network together with its preprocessing and the recipe to rebuild it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from finetuner.models.backend import Backend, get_backend


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
