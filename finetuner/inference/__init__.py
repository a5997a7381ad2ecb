"""Inference: batched outputs over raw items (the one code path behind `encode`, the feature cache and
evaluation) and the engine that runs frozen work in onnxruntime when it reproduces PyTorch."""

from finetuner.inference.batched import batched_outputs
from finetuner.inference.engine import (
    ENGINES,
    NotTraceableError,
    OnnxFunction,
    check_engine,
    frozen_function,
    planned_engine,
)

__all__ = [
    "ENGINES",
    "NotTraceableError",
    "OnnxFunction",
    "batched_outputs",
    "check_engine",
    "frozen_function",
    "planned_engine",
]
