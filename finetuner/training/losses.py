"""Losses and miners by name: pytorch-metric-learning for labelled data, our pair losses for pairs."""

from __future__ import annotations

import difflib
import inspect
from typing import Any

from torch import nn

from finetuner.training.pair_losses import PairLoss, create_pair_loss, list_pair_losses

CLASSIFICATION_LOSSES = ("CrossEntropyLoss",)


def _pml_names(module: Any, suffix: str) -> list[str]:
    return sorted(n for n in dir(module) if n.endswith(suffix) and not n.startswith(("Base", "Generic")))


def _unknown(kind: str, name: str, known: list[str]) -> ValueError:
    close = difflib.get_close_matches(name, known, n=4, cutoff=0.4)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return ValueError(f"Unknown {kind} {name!r}.{hint} Known: {', '.join(known)}.")


def list_losses() -> list[str]:
    """Every name `build_loss` takes: pytorch-metric-learning's losses, every `PairLoss` subclass defined so far
    (aliases included) and ``CrossEntropyLoss``.

    Example:
        >>> {"TripletMarginLoss", "MultipleNegativesRankingLoss", "CrossEntropyLoss"} <= set(list_losses())
        True
    """
    from pytorch_metric_learning import losses

    return sorted({*_pml_names(losses, "Loss"), *list_pair_losses(), *CLASSIFICATION_LOSSES})


def build_loss(
    name: str | nn.Module, *, num_classes: int | None = None, embedding_dim: int | None = None, **kwargs: Any
) -> nn.Module:
    """A loss module from its name.

    Names are pair losses (``MultipleNegativesRankingLoss``, ``InfoNCELoss``, ``CosineSimilarityLoss``,
    ``CLIPLoss``, and any `PairLoss` subclass you define), pytorch-metric-learning losses (``TripletMarginLoss``,
    ``NTXentLoss``, ``MultiSimilarityLoss``, ``ArcFaceLoss``, ``SubCenterArcFaceLoss``, ...) or
    ``CrossEntropyLoss``; `list_losses` lists them. Losses with their own weights (ArcFace, proxies) get
    ``num_classes`` and ``embedding_size`` filled in.

    Example:
        >>> loss = build_loss("ArcFaceLoss", num_classes=10, embedding_dim=128)
        >>> sum(p.numel() for p in loss.parameters())
        1280
    """
    if isinstance(name, nn.Module):
        return name
    if name in CLASSIFICATION_LOSSES:
        return nn.CrossEntropyLoss(**kwargs)
    if name in list_pair_losses():
        return create_pair_loss(name, **kwargs)
    from pytorch_metric_learning import losses

    if name not in _pml_names(losses, "Loss"):
        raise _unknown("loss", name, list_losses())
    cls = getattr(losses, name)
    parameters = inspect.signature(cls.__init__).parameters
    if "num_classes" in parameters or name == "SubCenterArcFaceLoss":
        if num_classes is None or embedding_dim is None:
            raise ValueError(f"{name} learns one weight vector per class: it needs num_classes and embedding_dim.")
        kwargs = {"num_classes": num_classes, "embedding_size": embedding_dim, **kwargs}
    return cls(**kwargs)


def build_miner(name: str | nn.Module | None, **kwargs: Any) -> nn.Module | None:
    """A pytorch-metric-learning miner from its name, or None.

    Example:
        >>> build_miner("MultiSimilarityMiner", epsilon=0.1).__class__.__name__
        'MultiSimilarityMiner'
    """
    if name is None or isinstance(name, nn.Module):
        return name
    from pytorch_metric_learning import miners

    known = _pml_names(miners, "Miner")
    if name not in known:
        raise _unknown("miner", name, known)
    return getattr(miners, name)(**kwargs)


def is_pair_loss(loss: nn.Module) -> bool:
    """True for losses that take (query, document) embeddings instead of (embeddings, labels): `PairLoss`es."""
    return isinstance(loss, PairLoss)


def needs_two_classes(loss: nn.Module) -> bool:
    """True for metric losses that compare samples of different classes (all but classification and pairs)."""
    return not isinstance(loss, (nn.CrossEntropyLoss, PairLoss))
