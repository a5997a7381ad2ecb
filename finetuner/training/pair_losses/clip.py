"""`CLIPLoss`: CLIP's symmetric contrastive loss with a learnable temperature."""

from __future__ import annotations

import math

import torch
from torch import nn

from finetuner.training.pair_losses.base import PairLoss, gather_with_grad, ranking_loss


class CLIPLoss(PairLoss):
    """CLIP's symmetric contrastive loss with a learnable temperature.

    Queries (images) must pick their document (text) among all documents, and documents their query among all
    queries; the two cross-entropies are averaged. The logit scale (inverse temperature) is learnt in log space
    and capped at ``max_scale``. Pair scores are not used.

    Args:
        init_scale: initial logit scale (CLIP: ``1 / 0.07``).
        max_scale: upper bound of the logit scale (CLIP: 100).

    Example:
        >>> loss = CLIPLoss()
        >>> loss(torch.randn(4, 8), torch.randn(4, 8)).backward()
        >>> loss.log_scale.grad is not None
        True
    """

    def __init__(self, init_scale: float = 1 / 0.07, max_scale: float = 100.0) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(torch.tensor(math.log(init_scale)))
        self.max_scale = max_scale

    @property
    def scale(self) -> torch.Tensor:
        """The current logit scale."""
        return self.log_scale.exp().clamp(max=self.max_scale)

    def compute_loss(
        self,
        query_embeddings: torch.Tensor,
        document_embeddings: torch.Tensor,
        scores: torch.Tensor | None,
        negatives: torch.Tensor | None,
    ) -> torch.Tensor:
        """The mean of the image-to-text and text-to-image cross-entropies."""
        scale = self.scale
        image_to_text = ranking_loss(query_embeddings, gather_with_grad(document_embeddings), scale)
        text_to_image = ranking_loss(document_embeddings, gather_with_grad(query_embeddings), scale)
        return (image_to_text + text_to_image) / 2
