"""Losses on (query, document) embedding pairs: in-batch negatives, scored pairs, and CLIP's symmetric loss.

Each loss gathers embeddings across DDP ranks itself (``gathers_itself``): every rank scores its own rows
against the documents of all ranks, so the negatives are global and the gradient is exact.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` from every DDP rank along dim 0, keeping the gradient to each rank's part.

    In a single process (or without ``torch.distributed``) it returns ``tensor`` itself.

    Example:
        >>> x = torch.randn(4, 8)
        >>> gather_with_grad(x) is x
        True
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(tensor), dim=0)


def _offset() -> int:
    """Rank of this process: its rows sit at ``rank * batch_size`` in gathered tensors."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _check_pairs(query: torch.Tensor, document: torch.Tensor) -> None:
    if query.ndim != 2 or query.shape != document.shape:
        raise ValueError(
            f"expected query and document embeddings of the same (B, D) shape, got "
            f"{tuple(query.shape)} and {tuple(document.shape)}"
        )


def _ranking_loss(rows: torch.Tensor, columns: torch.Tensor, scale: float | torch.Tensor) -> torch.Tensor:
    """Cross-entropy of cosine similarities: row ``i`` of this rank must pick column ``rank * B + i``."""
    logits = scale * F.normalize(rows, dim=-1) @ F.normalize(columns, dim=-1).T
    targets = torch.arange(len(rows), device=rows.device) + _offset() * len(rows)
    return F.cross_entropy(logits, targets)


class MultipleNegativesRankingLoss(nn.Module):
    """In-batch negatives (InfoNCE): each query must rank its own document above every other document.

    Scores are ``scale * cos(query, document)``; the other documents of the batch (of all ranks under DDP), and
    optional hard negatives, are the negatives.

    Args:
        scale: inverse temperature applied to cosine similarities.
        symmetric: also make each document rank its own query above the other queries, and average.

    Example:
        >>> loss = MultipleNegativesRankingLoss()
        >>> loss(torch.randn(4, 8), torch.randn(4, 8), negatives=torch.randn(4, 8)).ndim
        0
    """

    takes_pairs = True
    gathers_itself = True

    def __init__(self, scale: float = 20.0, symmetric: bool = False) -> None:
        super().__init__()
        self.scale = scale
        self.symmetric = symmetric

    def forward(
        self,
        query: torch.Tensor,
        document: torch.Tensor,
        scores: torch.Tensor | None = None,
        *,
        negatives: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The mean cross-entropy of each query's scores over all candidate documents.

        Args:
            query: ``(B, D)`` query embeddings.
            document: ``(B, D)`` embeddings of each query's relevant document.
            scores: pair scores, not used: every given pair counts as relevant (the trainer passes the
                batch's scores, or None, to every pair loss).
            negatives: ``(N, D)`` embeddings of extra non-relevant documents (hard negatives), or None.
        """
        _check_pairs(query, document)
        documents = gather_with_grad(document)
        if negatives is not None:
            documents = torch.cat([documents, gather_with_grad(negatives)])
        loss = _ranking_loss(query, documents, self.scale)
        if self.symmetric:
            loss = (loss + _ranking_loss(document, gather_with_grad(query), self.scale)) / 2
        return loss


class CosineSimilarityLoss(nn.Module):
    """Scored pairs: the mean squared error between ``cos(query, document)`` and the pair's score.

    Example:
        >>> loss = CosineSimilarityLoss()
        >>> float(loss(torch.ones(2, 4), torch.ones(2, 4), torch.tensor([1.0, 1.0])))
        0.0
    """

    takes_pairs = True
    gathers_itself = True  # each pair stands alone: nothing to gather

    def forward(self, query: torch.Tensor, document: torch.Tensor, scores: torch.Tensor | None = None) -> torch.Tensor:
        """The mean squared error between each pair's cosine similarity and its score.

        Args:
            query: ``(B, D)`` embeddings.
            document: ``(B, D)`` embeddings.
            scores: ``(B,)`` target similarities, usually in ``[0, 1]`` or ``[-1, 1]``.
        """
        _check_pairs(query, document)
        if scores is None:
            raise ValueError(
                "CosineSimilarityLoss learns from scored pairs: give a score per pair (a CSV with "
                "query,document,score columns), or use MultipleNegativesRankingLoss for unscored pairs"
            )
        if scores.shape != (len(query),):
            raise ValueError(f"expected one score per pair, shape ({len(query)},), got {tuple(scores.shape)}")
        cosine = F.cosine_similarity(query, document, dim=-1)
        return F.mse_loss(cosine, scores.to(cosine.dtype))


class CLIPLoss(nn.Module):
    """CLIP's symmetric contrastive loss with a learnable temperature.

    Images must pick their text among all texts and texts their image among all images; the two cross-entropies
    are averaged. The logit scale (inverse temperature) is learnt in log space and capped at ``max_scale``.

    Args:
        init_scale: initial logit scale (CLIP: ``1 / 0.07``).
        max_scale: upper bound of the logit scale (CLIP: 100).

    Example:
        >>> loss = CLIPLoss()
        >>> loss(torch.randn(4, 8), torch.randn(4, 8)).backward()
        >>> loss.log_scale.grad is not None
        True
    """

    takes_pairs = True
    gathers_itself = True

    def __init__(self, init_scale: float = 1 / 0.07, max_scale: float = 100.0) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(torch.tensor(math.log(init_scale)))
        self.max_scale = max_scale

    @property
    def scale(self) -> torch.Tensor:
        """The current logit scale."""
        return self.log_scale.exp().clamp(max=self.max_scale)

    def forward(self, image: torch.Tensor, text: torch.Tensor, scores: torch.Tensor | None = None) -> torch.Tensor:
        """The mean of the image-to-text and text-to-image cross-entropies.

        Args:
            image: ``(B, D)`` image embeddings.
            text: ``(B, D)`` embeddings of each image's text.
            scores: pair scores, not used (as in `MultipleNegativesRankingLoss`).
        """
        _check_pairs(image, text)
        scale = self.scale
        image_to_text = _ranking_loss(image, gather_with_grad(text), scale)
        text_to_image = _ranking_loss(text, gather_with_grad(image), scale)
        return (image_to_text + text_to_image) / 2
