"""Exporters: turn an `EmbeddingModel` into files other tools load (ONNX)."""

from finetuner.export.onnx import OnnxCheckError, OnnxEncoder, export_onnx

__all__ = ["OnnxCheckError", "OnnxEncoder", "export_onnx"]
