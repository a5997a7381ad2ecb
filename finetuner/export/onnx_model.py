"""The ``onnx`` export format: one self-contained ``.onnx`` file that encodes raw items with `OnnxEncoder`.

The graph computes what ``model.encode`` returns (the features for a classifier), ending with L2 normalisation
unless ``normalize=False``. The preprocessing (image size, resize, crop, mean/std; or the tokenizer with its
truncation and padding) is stored in the file's ``metadata_props`` and in ``<path>.json`` beside it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from finetuner.export.onnx import export_onnx
from finetuner.export.onnx_encoder import NORMALIZED_KEY, PREPROCESSING_KEY
from finetuner.export.onnx_preprocessing import text_tokenizer_json
from finetuner.export.registry import register_exporter

if TYPE_CHECKING:
    from finetuner.model import EmbeddingModel


@register_exporter("onnx")
def export_onnx_model(
    model: EmbeddingModel,
    path: Path,
    *,
    normalize: bool = True,
    opset: int | None = None,
    atol: float = 1e-4,
) -> Path:
    """Write ``model`` as an ONNX file that carries its preprocessing, checked against PyTorch with onnxruntime.

    Args:
        model: an image or text `EmbeddingModel`.
        path: the ``.onnx`` file; ``<path>.json`` (the preprocessing) is written beside it.
        normalize: end the graph with L2 normalisation, as ``model.encode`` does; ``False`` keeps raw outputs.
        opset: ONNX opset; ``None`` for the exporter's default.
        atol: the largest difference from PyTorch the check accepts.

    Returns:
        ``path``.

    Raises:
        ValueError: a model without image or text preprocessing (CLIP, custom inputs).

    Example:
        >>> model.export("out/model.onnx", format="onnx")  # doctest: +SKIP
        >>> OnnxEncoder("out/model.onnx").encode(["shoe.png"])  # doctest: +SKIP
    """
    description = preprocessing_description(model)
    graph = EncodeGraph(model, normalize=normalize)
    metadata = {
        PREPROCESSING_KEY: json.dumps(description),
        NORMALIZED_KEY: "true" if normalize else "false",
        "finetuner.task": model.task,
    }
    export_onnx(graph, model.example_input(), path, opset=opset, atol=atol, metadata=metadata)
    sidecar = path.with_name(path.name + ".json")
    sidecar.write_text(json.dumps({"preprocessing": description, "normalized": normalize}, indent=2))
    return path


class EncodeGraph(nn.Module):
    """What the exported graph computes: ``model.encode`` on preprocessed inputs, before conversion to numpy."""

    def __init__(self, model: EmbeddingModel, normalize: bool = True) -> None:
        super().__init__()
        self.model = model
        self.normalize = normalize

    def forward(self, inputs: Any) -> torch.Tensor:
        vectors = self.model.features(inputs) if self.model.task == "classification" else self.model(inputs)
        return F.normalize(vectors, dim=1) if self.normalize else vectors


def preprocessing_description(model: EmbeddingModel) -> dict[str, Any]:
    """The preprocessing `OnnxEncoder` needs, as JSON: the image settings, or the tokenizer and ``max_length``."""
    kind = getattr(model.preprocessing, "kind", None)
    if kind in ("image", "vectors"):  # vectors: the graph takes the (B, d) vectors themselves
        return model.preprocessing.to_config()
    if kind == "text":
        tokenizer = json.loads(text_tokenizer_json(model.preprocessing))
        return {**model.preprocessing.to_config(), "tokenizer": tokenizer}
    raise ValueError(
        f"The onnx format needs an image or text model (or given vectors); this one has preprocessing kind {kind!r}. "
        "For CLIP, export each tower with finetuner.export.export_onnx(module, example_input, path)."
    )
