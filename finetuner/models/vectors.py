"""The ``vectors`` backend: the identity on ``d``-dimensional vectors given as data (`finetuner.data.VectorData`),
so that `fit` trains an adapter head on embeddings computed elsewhere, as on a frozen backbone's features.

``"vectors:<d>"`` builds it (``fit`` writes the name itself for ``model=None`` or ``"vectors"``); a saved model
rebuilds it from ``{"source": "vectors", "dim": d}`` and reads rows of its width.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from finetuner.models.backend import Backbone, Backend, register_backend


class VectorInputs(nn.Module):
    """The identity on ``(B, dim)`` float vectors: what a backbone is when the data are its outputs already.

    Example:
        >>> VectorInputs(3)(torch.ones(2, 3)).shape
        torch.Size([2, 3])
    """

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, vectors: torch.Tensor) -> torch.Tensor:
        return vectors.float()  # the preprocessing checked the width of every row

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


def build_vectors(dim: int) -> Backbone:
    """The identity backbone on ``dim``-dimensional vectors, with its ``vectors`` preprocessing.

    Example:
        >>> build_vectors(8).spec
        {'source': 'vectors', 'dim': 8}
    """
    from finetuner.data.preprocessing.vectors import VectorPreprocessing

    return Backbone(
        module=VectorInputs(dim),
        preprocessing=VectorPreprocessing(dim),
        spec={"source": "vectors", "dim": dim},
        example_input=torch.randn(2, dim),
    )


class VectorsBackend(Backend):
    """Given vectors: ``vectors:<d>`` is the identity on ``d``-dimensional rows (nothing to train or download)."""

    name = "vectors"
    prefix = "vectors:"
    pools_itself = True

    def matches(self, name: str) -> bool:
        return name == "vectors"

    def create(self, name: str, pretrained: bool = True, **kwargs: Any) -> Backbone:
        if kwargs:
            raise ValueError(f"the vectors backend takes no model options, got {sorted(kwargs)}.")
        if not name.isdigit() or int(name) < 1:
            raise ValueError(
                f"'vectors:{name}' names no width: write 'vectors:<d>' (e.g. 'vectors:384'), or pass model=None "
                "with VectorData / VectorPairs as train_data, and fit reads d from the data."
            )
        return build_vectors(int(name))

    def rebuild(self, spec: dict[str, Any], folder: str | Path | None = None) -> nn.Module:
        return VectorInputs(int(spec["dim"]))


VECTORS = register_backend(VectorsBackend())


def vectors_model(model: Any, data: Any) -> Any:
    """The model `fit` builds for ``model``: ``"vectors:<d>"`` for None or ``"vectors"`` (``d`` read from
    ``data``, a `VectorData` / `VectorPairs` or their subsets), else ``model`` unchanged.

    Raises:
        ValueError: ``model`` is None or ``"vectors"`` but ``data`` holds no vectors.

    Example:
        >>> from finetuner.data import VectorData
        >>> vectors_model(None, VectorData(torch.zeros(4, 16), [0, 1, 0, 1]))
        'vectors:16'
    """
    from finetuner.data.vectors import vector_width

    if model is not None and model != "vectors":
        return model
    width = vector_width(data)
    if width is None:
        raise ValueError(
            "fit needs a model unless its training data are vectors: pass model='resnet18' (or any name), or "
            "train_data=finetuner.data.VectorData(vectors, labels) / VectorPairs(queries, documents)."
        )
    return f"vectors:{width}"
