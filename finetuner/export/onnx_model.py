"""The ``onnx`` export format: one self-contained ``.onnx`` file that encodes raw items with `OnnxEncoder`.

The graph computes what ``model.encode`` returns (the features for a classifier, whose logits are a second output
``logits`` and whose class names are in the metadata), the first ``truncate_dim`` dimensions when the model has
one, ending with L2 normalisation unless ``normalize=False``. Before the file is kept, `OnnxEncoder` encodes real
items with it (the model's example items, or ``check_items``) and must match ``model.encode``. The preprocessing
(image size, resize, crop, mean/std; or the tokenizer with its truncation and padding) is stored in the file's
``metadata_props`` and in ``<path>.json`` beside it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from finetuner.core import staging_folder
from finetuner.export.checks import check_items as real_items
from finetuner.export.checks import max_difference
from finetuner.export.onnx import OUTPUT_NAME, export_onnx
from finetuner.export.onnx_encoder import (
    CLASSES_KEY,
    EMBEDDING_DIM_KEY,
    LOGITS_NAME,
    NORMALIZED_KEY,
    PREPROCESSING_KEY,
    OnnxEncoder,
)
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
    check_items: Sequence[Any] | str | Path | None = None,
) -> Path:
    """Write ``model`` as an ONNX file that carries its preprocessing, checked against PyTorch with onnxruntime.

    Args:
        model: an image or text `EmbeddingModel`.
        path: the ``.onnx`` file; ``<path>.json`` (the preprocessing) is written beside it.
        normalize: end the graph with L2 normalisation, as ``model.encode`` does; ``False`` keeps raw outputs.
        opset: ONNX opset; ``None`` for the exporter's default.
        atol: the largest difference from PyTorch the check accepts.
        check_items: real items (or a folder of images) that `OnnxEncoder` must encode as ``model.encode`` does,
            preprocessing included; default: the model's example items (``card_data.example_items``).

    Returns:
        ``path``.

    Raises:
        ValueError: a model without image or text preprocessing (CLIP, custom inputs), or a failed check on the
            real items (nothing is written then).

    Example:
        >>> model.export("out/model.onnx", format="onnx")  # doctest: +SKIP
        >>> OnnxEncoder("out/model.onnx").encode(["shoe.png"])  # doctest: +SKIP
    """
    description = preprocessing_description(model)
    graph = EncodeGraph(model, normalize=normalize)
    metadata = {
        PREPROCESSING_KEY: json.dumps(description),
        NORMALIZED_KEY: "true" if normalize else "false",
        EMBEDDING_DIM_KEY: str(graph.embedding_dim),
        "finetuner.task": model.task,
    }
    outputs = [OUTPUT_NAME]
    if model.task == "classification":
        metadata[CLASSES_KEY] = json.dumps(model.classes)
        outputs.append(LOGITS_NAME)
    items = real_items(model, check_items)
    with staging_folder(path) as tmp:
        staged = Path(tmp) / path.name
        export_onnx(graph, model.example_input(), staged, opset=opset, atol=atol, metadata=metadata,
                    output_names=outputs)
        if items:
            expected = model.encode(items, normalize=normalize, num_workers=0, device="cpu")
            diff = max_difference(OnnxEncoder(staged).encode(items), expected)
            if not diff <= atol:
                raise ValueError(
                    f"On {len(items)} real items the ONNX file gives vectors {diff:.3g} away from model.encode "
                    f"(atol={atol}): its preprocessing or graph differs. Nothing was written to {path}."
                )
        sidecar = {"preprocessing": description, "normalized": normalize, "embedding_dim": graph.embedding_dim}
        if model.task == "classification":
            sidecar["classes"] = model.classes
        staged.with_name(staged.name + ".json").write_text(json.dumps(sidecar, indent=2))
        if not staged.with_name(f"{path.name}.data").exists():
            path.with_name(f"{path.name}.data").unlink(missing_ok=True)  # a stale one from a bigger model
        for file in sorted(Path(tmp).iterdir(), key=lambda f: f.name != f"{path.name}.data"):  # weights first
            os.replace(file, path.with_name(file.name))
    return path


class EncodeGraph(nn.Module):
    """What the exported graph computes: ``model.encode`` on preprocessed inputs (the first ``truncate_dim``
    dimensions, then normalised), and a classifier's logits as a second output."""

    def __init__(self, model: EmbeddingModel, normalize: bool = True) -> None:
        super().__init__()
        self.model = model
        self.normalize = normalize
        self.truncate_dim = model.truncate_dim
        self.embedding_dim = min(model.embedding_dim(), self.truncate_dim or model.embedding_dim())

    def forward(self, inputs: Any) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if self.model.task == "classification":
            features = self.model.features(inputs)
            return self._embeddings(features), self.model.head(features)
        return self._embeddings(self.model(inputs))

    def _embeddings(self, vectors: torch.Tensor) -> torch.Tensor:
        if self.truncate_dim is not None:
            vectors = vectors[:, : self.truncate_dim]
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
