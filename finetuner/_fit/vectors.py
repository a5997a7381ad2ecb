"""Vectors as training data: the model `fit` builds for them (the identity ``vectors:<d>``) and the default head
size (the vectors' own width)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from torch import nn

from finetuner._fit.data import FitData
from finetuner.config import FitConfig
from finetuner.data import vector_width
from finetuner.models.vectors import vectors_model


def resolve_vectors(
    model: str | Path | nn.Module | None, data: FitData, config: FitConfig
) -> tuple[str | Path | nn.Module, FitConfig]:
    """``model=None`` / ``"vectors"`` on `VectorData` / `VectorPairs`: ``"vectors:<d>"``, and without
    ``output_dim`` a head of the vectors' own width ``d`` (the identity has nothing else to train; a query-side
    adapter must land in the documents' space). Anything else comes back unchanged.

    Example:
        >>> resolve_vectors(None, data, config)[0]  # doctest: +SKIP
        'vectors:384'
    """
    model = vectors_model(model, data.train)
    width = vector_width(data.train)
    if width is not None and config.model.output_dim is None:
        config = dataclasses.replace(config, model=dataclasses.replace(config.model, output_dim=width))
    return model, config
