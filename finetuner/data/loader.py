"""The DataLoader finetuner uses everywhere: each item's random augmentation is fixed by (seed, epoch, position),
so runs repeat exactly with any number of workers and after a resume, and a bad item in a worker surfaces as
the item's own one-line `DataError`, not as a worker traceback."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, get_worker_info

from finetuner.data.errors import DataError

_MASK = (1 << 64) - 1


def _mix(*values: int) -> int:
    """A 64-bit hash of integers (splitmix64 steps): cheap enough to run once per item."""
    state = 0x9E3779B97F4A7C15
    for value in values:
        state = (state ^ (value & _MASK)) * 0xBF58476D1CE4E5B9 & _MASK
        state = (state ^ (state >> 31)) * 0x94D049BB133111EB & _MASK
        state ^= state >> 29
    return state


class _SeededItems(Dataset):
    """Loads ``dataset[index]`` for a key ``(seed, index)`` with torch's CPU generator seeded by ``seed`` (in
    DataLoader workers also NumPy's and Python's global generators, for user datasets that draw from those).

    A worker's random state then no longer matters: the augmentation an item gets depends only on the key, so it
    is the same in any worker, with any number of workers, and after resuming a run. In the main process
    (``num_workers=0``) the trainer's torch generator is put back afterwards.
    """

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        seed, index = key
        if get_worker_info() is not None:  # a worker's generators are its own: no need to restore them
            torch.default_generator.manual_seed(seed)
            np.random.seed(seed & 0xFFFFFFFF)
            random.seed(seed)
            return self.dataset[index]
        saved = torch.default_generator.get_state()  # the CPU generator only: CUDA's is untouched
        try:
            torch.default_generator.manual_seed(seed)
            return self.dataset[index]
        finally:
            torch.default_generator.set_state(saved)


class _EpochKeys(Sampler[list[tuple[int, int]]]):
    """Turns a batch sampler's index lists into `_SeededItems` keys: item ``n`` of an epoch is loaded under a seed
    mixed from ``(seed, epoch, rank, n)``, so duplicates of an item in one epoch still get their own draws."""

    def __init__(self, batch_sampler: Any, seed: int):
        self.batch_sampler, self.seed, self.epoch = batch_sampler, seed, 0

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        rank, position = getattr(self.batch_sampler, "rank", 0), 0
        for batch in self.batch_sampler:
            yield [(_mix(self.seed, self.epoch, rank, position + i), index) for i, index in enumerate(batch)]
            position += len(batch)


class Loader(DataLoader):
    """A `DataLoader` whose epochs are reproducible and whose item errors read as the item's own error.

    Epoch ``e`` (the ``e``-th iteration, or the one chosen with `set_epoch`) shuffles and augments exactly as
    every other epoch ``e`` with the same seed, whatever the number of workers or a resume in between.
    A `DataError` raised while loading an item in a worker process is raised again here with its original
    one-line message (path and fix), instead of torch's "Caught DataError in DataLoader worker process".
    Build it with `finetuner.data.make_loader`.
    """

    def __init__(self, dataset: Dataset, batch_sampler: Sampler, seed: int, **options: Any):
        self.keys = _EpochKeys(batch_sampler, seed)
        super().__init__(_SeededItems(dataset), batch_sampler=self.keys, **options)
        self.seed, self._next_epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration epoch ``epoch`` (and the batch sampler's, when it has ``set_epoch``)."""
        self._next_epoch = epoch

    def __iter__(self) -> Iterator[Any]:
        epoch, self._next_epoch = self._next_epoch, self._next_epoch + 1
        self.keys.epoch = epoch
        if hasattr(self.keys.batch_sampler, "set_epoch"):
            self.keys.batch_sampler.set_epoch(epoch)
        self.generator.manual_seed(_mix(self.seed, epoch) >> 1)  # the shuffle of make_loader(shuffle=True)
        try:
            yield from super().__iter__()
            return
        except DataError as error:
            message, kind = _worker_message(error), type(error)
            if message is None:
                raise
            # The traceback's frames hold the worker iterator: drop them so it shuts its workers down now
            # (left to the garbage collector, torch waits 5 s for each worker).
            error.__traceback__ = None
        raise kind(message)  # outside the except block: no chained worker traceback


def _worker_message(error: BaseException) -> str | None:
    """The original message of an exception that torch re-raised from a DataLoader worker (None otherwise).

    torch rebuilds a worker's exception as ``type(error)(text)``, ``text`` being "Caught X in DataLoader worker
    process N." and the whole worker traceback, whose last line is ``module.X: message``.
    """
    text = str(error)
    if " in DataLoader worker process " not in text.partition("\n")[0]:
        return None
    kind = type(error)
    _, found, message = text.rpartition(f"\n{kind.__module__}.{kind.__qualname__}: ")
    return message.strip() if found else None
