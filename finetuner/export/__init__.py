"""Saving, loading and exporting tuned models: `EmbeddingModel` (JSON + safetensors) and ONNX."""

from finetuner.export.embedding_model import EmbeddingModel, is_saved_model

__all__ = ["EmbeddingModel", "is_saved_model"]
