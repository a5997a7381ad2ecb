"""Losses and miners by name: pytorch-metric-learning for labelled data, our pair losses for pairs."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from finetuner.training.loss_names import CLASSIFICATION_LOSSES, pml_names
from finetuner.training.pair_losses import (
    CachedLoss,
    MatryoshkaPairLoss,
    PairLoss,
    create_pair_loss,
    list_pair_losses,
)
from finetuner.training.pair_losses.matryoshka import check_dims, truncate, weighted_sum


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
    return sorted({*pml_names("losses"), *list_pair_losses(), *CLASSIFICATION_LOSSES})


def build_loss(
    name: str | nn.Module, *, num_classes: int | None = None, embedding_dim: int | None = None, **kwargs: Any
) -> nn.Module:
    """A loss module from its name.

    Names are pair losses (``MultipleNegativesRankingLoss``, ``InfoNCELoss``, ``CosineSimilarityLoss``,
    ``CLIPLoss``, and any `PairLoss` subclass you define), pytorch-metric-learning losses (``TripletMarginLoss``,
    ``NTXentLoss``, ``MultiSimilarityLoss``, ``ArcFaceLoss``, ``SubCenterArcFaceLoss``, ...) or
    ``CrossEntropyLoss``; `list_losses` lists them. A name means one loss only: a pair loss may not take a
    pytorch-metric-learning or classification name (defining it raises). Losses with their own weights (ArcFace,
    proxies) get ``num_classes`` and ``embedding_size`` filled in.

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
    if name not in pml_names("losses"):
        raise _unknown("loss", name, list_losses())
    from pytorch_metric_learning import losses

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
    known = list(pml_names("miners"))
    if name not in known:
        raise _unknown("miner", name, known)
    from pytorch_metric_learning import miners

    return getattr(miners, name)(**kwargs)


def is_pair_loss(loss: nn.Module) -> bool:
    """True for losses that take (query, document) embeddings instead of (embeddings, labels): `PairLoss`es."""
    return isinstance(loss, PairLoss)


def needs_two_classes(loss: nn.Module) -> bool:
    """True for metric losses that compare samples of different classes (all but classification and pairs)."""
    return not isinstance(loss, (nn.CrossEntropyLoss, PairLoss))


class MatryoshkaLoss(nn.Module):
    """A loss on labelled embeddings (pytorch-metric-learning's call) summed over truncated, renormalised
    prefixes; `MatryoshkaPairLoss` is its pair-loss twin. A miner's indices apply to every prefix.

    Args:
        loss: the metric loss, without weights of its own (not ArcFace or proxy losses).
        dims: the prefix sizes, e.g. ``(128, 32)``.
        weights: one weight per size (default 1.0 each).

    Example:
        >>> loss = MatryoshkaLoss(build_loss("TripletMarginLoss"), dims=(8, 4))
        >>> loss(torch.randn(6, 8), torch.tensor([0, 0, 1, 1, 2, 2])).ndim
        0
    """

    def __init__(self, loss: nn.Module, dims: Sequence[int], weights: Sequence[float] | None = None):
        super().__init__()
        if isinstance(loss, (nn.CrossEntropyLoss, PairLoss)) or next(loss.parameters(), None) is not None:
            raise ValueError(
                f"Matryoshka training truncates embeddings, which {type(loss).__name__} cannot take (a classifier's "
                "logits, or a loss with weights of the embedding's size): use a metric or pair loss without weights."
            )
        self.loss = loss
        self.dims, self.weights = check_dims(dims, weights)

    def forward(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor | None = None,
        indices_tuple: Any = None,
        ref_emb: torch.Tensor | None = None,
        ref_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        def loss_of(dim: int) -> torch.Tensor:
            if ref_emb is None:
                return self.loss(truncate(embeddings, dim), labels, indices_tuple)
            return self.loss(truncate(embeddings, dim), labels, indices_tuple, truncate(ref_emb, dim), ref_labels)

        return weighted_sum(loss_of, self.dims, self.weights)


def compose_loss(
    loss: nn.Module,
    *,
    matryoshka_dims: Sequence[int] | None = None,
    mini_batch_size: int | None = None,
    embedding_dim: int | None = None,
) -> nn.Module:
    """``loss`` with the training options that wrap it: Matryoshka prefixes (`MatryoshkaPairLoss` or
    `MatryoshkaLoss`; none larger than ``embedding_dim``), then gradient caching (`CachedLoss`, pair losses only).

    Example:
        >>> type(compose_loss(build_loss("InfoNCELoss"), matryoshka_dims=(8, 4), mini_batch_size=16)).__name__
        'CachedLoss'
    """
    if matryoshka_dims:
        if embedding_dim is not None and max(matryoshka_dims) > embedding_dim:
            raise ValueError(
                f"matryoshka_dims {tuple(matryoshka_dims)} asks for more than the model's {embedding_dim} dimensions: "
                f"use sizes up to {embedding_dim}."
            )
        wrapper = MatryoshkaPairLoss if is_pair_loss(loss) else MatryoshkaLoss
        loss = wrapper(loss, matryoshka_dims)
    if mini_batch_size is not None:
        if not is_pair_loss(loss):
            raise ValueError(
                f"mini_batch_size (gradient caching) is for pair losses with in-batch negatives, not "
                f"{type(loss).__name__}: use gradient_accumulation_steps to train on bigger batches."
            )
        loss = CachedLoss(loss, mini_batch_size)
    return loss
