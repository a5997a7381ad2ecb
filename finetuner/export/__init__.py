"""Saving, loading and exporting tuned models: `EmbeddingModel` (JSON + safetensors) and ONNX."""

from finetuner.export.embedding_model import EmbeddingModel, is_saved_model
from finetuner.export.onnx import OnnxCheckError, OnnxEncoder, export_onnx

__all__ = ["EmbeddingModel", "OnnxCheckError", "OnnxEncoder", "export_onnx", "is_saved_model"]
