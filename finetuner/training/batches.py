"""Where batches come from: the `BatchSource` contract the trainer reads, and its implementations (a DataLoader
over items, tensors of cached features). All follow one batch sampler (`finetuner.data.samplers`), so a cached and
an uncached run see the same batches in the same order."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import BatchSampler, Dataset


class BatchSource(ABC):
    """What the trainer iterates: ``len(source)`` steps per epoch, and ``source.epoch(e)`` the batches of epoch
    ``e`` (reshuffled per epoch, the same for the same ``e``).

    A batch is ``(inputs, labels)`` for labelled data, or ``(queries, documents, scores, negatives)`` for pairs
    (scores and negatives may be None).

    Example:
        >>> class Repeat(BatchSource):
        ...     def __init__(self, batch, steps):
        ...         self.batch, self.steps = batch, steps
        ...     def __len__(self):
        ...         return self.steps
        ...     def epoch(self, epoch):
        ...         return iter([self.batch] * self.steps)
        >>> len(list(Repeat((torch.zeros(2, 4), torch.tensor([0, 1])), steps=3).epoch(0)))
        3
    """

    @abstractmethod
    def __len__(self) -> int:
        """Steps (batches) per epoch."""

    @abstractmethod
    def epoch(self, epoch: int) -> Iterator[Any]:
        """The batches of epoch ``epoch`` (0-based)."""


class _SampledBatches(BatchSource):
    """A source that follows a batch sampler (a sized iterable of index lists, with an optional
    ``set_epoch(e)``): one step per sampler batch."""

    def __init__(self, batch_sampler: Any):
        self.batch_sampler = batch_sampler

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def _start_epoch(self, epoch: int) -> None:
        if hasattr(self.batch_sampler, "set_epoch"):
            self.batch_sampler.set_epoch(epoch)


class LoaderBatches(_SampledBatches):
    """Batches of preprocessed items from a DataLoader (workers, pinned memory on CUDA) that follows
    ``batch_sampler``. Item ``n`` of epoch ``e`` is augmented under a seed fixed by (the sampler's ``seed``, ``e``,
    ``n``), so an epoch repeats exactly with any number of workers and after a resume."""

    def __init__(self, dataset: Dataset, batch_sampler: BatchSampler, *, num_workers: int | str = "auto"):
        from finetuner.data.datasets import make_loader

        super().__init__(batch_sampler)
        seed = getattr(batch_sampler, "seed", 0)
        self.loader = make_loader(dataset, sampler=batch_sampler, num_workers=num_workers, seed=seed)

    def epoch(self, epoch: int) -> Iterator[Any]:
        self.loader.set_epoch(epoch)  # also the batch sampler's epoch
        return iter(self.loader)


class TensorBatches(_SampledBatches):
    """Batches indexed straight out of cached feature tensors (no DataLoader: nothing to decode).

    ``views`` holds one tensor ``(N, D)`` per cached view; epoch ``e`` uses view ``e % len(views)``.
    """

    def __init__(self, views: Sequence[torch.Tensor], labels: torch.Tensor, batch_sampler: Any):
        super().__init__(batch_sampler)
        self.views, self.labels = list(views), labels

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self._start_epoch(epoch)
        features = self.views[epoch % len(self.views)]
        for batch in self.batch_sampler:
            index = torch.as_tensor(batch)
            yield features[index].float(), self.labels[index]


class PairTensorBatches(_SampledBatches):
    """Pair batches indexed out of cached features: ``(queries, documents, scores, negatives)``, where scores and
    negatives are None when the data has none."""

    def __init__(self, columns: dict[str, torch.Tensor], scores: Sequence[float] | None, batch_sampler: Any):
        super().__init__(batch_sampler)
        self.columns = columns
        self.scores = torch.tensor(scores, dtype=torch.float32) if scores is not None else None

    def epoch(self, epoch: int) -> Iterator[tuple]:
        self._start_epoch(epoch)
        negatives = self.columns.get("negatives")
        for batch in self.batch_sampler:
            index = torch.as_tensor(batch)
            yield (
                self.columns["queries"][index].float(),
                self.columns["documents"][index].float(),
                self.scores[index] if self.scores is not None else None,
                negatives[index].float() if negatives is not None else None,
            )
