"""The head as a self-contained file for exported folders: ``finetuner_head.py`` (plain PyTorch, the text of
``_standalone_head.py``) with ``head.json`` and ``head.safetensors`` beside it.

This module registers no format; the ``timm`` and ``sentence-transformers`` exporters use it.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from torch import nn

if TYPE_CHECKING:
    from finetuner.model import EmbeddingModel

HEAD_MODULE = "finetuner_head"  # the file name (without .py) in exported folders, and the module's name there
HEAD_CLASS = "FinetunerHead"
_SOURCE = Path(__file__).with_name("_standalone_head.py")
# the head types finetuner_head.py rebuilds
STANDALONE_TYPES = ("LinearHead", "ProjectionHead", "ResidualProjectionHead", "ClassificationHead")


def head_module() -> ModuleType:
    """``finetuner_head.py`` imported from its file, as a module named ``finetuner_head`` (what loaders see)."""
    spec = importlib.util.spec_from_file_location(HEAD_MODULE, _SOURCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def standalone_head(model: EmbeddingModel, *, normalize: bool = True, head: nn.Module | None = None) -> nn.Module:
    """A ``FinetunerHead`` holding ``head`` (default: the model's, none for a classifier's embeddings) and the
    model's ``truncate_dim``, in eval mode, with the head's weights loaded strictly.

    Raises:
        ValueError: a head type ``finetuner_head.py`` does not rebuild (a custom head); the message names the
            formats that hold any head.

    Example:
        >>> standalone_head(model)(features).shape  # doctest: +SKIP
        torch.Size([4, 32])
    """
    if head is None and model.task != "classification":
        head = model.head
    config = head.to_config() if hasattr(head, "to_config") else None
    if head is not None and (config is None or config.get("type") not in STANDALONE_TYPES):
        raise ValueError(
            f"The {type(head).__name__} head has no plain-PyTorch twin in {HEAD_MODULE}.py (it rebuilds "
            f"{', '.join(STANDALONE_TYPES)}), so this format cannot carry it. Use format='onnx' (any head), or "
            "one of those heads."
        )
    truncate = model.truncate_dim if model.task != "classification" or head is None else None
    standalone = getattr(head_module(), HEAD_CLASS)(config, truncate_dim=truncate, normalize=normalize)
    if head is not None:
        standalone.core.load_state_dict(head.state_dict(), strict=True)
    return standalone.eval()


def copy_head_module(folder: Path) -> Path:
    """Copy ``finetuner_head.py`` into ``folder``."""
    target = Path(folder) / f"{HEAD_MODULE}.py"
    shutil.copyfile(_SOURCE, target)
    return target
