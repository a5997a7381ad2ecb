"""`PairLoss`: the contract of losses on (query, document) embedding pairs, and `PAIR_LOSSES`, the registry its
subclasses fill.

``forward`` checks the inputs and calls ``compute_loss`` (pytorch-metric-learning's template method), so a new
loss writes only the maths. Defining a subclass registers it by class name: ``build_loss("MyLoss")`` finds it. The
built-in losses are the modules of this folder, imported on the first lookup.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from finetuner.core.registry import Registry
from finetuner.training.loss_names import CLASSIFICATION_LOSSES, pml_names

PAIR_LOSSES: Registry[type[PairLoss]] = Registry(
    "pair loss", "finetuner.training.pair_losses", fix="Define a PairLoss subclass to add one."
)


class PairLoss(nn.Module, ABC):
    """Base class of losses on ``(B, D)`` query and document embeddings, where row ``i`` of both is a pair.

    Subclasses implement `compute_loss`; ``forward`` first checks shapes and devices and raises a ``ValueError``
    naming the problem. Defining a subclass registers it under its class name, and under ``aliases=``
    (``class MyLoss(PairLoss, aliases=("Mine",))``), for `create_pair_loss` and ``build_loss``.

    Under DDP a pair loss is called on each rank's own batch (never wrapped): call `gather_with_grad` in
    ``compute_loss`` to score against the documents of every rank, as the built-in losses do.

    Attributes:
        uses_scores: ``compute_loss`` needs a score per pair: ``forward`` refuses ``scores=None``.
        uses_negatives: ``compute_loss`` uses hard negatives: ``forward`` refuses them when this is False.

    Example:
        >>> class DotLoss(PairLoss):
        ...     def compute_loss(self, query_embeddings, document_embeddings, scores, negatives):
        ...         return -(query_embeddings * document_embeddings).sum(dim=1).mean()
        >>> create_pair_loss("DotLoss")(torch.ones(2, 4), torch.ones(2, 4))
        tensor(-4.)
    """

    uses_scores: ClassVar[bool] = False
    uses_negatives: ClassVar[bool] = False

    def __init_subclass__(cls, aliases: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        names = [cls.__name__, *aliases]
        # build_loss would not know which loss a shared name means. The built-in names are checked by a test, so
        # importing finetuner does not import pytorch-metric-learning.
        built_in = cls.__module__.startswith(f"{PAIR_LOSSES.package}.")
        taken = [n for n in names if n in CLASSIFICATION_LOSSES or (not built_in and n in pml_names("losses"))]
        if taken:
            raise ValueError(
                f"{cls.__module__}.{cls.__qualname__} cannot be registered as pair loss {taken[0]!r}: that name is "
                "a pytorch-metric-learning or classification loss of build_loss. Give the class another name "
                "(or alias)."
            )
        PAIR_LOSSES.register(cls.__name__, cls, aliases=aliases)

    def forward(
        self,
        query_embeddings: torch.Tensor,
        document_embeddings: torch.Tensor,
        scores: torch.Tensor | None = None,
        negatives: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Check the inputs, then return `compute_loss`.

        Args:
            query_embeddings: ``(B, D)``.
            document_embeddings: ``(B, D)``, row ``i`` being query ``i``'s relevant document.
            scores: ``(B,)`` target similarity per pair, or None (moved to the embeddings' device).
            negatives: ``(N, D)`` embeddings of non-relevant documents (hard negatives), or None.

        Raises:
            ValueError: shapes or devices that do not match, scores missing for a loss that needs them, hard
                negatives for a loss that does not use them.
        """
        query, document = query_embeddings, document_embeddings
        name = type(self).__name__
        if query.ndim != 2 or query.shape != document.shape:
            raise ValueError(
                f"{name} expected query and document embeddings of the same (B, D) shape, got "
                f"{tuple(query.shape)} and {tuple(document.shape)}"
            )
        _check_device(query, document, "document embeddings")
        if scores is None and self.uses_scores:
            raise ValueError(
                f"{name} learns from scored pairs: give a score per pair (a CSV with query,document,score "
                "columns), or use MultipleNegativesRankingLoss for unscored pairs"
            )
        if scores is not None:
            if scores.shape != (len(query),):
                raise ValueError(f"expected one score per pair, shape ({len(query)},), got {tuple(scores.shape)}")
            scores = scores.to(query.device)
        if negatives is not None:
            if not self.uses_negatives:
                raise ValueError(
                    f"{name} does not use hard negatives: drop the negatives column of the data, or use a loss "
                    f"that uses them ({', '.join(n for n, c in sorted(PAIR_LOSSES.items()) if c.uses_negatives)})"
                )
            if negatives.ndim != 2 or negatives.shape[1] != query.shape[1]:
                raise ValueError(
                    f"{name} expected hard negatives of shape (N, {query.shape[1]}), got {tuple(negatives.shape)}"
                )
            _check_device(query, negatives, "hard negatives")
        return self.compute_loss(query, document, scores, negatives)

    def forward_batch(self, model: nn.Module, batch: Sequence[Any]) -> torch.Tensor:
        """The loss of one batch of model inputs ``(queries, documents, scores, negatives)`` (scores and
        negatives may be None): what the trainer calls. This runs ``model`` on each column and calls ``self``;
        a loss that drives the forward pass itself (`CachedLoss` runs it in chunks) overrides it. The trainer
        calls ``backward()`` on the result, scaled for fp16 and gradient accumulation.
        """
        queries, documents, scores, negatives = batch
        hard = None if negatives is None else model(negatives).float()
        return self(model(queries).float(), model(documents).float(), scores, hard)

    @abstractmethod
    def compute_loss(
        self,
        query_embeddings: torch.Tensor,
        document_embeddings: torch.Tensor,
        scores: torch.Tensor | None,
        negatives: torch.Tensor | None,
    ) -> torch.Tensor:
        """The scalar loss of checked inputs (see ``forward`` for the arguments)."""


def _check_device(query: torch.Tensor, other: torch.Tensor, what: str) -> None:
    if other.device != query.device:
        raise ValueError(
            f"query embeddings are on {query.device} but {what} on {other.device}: move them to one device"
        )


def list_pair_losses() -> list[str]:
    """Names of every `PairLoss` subclass defined so far, aliases included.

    Example:
        >>> {"CLIPLoss", "CosineSimilarityLoss", "InfoNCELoss", "MultipleNegativesRankingLoss"} <= set(
        ...     list_pair_losses())
        True
    """
    return PAIR_LOSSES.names()


def find_pair_loss(name: str) -> type[PairLoss] | None:
    """The `PairLoss` subclass registered under ``name`` (class name or alias), or None.

    Example:
        >>> find_pair_loss("InfoNCELoss").__name__, find_pair_loss("TripletMarginLoss")
        ('MultipleNegativesRankingLoss', None)
    """
    return PAIR_LOSSES.find(name)


def create_pair_loss(name: str, **kwargs: Any) -> PairLoss:
    """A new pair loss by class name or alias, with ``kwargs`` for its constructor.

    Raises:
        ValueError: no `PairLoss` subclass has this name.

    Example:
        >>> create_pair_loss("InfoNCELoss", scale=10.0).scale
        10.0
    """
    return PAIR_LOSSES.get(name)(**kwargs)


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


def ranking_loss(rows: torch.Tensor, columns: torch.Tensor, scale: float | torch.Tensor) -> torch.Tensor:
    """Cross-entropy of scaled cosine similarities where row ``i`` of this rank must pick column
    ``rank * B + i`` (``columns`` gathered from every rank with `gather_with_grad`, extra columns after them).

    Example:
        >>> x = torch.eye(3)
        >>> float(ranking_loss(x, x, 100.0)) < 1e-6
        True
    """
    logits = scale * F.normalize(rows, dim=-1) @ F.normalize(columns, dim=-1).T
    rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
    targets = torch.arange(len(rows), device=rows.device) + rank * len(rows)
    return F.cross_entropy(logits, targets)
