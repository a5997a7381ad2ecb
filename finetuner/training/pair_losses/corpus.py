"""`CorpusRankingLoss`: each query ranks its document among a fixed corpus of documents (a query-side adapter's)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from finetuner.training.pair_losses.base import PairLoss


class CorpusRankingLoss(PairLoss):
    """Cross-entropy of each query's scaled cosine similarities over its own document and a fixed corpus.

    Where documents do not change in training (``adapter="query"``: only queries are mapped), every training
    document is a negative of every query, not only the batch's: the softmax runs over the corpus that
    `use_documents` gives (``fit`` gives it the training documents), so a step sees what retrieval will rank.
    A corpus row equal to a query's own document (cosine >= 1 - 1e-6: the document itself, or a duplicate) is
    not a negative of it. Hard negatives join the corpus for their batch.

    Args:
        scale: inverse temperature applied to cosine similarities.
        max_documents: at most this many corpus rows per step, drawn afresh each step (a large corpus costs a
            sample of it); None: always the whole corpus.

    Example:
        >>> loss = CorpusRankingLoss()
        >>> loss.use_documents(torch.randn(100, 8))
        >>> loss(torch.randn(4, 8), torch.randn(4, 8)).ndim
        0
    """

    uses_negatives = True

    def __init__(self, scale: float = 20.0, max_documents: int | None = 65536) -> None:
        super().__init__()
        if max_documents is not None and (isinstance(max_documents, bool) or max_documents < 1):
            raise ValueError(f"max_documents must be a positive number of documents or None, got {max_documents!r}.")
        self.scale, self.max_documents = scale, max_documents
        self.register_buffer("documents", None, persistent=False)

    def use_documents(self, documents: torch.Tensor) -> None:
        """Rank against ``documents`` ``(N, D)`` (the fixed document features; stored L2-normalised)."""
        if documents.ndim != 2 or len(documents) == 0:
            raise ValueError(f"CorpusRankingLoss takes a corpus of shape (N >= 1, D), got {tuple(documents.shape)}.")
        self.documents = F.normalize(documents.detach().float(), dim=1)

    def compute_loss(
        self,
        query_embeddings: torch.Tensor,
        document_embeddings: torch.Tensor,
        scores: torch.Tensor | None,
        negatives: torch.Tensor | None,
    ) -> torch.Tensor:
        """The mean cross-entropy of each query's own document against the corpus (and hard negatives)."""
        if self.documents is None:
            raise ValueError(
                "CorpusRankingLoss ranks against fixed documents: call use_documents(corpus) first (fit does it for "
                "adapter='query'), or use MultipleNegativesRankingLoss where documents are mapped too."
            )
        width = query_embeddings.shape[1]
        corpus = self.documents.to(query_embeddings.dtype)
        if self.max_documents is not None and len(corpus) > self.max_documents:
            corpus = corpus[torch.randperm(len(corpus), device=corpus.device)[: self.max_documents]]
        if corpus.shape[1] != width:  # Matryoshka prefixes: the corpus truncated the same way
            corpus = F.normalize(corpus[:, :width], dim=1)
        if negatives is not None:
            corpus = torch.cat([corpus, F.normalize(negatives, dim=1)])
        query, document = F.normalize(query_embeddings, dim=1), F.normalize(document_embeddings, dim=1)
        positive = (query * document).sum(dim=1, keepdim=True)
        others = (query @ corpus.T).masked_fill(document @ corpus.T >= 1 - 1e-6, float("-inf"))
        logits = self.scale * torch.cat([positive, others], dim=1)
        return F.cross_entropy(logits, torch.zeros(len(query), dtype=torch.long, device=query.device))
