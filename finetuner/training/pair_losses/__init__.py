"""Losses on (query, document) embedding pairs: the `PairLoss` contract, its registry, and the built-in losses
(in-batch negatives, scored pairs, CLIP's symmetric loss, a fixed corpus of documents for query-side adapters),
and the wrappers for big batches (`CachedLoss`) and Matryoshka embeddings (`MatryoshkaPairLoss`).

Adding a pair loss is one module here (a `PairLoss` subclass) and its test: `PAIR_LOSSES` imports every module of
this folder on its first lookup. A subclass defined anywhere else (a user's script) registers itself the same way;
a name pytorch-metric-learning uses is refused. The imports below only make the built-in classes importable here.
"""

from finetuner.training.pair_losses.base import (
    PAIR_LOSSES,
    PairLoss,
    create_pair_loss,
    find_pair_loss,
    gather_with_grad,
    list_pair_losses,
    ranking_loss,
)
from finetuner.training.pair_losses.cached import CachedCLIPLoss, CachedLoss, CachedMultipleNegativesRankingLoss
from finetuner.training.pair_losses.clip import CLIPLoss
from finetuner.training.pair_losses.corpus import CorpusRankingLoss
from finetuner.training.pair_losses.cosine import CosineSimilarityLoss
from finetuner.training.pair_losses.matryoshka import MatryoshkaPairLoss
from finetuner.training.pair_losses.ranking import MultipleNegativesRankingLoss

__all__ = [
    "PAIR_LOSSES",
    "CLIPLoss",
    "CachedCLIPLoss",
    "CachedLoss",
    "CachedMultipleNegativesRankingLoss",
    "CorpusRankingLoss",
    "CosineSimilarityLoss",
    "MatryoshkaPairLoss",
    "MultipleNegativesRankingLoss",
    "PairLoss",
    "create_pair_loss",
    "find_pair_loss",
    "gather_with_grad",
    "list_pair_losses",
    "ranking_loss",
]
