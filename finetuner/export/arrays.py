"""``arrays``: a linear adapter on given vectors as plain arrays, ``y = x @ weight.T + bias``, for any tool."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from finetuner.core.files import atomic_folder
from finetuner.export.registry import register_exporter

if TYPE_CHECKING:
    from finetuner.model import EmbeddingModel

WEIGHT_FILE, BIAS_FILE, SAFETENSORS_FILE, INFO_FILE = "weight.npy", "bias.npy", "adapter.safetensors", "adapter.json"


def linear_map(model: EmbeddingModel, *, atol: float = 1e-4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(weight (out, d), bias (out,))`` with ``model(x) == x @ weight.T + bias`` for the model's ``d``-dimensional
    inputs, read off the model (its value at 0 and at the unit vectors) and checked on random vectors.

    Raises:
        ValueError: the model does not take vectors (`finetuner.data.VectorData`), or is not linear in them (an
            MLP or normalising head): export it as ONNX instead.

    Example:
        >>> weight, bias = linear_map(finetuner.build_model("vectors:8", output_dim=4, head="linear"))
        >>> weight.shape, bias.shape
        ((4, 8), (4,))
    """
    if getattr(model.preprocessing, "kind", None) != "vectors":
        raise ValueError(
            "The arrays format holds an adapter on given vectors: fit on finetuner.data.VectorData / VectorPairs "
            "(model 'vectors:<d>'). Export this model with format='onnx'."
        )
    dim = model.preprocessing.dim
    fn = model.features if model.task == "classification" else model
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            basis = torch.cat([torch.zeros(1, dim), torch.eye(dim)]).double()
            values = fn(basis.float()).double()
            bias, weight = values[0], (values[1:] - values[0]).T
            probe = torch.randn(64, dim, generator=torch.Generator().manual_seed(seed)) * 3
            error = (fn(probe).double() - (probe.double() @ weight.T + bias)).abs().max().item()
    finally:
        model.train(was_training)
    scale = max(1.0, values.abs().max().item())
    if error > atol * scale:
        raise ValueError(
            f"This model is not a linear map of its vectors (off by up to {error:.3g}): its head "
            f"({type(model.head).__name__}) is not linear. Export it with format='onnx' (vector in, vector out), or "
            "fit with head='linear' (or residual_scale=0) for plain arrays."
        )
    return np.ascontiguousarray(weight.float().numpy()), np.ascontiguousarray(bias.float().numpy())


@register_exporter("arrays")
def export_arrays(model: EmbeddingModel, path: Path, **options: Any) -> Path:
    """A folder with the linear adapter ``y = x @ weight.T + bias`` as ``weight.npy`` / ``bias.npy``, the same in
    ``adapter.safetensors`` (keys ``weight``, ``bias``), and ``adapter.json`` (sizes, which side it maps, whether
    outputs are L2-normalised after it: ``encode`` normalises). A query-side adapter maps the queries; documents
    stay as they are. ``options`` go to `linear_map` (``atol``).

    Example:
        >>> model.export("out/adapter", format="arrays")  # doctest: +SKIP
        >>> w, b = np.load("out/adapter/weight.npy"), np.load("out/adapter/bias.npy")  # doctest: +SKIP
        >>> queries = vectors @ w.T + b  # doctest: +SKIP
    """
    from safetensors.numpy import save_file

    weight, bias = linear_map(model, **options)
    info = {
        "in_features": int(weight.shape[1]),
        "out_features": int(weight.shape[0]),
        "maps": "queries" if model.spec.get("adapter") == "query" else "queries and documents",
        "formula": "x @ weight.T + bias, then L2-normalise (as encode does)",
    }
    with atomic_folder(path) as staging:
        np.save(staging / WEIGHT_FILE, weight)
        np.save(staging / BIAS_FILE, bias)
        save_file({"weight": weight, "bias": bias}, str(staging / SAFETENSORS_FILE))
        (staging / INFO_FILE).write_text(json.dumps(info, indent=2))
    return path
