"""Vectors as training data: the model `fit` builds for them (the identity ``vectors:<d>``) and the head size a
query-side adapter needs (the vectors' own width)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from torch import nn

from finetuner._fit.data import FitData
from finetuner.config import FitConfig
from finetuner.data import vector_width
from finetuner.models.vectors import vectors_model


def resolve_vectors(
    model: str | Path | nn.Module | None, data: FitData, config: FitConfig
) -> tuple[str | Path | nn.Module, FitConfig]:
    """``model=None`` / ``"vectors"`` on `VectorData` / `VectorPairs`: ``"vectors:<d>"``; with ``adapter="query"``
    and no ``output_dim``, the head keeps the width ``d`` (queries land in the documents' space). Anything else
    comes back unchanged.

    Example:
        >>> resolve_vectors(None, data, config)[0]  # doctest: +SKIP
        'vectors:384'
    """
    model = vectors_model(model, data.train)
    width = vector_width(data.train)
    if width is not None and config.model.adapter == "query" and config.model.output_dim is None:
        config = dataclasses.replace(config, model=dataclasses.replace(config.model, output_dim=width))
    return model, config
