"""`MultipleNegativesRankingLoss` (InfoNCE): in-batch negatives, plus optional hard negatives."""

from __future__ import annotations

import torch

from finetuner.training.pair_losses.base import PairLoss, gather_with_grad, ranking_loss


class MultipleNegativesRankingLoss(PairLoss, aliases=("InfoNCELoss",)):
    """In-batch negatives (InfoNCE): each query must rank its own document above every other document.

    Scores are ``scale * cos(query, document)``; the other documents of the batch (of all ranks under DDP), and
    optional hard negatives, are the negatives. Pair scores are not used: every given pair counts as relevant.

    Args:
        scale: inverse temperature applied to cosine similarities.
        symmetric: also make each document rank its own query above the other queries, and average.

    Example:
        >>> loss = MultipleNegativesRankingLoss()
        >>> loss(torch.randn(4, 8), torch.randn(4, 8), negatives=torch.randn(4, 8)).ndim
        0
    """

    uses_negatives = True

    def __init__(self, scale: float = 20.0, symmetric: bool = False) -> None:
        super().__init__()
        self.scale = scale
        self.symmetric = symmetric

    def compute_loss(
        self,
        query_embeddings: torch.Tensor,
        document_embeddings: torch.Tensor,
        scores: torch.Tensor | None,
        negatives: torch.Tensor | None,
    ) -> torch.Tensor:
        """The mean cross-entropy of each query's scores over all candidate documents."""
        documents = gather_with_grad(document_embeddings)
        if negatives is not None:
            documents = torch.cat([documents, gather_with_grad(negatives)])
        loss = ranking_loss(query_embeddings, documents, self.scale)
        if self.symmetric:
            loss = (loss + ranking_loss(document_embeddings, gather_with_grad(query_embeddings), self.scale)) / 2
        return loss
