"""Matryoshka representation learning (Kusupati et al., 2022): the loss summed over prefixes of the embedding,
so its first ``d`` dimensions are an embedding of their own (``encode(truncate_dim=d)``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from finetuner.training.pair_losses.base import PairLoss, create_pair_loss


def check_dims(
    dims: Sequence[int], weights: Sequence[float] | None = None
) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """``(dims, weights)`` checked: positive sizes, one weight each (default 1.0).

    Example:
        >>> check_dims([64, 16])
        ((64, 16), (1.0, 1.0))
    """
    dims = tuple(dims)
    if not dims or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dims):
        raise ValueError(f"Matryoshka dims must be positive embedding sizes such as (256, 64), got {dims!r}.")
    weights = tuple(float(w) for w in weights) if weights is not None else (1.0,) * len(dims)
    if len(weights) != len(dims):
        raise ValueError(f"Give one Matryoshka weight per dim: {len(dims)} dims, {len(weights)} weights.")
    return dims, weights


def truncate(embeddings: torch.Tensor | None, dim: int) -> torch.Tensor | None:
    """The first ``dim`` dimensions of each row, L2-normalised again (None stays None).

    Example:
        >>> truncate(torch.tensor([[3.0, 4.0, 12.0]]), 2)
        tensor([[0.6000, 0.8000]])
    """
    if embeddings is None:
        return None
    if dim > embeddings.shape[-1]:
        raise ValueError(
            f"matryoshka_dims asks for {dim} dimensions of {embeddings.shape[-1]}-d embeddings: use sizes up to "
            f"{embeddings.shape[-1]} (the output_dim)."
        )
    return F.normalize(embeddings[..., :dim], dim=-1)


def weighted_sum(
    loss_of: Callable[[int], torch.Tensor], dims: Sequence[int], weights: Sequence[float]
) -> torch.Tensor:
    """``sum(weight * loss_of(dim))`` over the Matryoshka dims."""
    return sum(weight * loss_of(dim) for dim, weight in zip(dims, weights))


class MatryoshkaPairLoss(PairLoss):
    """A pair loss summed over truncated, renormalised prefixes of the embeddings.

    Args:
        loss: the pair loss (or its name; ``loss_options`` go to its constructor).
        dims: the prefix sizes, e.g. ``(768, 256, 64)``; each at most the embedding size.
        weights: one weight per size (default 1.0 each).

    Example:
        >>> loss = MatryoshkaPairLoss("MultipleNegativesRankingLoss", dims=(8, 4))
        >>> loss(torch.randn(4, 8), torch.randn(4, 8)).ndim
        0
    """

    def __init__(
        self,
        loss: PairLoss | str = "MultipleNegativesRankingLoss",
        dims: Sequence[int] = (),
        weights: Sequence[float] | None = None,
        **loss_options: Any,
    ):
        super().__init__()
        self.loss = create_pair_loss(loss, **loss_options) if isinstance(loss, str) else loss
        if not isinstance(self.loss, PairLoss):
            name = type(self.loss).__name__
            raise ValueError(f"MatryoshkaPairLoss wraps a pair loss, not {name}: use MatryoshkaLoss for it.")
        self.dims, self.weights = check_dims(dims, weights)
        self.uses_scores, self.uses_negatives = self.loss.uses_scores, self.loss.uses_negatives

    def compute_loss(
        self,
        query_embeddings: torch.Tensor,
        document_embeddings: torch.Tensor,
        scores: torch.Tensor | None,
        negatives: torch.Tensor | None,
    ) -> torch.Tensor:
        """The weighted sum of the wrapped loss on each prefix."""

        def loss_of(dim: int) -> torch.Tensor:
            return self.loss(
                truncate(query_embeddings, dim), truncate(document_embeddings, dim), scores, truncate(negatives, dim)
            )

        return weighted_sum(loss_of, self.dims, self.weights)
