"""`CosineSimilarityLoss`: regress the cosine similarity of each pair onto its score."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from finetuner.training.pair_losses.base import PairLoss


class CosineSimilarityLoss(PairLoss):
    """Scored pairs: the mean squared error between ``cos(query, document)`` and the pair's score.

    Each pair stands alone, so there is nothing to gather across DDP ranks. Scores are usually in ``[0, 1]``
    or ``[-1, 1]``.

    Example:
        >>> loss = CosineSimilarityLoss()
        >>> float(loss(torch.ones(2, 4), torch.ones(2, 4), torch.tensor([1.0, 1.0])))
        0.0
    """

    uses_scores = True

    def compute_loss(
        self,
        query_embeddings: torch.Tensor,
        document_embeddings: torch.Tensor,
        scores: torch.Tensor | None,
        negatives: torch.Tensor | None,
    ) -> torch.Tensor:
        """The mean squared error between each pair's cosine similarity and its score."""
        cosine = F.cosine_similarity(query_embeddings, document_embeddings, dim=-1)
        return F.mse_loss(cosine, scores.to(cosine.dtype))
