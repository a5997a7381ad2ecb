"""Losses and miners by name: pytorch-metric-learning for labelled data, our pair losses for pairs."""

from __future__ import annotations

import difflib
import inspect
from typing import Any

from torch import nn

PAIR_LOSSES = ("MultipleNegativesRankingLoss", "InfoNCELoss", "CosineSimilarityLoss", "CLIPLoss")
CLASSIFICATION_LOSSES = ("CrossEntropyLoss",)


def _pml_names(module: Any, suffix: str) -> list[str]:
    return sorted(n for n in dir(module) if n.endswith(suffix) and not n.startswith(("Base", "Generic")))


def _unknown(kind: str, name: str, known: list[str]) -> ValueError:
    close = difflib.get_close_matches(name, known, n=4, cutoff=0.4)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return ValueError(f"Unknown {kind} {name!r}.{hint} Known: {', '.join(known)}.")


def build_loss(
    name: str | nn.Module, *, num_classes: int | None = None, embedding_dim: int | None = None, **kwargs: Any
) -> nn.Module:
    """A loss module from its name.

    Names are pytorch-metric-learning losses (``TripletMarginLoss``, ``NTXentLoss``, ``MultiSimilarityLoss``,
    ``ArcFaceLoss``, ``SubCenterArcFaceLoss``, ...), pair losses (``MultipleNegativesRankingLoss``,
    ``InfoNCELoss``, ``CosineSimilarityLoss``, ``CLIPLoss``) or ``CrossEntropyLoss``. Losses with their own
    weights (ArcFace, proxies) get ``num_classes`` and ``embedding_size`` filled in.

    Example:
        >>> loss = build_loss("ArcFaceLoss", num_classes=10, embedding_dim=128)
        >>> sum(p.numel() for p in loss.parameters())
        1280
    """
    if isinstance(name, nn.Module):
        return name
    if name in CLASSIFICATION_LOSSES:
        return nn.CrossEntropyLoss(**kwargs)
    if name in PAIR_LOSSES:
        from finetuner.training import pair_losses

        cls = pair_losses.MultipleNegativesRankingLoss if name == "InfoNCELoss" else getattr(pair_losses, name)
        return cls(**kwargs)
    from pytorch_metric_learning import losses

    known = _pml_names(losses, "Loss")
    if name not in known:
        raise _unknown("loss", name, known + list(PAIR_LOSSES) + list(CLASSIFICATION_LOSSES))
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
    """True for losses that take (query, document) embeddings instead of (embeddings, labels)."""
    return type(loss).__name__ in PAIR_LOSSES or getattr(loss, "takes_pairs", False)


def needs_two_classes(loss: nn.Module) -> bool:
    """True for metric losses that compare samples of different classes (all but classification and pairs)."""
    return not isinstance(loss, nn.CrossEntropyLoss) and not is_pair_loss(loss)
