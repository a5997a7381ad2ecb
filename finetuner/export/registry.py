"""The export formats: one module per format in this folder, each registering its function
``export(model, path, **options) -> Path`` with ``@register_exporter("name")``.

Adding a format is one module here plus its test: `FORMATS` imports every module of the folder on its first lookup
(the exporters import their heavy libraries inside the function).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finetuner.core.registry import Registry

if TYPE_CHECKING:  # export/ sits below model.py: exporters get the model object, never import the class
    from finetuner.model import EmbeddingModel

Exporter = Callable[..., Path]

# format name -> exporter (``"onnx" in FORMATS``, ``sorted(FORMATS)``); what each writes is in its docstring
FORMATS: Registry[Exporter] = Registry(
    "export format", "finetuner.export", fix="Add one with @finetuner.export.register_exporter(name)."
)


def register_exporter(name: str) -> Callable[[Exporter], Exporter]:
    """Decorator that registers ``export(model, path, **options) -> Path`` as export format ``name``.

    Example:
        >>> @register_exporter("state-dict")
        ... def export_state_dict(model, path: Path) -> Path:
        ...     torch.save(model.state_dict(), path)
        ...     return path  # doctest: +SKIP
    """
    return FORMATS.register(name)


def export_model(
    model: EmbeddingModel, path: str | Path, format: str = "onnx", *, overwrite: bool = False, **options: Any
) -> Path:
    """Write ``model`` to ``path`` in ``format`` (see `FORMATS`); ``options`` go to that format's exporter.

    Args:
        model: the model to export, on the CPU with LoRA adapters merged (``EmbeddingModel.export`` sees to that).
        path: a file (``onnx``, ``onnx-int8``) or a folder (``sentence-transformers``, ``timm``).
        format: one of `FORMATS`.
        overwrite: replace a file already at ``path`` (without it an existing file is refused, so a folder format
            never replaces a file the user owns with a folder).
        **options: the exporter's options, e.g. ``normalize=False`` for ``onnx``.

    Returns:
        ``path`` as a `Path`.

    Raises:
        ValueError: an unknown format, a model the format cannot represent exactly (the message says why), a file
            at ``path`` without ``overwrite``, or a folder at ``path`` for a format that writes one file.

    Example:
        >>> export_model(model, "out/model.onnx", format="onnx")  # doctest: +SKIP
        PosixPath('out/model.onnx')
    """
    exporter, path = FORMATS.get(format), Path(path)
    if path.is_file() and not overwrite:
        raise ValueError(f"{path} is an existing file: pass overwrite=True (CLI: --overwrite) to replace it.")
    try:
        return exporter(model, path, **options)
    except IsADirectoryError:
        raise ValueError(f"{path} is a folder: format {format!r} writes one file; give a file path.") from None
