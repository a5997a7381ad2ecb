"""The export formats: one module per format, each with one function ``export(model, path, **options) -> Path``.

Adding a format is one module in this folder (its function takes the `EmbeddingModel` and the destination) plus one
line in `FORMATS`; the modules are imported only when their format is used.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # export/ sits below model.py: exporters get the model object, never import the class
    from finetuner.model import EmbeddingModel

# format name -> "module:function"; what each writes is in the function's docstring
FORMATS = {
    "onnx": "finetuner.export.onnx_model:export_onnx_model",
    "onnx-int8": "finetuner.export.onnx_int8:export_onnx_int8",
    "sentence-transformers": "finetuner.export.st_folder:export_sentence_transformers",
    "timm": "finetuner.export.timm_folder:export_timm",
}


def export_model(model: EmbeddingModel, path: str | Path, format: str = "onnx", **options: Any) -> Path:
    """Write ``model`` to ``path`` in ``format`` (see `FORMATS`); ``options`` go to that format's exporter.

    Args:
        model: the model to export, on the CPU with LoRA adapters merged (``EmbeddingModel.export`` sees to that).
        path: a file (``onnx``, ``onnx-int8``) or a folder (``sentence-transformers``, ``timm``).
        format: one of `FORMATS`.
        **options: the exporter's options, e.g. ``normalize=False`` for ``onnx``.

    Returns:
        ``path`` as a `Path`.

    Raises:
        ValueError: an unknown format, or a model the format cannot represent exactly (the message says why).

    Example:
        >>> export_model(model, "out/model.onnx", format="onnx")  # doctest: +SKIP
        PosixPath('out/model.onnx')
    """
    if format not in FORMATS:
        raise ValueError(f"Unknown export format {format!r}: use one of {sorted(FORMATS)}.")
    module_name, function = FORMATS[format].split(":")
    return getattr(import_module(module_name), function)(model, Path(path), **options)
