"""Where batches come from: a DataLoader over items, or tensors of cached features. Both follow one batch
sampler, so a cached and an uncached run see the same batches in the same order."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import BatchSampler, Dataset


class ShuffledBatchSampler(BatchSampler):
    """Seeded shuffled batches of indices, reshuffled per epoch with `set_epoch`; shards across DDP ranks.

    A `BatchSampler` (without its base's item sampler), so DataLoaders treat it as one.

    Example:
        >>> sampler = ShuffledBatchSampler(10, batch_size=4, seed=0)
        >>> sorted(i for batch in sampler for i in batch)
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    """

    def __init__(self, num_items: int, batch_size: int, *, seed: int = 0, num_replicas: int = 1, rank: int = 0):
        self.num_items, self.batch_size, self.seed = num_items, batch_size, seed
        self.num_replicas, self.rank, self.epoch = num_replicas, rank, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _shard_size(self) -> int:
        # Every rank gets the same number of items (a few repeat, as with DistributedSampler), so batch shapes
        # match across ranks: DDP steps in lockstep and in-batch-negative losses can all_gather.
        return -(-self.num_items // self.num_replicas)

    def __iter__(self) -> Iterator[list[int]]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(self.num_items, generator=generator).tolist()
        padded = (order * self.num_replicas)[: self._shard_size() * self.num_replicas]
        shard = padded[self.rank :: self.num_replicas]
        for start in range(0, len(shard), self.batch_size):
            batch = shard[start : start + self.batch_size]
            if len(batch) >= 2:  # a batch of one breaks BatchNorm and every pair loss
                yield batch

    def __len__(self) -> int:
        full, rest = divmod(self._shard_size(), self.batch_size)
        return full + (rest >= 2)


class LoaderBatches:
    """Batches of preprocessed items from a DataLoader (workers, pinned memory on CUDA) that follows
    ``batch_sampler``. Item ``n`` of epoch ``e`` is augmented under a seed fixed by (the sampler's ``seed``, ``e``,
    ``n``), so an epoch repeats exactly with any number of workers and after a resume."""

    def __init__(self, dataset: Dataset, batch_sampler: BatchSampler, *, num_workers: int | str = "auto"):
        from finetuner.data.datasets import make_loader

        self.batch_sampler = batch_sampler
        seed = getattr(batch_sampler, "seed", 0)
        self.loader = make_loader(dataset, sampler=batch_sampler, num_workers=num_workers, seed=seed)

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def epoch(self, epoch: int) -> Iterator[Any]:
        self.loader.set_epoch(epoch)  # also the batch sampler's epoch
        return iter(self.loader)


class TensorBatches:
    """Batches indexed straight out of cached feature tensors (no DataLoader: nothing to decode).

    ``views`` holds one tensor ``(N, D)`` per cached view; epoch ``e`` uses view ``e % len(views)``.
    """

    def __init__(self, views: Sequence[torch.Tensor], labels: torch.Tensor, batch_sampler: Any):
        self.views, self.labels, self.batch_sampler = list(views), labels, batch_sampler

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if hasattr(self.batch_sampler, "set_epoch"):
            self.batch_sampler.set_epoch(epoch)
        features = self.views[epoch % len(self.views)]
        for batch in self.batch_sampler:
            index = torch.as_tensor(batch)
            yield features[index].float(), self.labels[index]


class PairTensorBatches:
    """Pair batches indexed out of cached features: ``(queries, documents, scores, negatives)``, where scores and
    negatives are None when the data has none."""

    def __init__(self, columns: dict[str, torch.Tensor], scores: Sequence[float] | None, batch_sampler: Any):
        self.columns, self.batch_sampler = columns, batch_sampler
        self.scores = torch.tensor(scores, dtype=torch.float32) if scores is not None else None

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def epoch(self, epoch: int) -> Iterator[tuple]:
        if hasattr(self.batch_sampler, "set_epoch"):
            self.batch_sampler.set_epoch(epoch)
        negatives = self.columns.get("negatives")
        for batch in self.batch_sampler:
            index = torch.as_tensor(batch)
            yield (
                self.columns["queries"][index].float(),
                self.columns["documents"][index].float(),
                self.scores[index] if self.scores is not None else None,
                negatives[index].float() if negatives is not None else None,
            )
