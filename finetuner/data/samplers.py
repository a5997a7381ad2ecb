"""The batch samplers: `ClassBalancedSampler` (P classes times m items per batch, every item every epoch, for
metric learning) and `ShuffledBatchSampler` (seeded shuffled batches). Both reshuffle per epoch with `set_epoch`
and shard across DDP ranks, so every batch source follows the same schedule.

pytorch-metric-learning's ``MPerClassSampler`` draws items at random (with a global numpy RNG), so some
items are never seen in an epoch; this sampler instead cuts each class into chunks of m items and spreads
every chunk over the epoch's batches.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import BatchSampler, Sampler

from finetuner.data.errors import DataError

logger = logging.getLogger("finetuner")


class ClassBalancedSampler(Sampler[list[int]]):
    """A batch sampler: each batch holds ``batch_size // m`` distinct classes with ``m`` items each.

    Per epoch, each class is shuffled and cut into chunks of ``m`` items (the last chunk is topped up
    with other items of the class), and the chunks are spread over the batches so that no class appears
    twice in a batch. Slots left over (classes of very different sizes) get extra chunks from classes not
    yet in that batch. So every item is visited at least once per epoch, and the number of batches is
    fixed by the labels: ``max(ceil(chunks / classes_per_batch), largest class's chunks)``.

    Settings that cannot work are adjusted, said in one info line of the ``finetuner`` log: ``m`` larger than
    ``batch_size // 2`` (a batch needs 2 classes), ``batch_size`` not a multiple of ``m``, more classes per batch
    than there are classes (``m`` grows so the batch keeps about its size), and classes with fewer than ``m`` items
    (sampled with replacement).

    Args:
        labels: one int class label per item.
        num_items_per_class: ``m``, items of each class in a batch.
        batch_size: items per batch.
        seed: with ``set_epoch``, fixes every epoch's batches.
        num_replicas: number of distributed processes; each gets ``len(self)`` batches.
        rank: this process's index; ranks get disjoint batches of the same global schedule.

    Example:
        >>> sampler = ClassBalancedSampler([0, 0, 1, 1, 2, 2, 3, 3], num_items_per_class=2, batch_size=4)
        >>> sampler.set_epoch(0)
        >>> [len(batch) for batch in sampler]
        [4, 4]
        >>> from torch.utils.data import DataLoader
        >>> loader = DataLoader(list(range(8)), batch_sampler=sampler)
    """

    def __init__(
        self,
        labels: Sequence[int],
        num_items_per_class: int = 4,
        batch_size: int = 32,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ):
        labels = np.asarray(labels, dtype=np.int64)
        if num_items_per_class < 1 or batch_size < 2:
            raise ValueError(
                f"need num_items_per_class >= 1 and batch_size >= 2, got {num_items_per_class} and {batch_size}"
            )
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in range(num_replicas={num_replicas}), got {rank}")
        classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
        if len(classes) < 2:
            raise DataError(
                f"class-balanced batches need at least 2 classes, found {len(classes)}; add items of other classes"
            )
        if counts.max() < 2:
            raise DataError(
                f"every one of the {len(classes)} classes has a single item, so no batch can hold two items of one "
                "class and a metric-learning loss has no positive pair to learn from. Add a second item to some "
                "classes, or train a classifier (task='classification')."
            )
        self.class_indices = np.split(np.argsort(inverse, kind="stable"), np.cumsum(counts)[:-1])
        self.seed, self.num_replicas, self.rank, self.epoch = seed, num_replicas, rank, 0
        self.m, self.batch_size = self._adjust(num_items_per_class, batch_size, classes)
        self.classes_per_batch = self.batch_size // self.m
        chunks = [math.ceil(len(indices) / self.m) for indices in self.class_indices]
        needed = max(math.ceil(sum(chunks) / self.classes_per_batch), max(chunks))
        self.num_global_batches = math.ceil(needed / num_replicas) * num_replicas

    def _adjust(self, m: int, batch_size: int, classes: np.ndarray) -> tuple[int, int]:
        notes = []
        if m > batch_size // 2:
            notes.append(f"num_items_per_class {m} -> {batch_size // 2} so a batch of {batch_size} holds 2 classes")
            m = batch_size // 2
        if batch_size % m:
            notes.append(f"batch_size {batch_size} -> {batch_size // m * m}, a multiple of num_items_per_class={m}")
            batch_size = batch_size // m * m
        if batch_size // m > len(classes):  # few classes: more items of each keep the batch near its size
            wider = batch_size // len(classes)
            notes.append(
                f"num_items_per_class {m} -> {wider} and batch_size {batch_size} -> {len(classes) * wider}: "
                f"only {len(classes)} classes"
            )
            m, batch_size = wider, len(classes) * wider
        small = [(c, len(i)) for c, i in zip(classes.tolist(), self.class_indices) if len(i) < m]
        if small:
            shown = ", ".join(f"class {c} ({n})" for c, n in small[:5]) + (", ..." if len(small) > 5 else "")
            notes.append(f"{len(small)} classes have fewer than {m} items and are sampled with replacement: {shown}")
        if notes:  # an ordinary adjustment, nothing for the user to change: an info line, not a warning
            logger.info("class-balanced batches adjusted: %s", "; ".join(notes))
        return m, batch_size

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose shuffle ``__iter__`` yields (same seed and epoch: same batches)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_global_batches // self.num_replicas

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._global_batches(np.random.default_rng([self.seed, self.epoch]))
        for batch in batches[self.rank :: self.num_replicas]:
            yield batch.tolist()

    def _chunks(self, rng: np.random.Generator, c: int) -> np.ndarray:
        """The class's items, shuffled, as rows of m (the last row topped up from the class's other items)."""
        indices = rng.permutation(self.class_indices[c])
        short = -len(indices) % self.m
        if short:
            # Top up from items outside the last chunk (with replacement only if the class is tiny).
            pool = indices[: len(indices) - (self.m - short)] if len(indices) >= self.m else indices
            indices = np.concatenate([indices, rng.choice(pool, short, replace=len(pool) < short)])
        return indices.reshape(-1, self.m)

    def _global_batches(self, rng: np.random.Generator) -> list[np.ndarray]:
        num_batches, per_batch = self.num_global_batches, self.classes_per_batch
        chunks = [self._chunks(rng, c) for c in range(len(self.class_indices))]
        # Every chunk is a row of one array; the assignment is two integer arrays (no Python object per item).
        rows = np.concatenate(chunks)
        first = np.cumsum([0] + [len(rows_of_class) for rows_of_class in chunks])
        batch_of = np.empty(len(rows), dtype=np.int64)
        placed = np.empty(len(rows), dtype=np.int64)  # order of placement: a batch lists its chunks in this order
        # buckets[f] holds the batches with f free slots. Largest classes first, each chunk of a class goes to
        # a different batch, taken from the fullest bucket (at random within it): as with Gale-Ryser's
        # construction this always fits, since num_batches >= the largest class's chunks.
        buckets: list[list[int]] = [[] for _ in range(per_batch)] + [list(range(num_batches))]
        draws = rng.random(len(rows))
        step = 0
        for c in sorted(rng.permutation(len(chunks)).tolist(), key=lambda c: -len(chunks[c])):
            taken, frees, free = [], [], per_batch
            for draw in draws[step : step + len(chunks[c])].tolist():
                while not buckets[free]:
                    free -= 1
                bucket = buckets[free]
                pick = int(draw * len(bucket))
                bucket[pick], bucket[-1] = bucket[-1], bucket[pick]
                taken.append(bucket.pop())
                frees.append(free)
            for batch, free in zip(taken, frees):  # only now, so no batch takes two chunks of one class
                buckets[free - 1].append(batch)
            batch_of[first[c] : first[c + 1]] = taken
            placed[first[c] : first[c + 1]] = np.arange(step, step + len(taken))
            step += len(taken)
        order = np.lexsort((placed, batch_of))
        bounds = np.searchsorted(batch_of[order], np.arange(num_batches + 1))
        row_class = np.repeat(np.arange(len(chunks)), np.diff(first))
        fillers: dict[int, list[np.ndarray]] = {}
        for free in range(1, per_batch + 1):
            for batch in buckets[free]:
                present = set(row_class[order[bounds[batch] : bounds[batch + 1]]].tolist())
                others = [c for c in rng.permutation(len(chunks)).tolist() if c not in present][:free]
                fillers[batch] = [self._filler(rng, c) for c in others]
        return [
            np.concatenate([rows[order[bounds[b] : bounds[b + 1]]].ravel(), *fillers.get(b, [])])
            for b in rng.permutation(num_batches).tolist()
        ]

    def _filler(self, rng: np.random.Generator, c: int) -> np.ndarray:
        indices = self.class_indices[c]
        return rng.choice(indices, self.m, replace=len(indices) < self.m)


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
