"""Exporters: turn an `EmbeddingModel` into files other tools load (ONNX, sentence-transformers, timm), and
`OnnxEncoder` to run an exported ONNX file without PyTorch.

Only `OnnxEncoder` and `ModelCardData` load eagerly (numpy and onnxruntime, no torch), so
``from finetuner.export import OnnxEncoder`` works where PyTorch is not installed.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from finetuner.card import ModelCardData
from finetuner.export.onnx_encoder import OnnxEncoder

_LAZY = {
    "export_onnx": "finetuner.export.onnx",
    "OnnxCheckError": "finetuner.export.onnx",
    "FORMATS": "finetuner.export.registry",
    "export_model": "finetuner.export.registry",
    "register_exporter": "finetuner.export.registry",
}

__all__ = [
    "FORMATS",
    "ModelCardData",
    "OnnxCheckError",
    "OnnxEncoder",
    "export_model",
    "export_onnx",
    "register_exporter",
]

if TYPE_CHECKING:  # pragma: no cover
    from finetuner.export.onnx import OnnxCheckError, export_onnx
    from finetuner.export.registry import FORMATS, export_model, register_exporter


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'finetuner.export' has no attribute {name!r}")
    value = getattr(import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
