"""torch Datasets over ``LabeledData`` / ``PairData`` items, and a DataLoader helper with sensible defaults."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils.data import BatchSampler, Dataset, RandomSampler, Sampler, SequentialSampler

from finetuner.data.loader import Loader
from finetuner.data.preprocessing import ImagePreprocessing, Preprocessing
from finetuner.data.records import DatasetItems
from finetuner.data.samplers import ClassBalancedSampler

MAX_AUTO_WORKERS = 4


class ItemDataset(Dataset):
    """Labelled items loaded through a preprocessing: ``dataset[i] == (preprocessing.load(items[i]), labels[i])``.

    Args:
        items: raw items (``LabeledData.items``).
        labels: int labels, one per item.
        preprocessing: an ``ImagePreprocessing``, a ``TextPreprocessing`` or anything with ``load``/``collate``.
        train: use the training transform (augmentation).

    Example:
        >>> import numpy as np
        >>> from finetuner.data import ImagePreprocessing, load_fashion_mnist
        >>> data = load_fashion_mnist("test")
        >>> dataset = ItemDataset(data.items, data.labels, ImagePreprocessing(input_size=(3, 32, 32)), train=False)
        >>> inputs, labels = dataset.collate([dataset[0], dataset[1]])
        >>> inputs.shape, labels.dtype
        (torch.Size([2, 3, 32, 32]), torch.int64)
    """

    def __init__(self, items: Sequence, labels: Sequence[int], preprocessing: Preprocessing, train: bool):
        if len(items) != len(labels):
            raise ValueError(f"got {len(items)} items but {len(labels)} labels")
        self.items, self.labels, self.preprocessing, self.train = items, list(labels), preprocessing, train

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        return self.preprocessing.load(self.items[index], self.train), self.labels[index]

    def collate(self, batch: list[tuple[Any, int]]) -> tuple[Any, torch.Tensor]:
        """``(inputs, labels)``: inputs batched by the preprocessing, labels as an int64 tensor."""
        samples, labels = zip(*batch)
        return self.preprocessing.collate(list(samples)), torch.tensor(labels, dtype=torch.int64)

    @property
    def reads_files(self) -> bool:
        """Whether loading an item does I/O or decoding that DataLoader workers can overlap."""
        return _reads_files(self.items, self.preprocessing)


class PairDataset(Dataset):
    """Query/document pairs: ``dataset[i] == (query_input, document_input, score_or_None)``.

    Args:
        queries: raw queries (``PairData.queries``).
        documents: raw documents, ``documents[i]`` relevant to ``queries[i]``.
        preprocessing: loads the queries (and the documents unless ``document_preprocessing`` is given).
        train: use the training transform.
        scores: optional relevance score per pair.
        document_preprocessing: for documents of another modality (e.g. text queries, image documents).
        negatives: optional hard negative document per pair.

    Example:
        >>> from finetuner.data import ImagePreprocessing
        >>> import numpy as np
        >>> image = np.zeros((8, 8), dtype=np.uint8)
        >>> dataset = PairDataset([image], [image], ImagePreprocessing(input_size=(3, 16, 16)), train=False)
        >>> queries, documents, scores, negatives = dataset.collate([dataset[0]])
        >>> queries.shape, scores
        (torch.Size([1, 3, 16, 16]), None)
    """

    def __init__(
        self,
        queries: Sequence,
        documents: Sequence,
        preprocessing: Preprocessing,
        train: bool,
        scores: Sequence[float] | None = None,
        document_preprocessing: Preprocessing | None = None,
        negatives: Sequence | None = None,
    ):
        if any(column is not None and len(column) != len(queries) for column in (documents, scores, negatives)):
            raise ValueError("queries, documents, scores and negatives must have the same length")
        self.queries, self.documents, self.scores, self.train = queries, documents, scores, train
        self.negatives = negatives
        self.query_preprocessing = preprocessing
        self.document_preprocessing = document_preprocessing or preprocessing

    def __len__(self) -> int:
        return len(self.queries)

    def __getitem__(self, index: int) -> tuple[Any, Any, float | None, Any]:
        query = self.query_preprocessing.load(self.queries[index], self.train)
        document = self.document_preprocessing.load(self.documents[index], self.train)
        score = None if self.scores is None else float(self.scores[index])
        negative = (
            None if self.negatives is None else self.document_preprocessing.load(self.negatives[index], self.train)
        )
        return query, document, score, negative

    def collate(self, batch: list[tuple[Any, Any, float | None, Any]]) -> tuple[Any, Any, torch.Tensor | None, Any]:
        """``(queries, documents, scores, negatives)``: batched inputs, a float tensor of scores or ``None``, and
        batched hard negatives (documents) or ``None``."""
        queries, documents, scores, negatives = zip(*batch)
        return (
            self.query_preprocessing.collate(list(queries)),
            self.document_preprocessing.collate(list(documents)),
            None if self.scores is None else torch.tensor(scores, dtype=torch.float32),
            None if self.negatives is None else self.document_preprocessing.collate(list(negatives)),
        )

    @property
    def reads_files(self) -> bool:
        """Whether loading a pair does I/O or decoding that DataLoader workers can overlap."""
        return _reads_files(self.queries, self.query_preprocessing) or _reads_files(
            self.documents, self.document_preprocessing
        )


def _reads_files(items: Sequence, preprocessing: Preprocessing) -> bool:
    if isinstance(items, DatasetItems):
        return True  # a user Dataset: its loading cost is unknown, assume I/O
    first = items[0] if len(items) else None
    return isinstance(first, (str, os.PathLike)) and isinstance(preprocessing, ImagePreprocessing)


def default_num_workers(dataset: Dataset) -> int:
    """Workers for ``num_workers="auto"``: ``min(4, cpus - 1)`` when items are files to decode, else 0.

    In-memory items (arrays, PIL images, tensors) and texts (tokenising is fast) gain little from workers:
    their start-up and the copies between processes cost more than the work they take off the main process.
    A dataset other than ``ItemDataset``/``PairDataset`` is assumed to read files.

    Example:
        >>> from finetuner.data import ImagePreprocessing, load_fashion_mnist
        >>> data = load_fashion_mnist("test")
        >>> default_num_workers(ItemDataset(data.items, data.labels, ImagePreprocessing(), train=True))
        0
    """
    if not getattr(dataset, "reads_files", True):
        return 0
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(0, min(MAX_AUTO_WORKERS, cpus - 1))


def make_loader(
    dataset: Dataset,
    batch_size: int | None = None,
    *,
    shuffle: bool = False,
    sampler: Sampler | None = None,
    num_workers: int | str = "auto",
    collate_fn: Callable | None = None,
    pin_memory: bool | str = "auto",
    persistent_workers: bool | str = "auto",
    drop_last: bool = False,
    seed: int = 0,
) -> Loader:
    """A `Loader` (a DataLoader) with the defaults that suit finetuner's datasets.

    Args:
        dataset: usually an ``ItemDataset`` or ``PairDataset`` (map-style).
        batch_size: items per batch; leave out when ``sampler`` is a batch sampler.
        shuffle: reshuffle every epoch (seeded by ``seed`` and the epoch); not with a ``sampler``.
        sampler: an item sampler, or a batch sampler (``ClassBalancedSampler``, ``BatchSampler``) that
            yields lists of indices and fixes the batch size itself.
        num_workers: ``"auto"`` is ``default_num_workers(dataset)``.
        collate_fn: defaults to ``dataset.collate`` when the dataset has one.
        pin_memory: ``"auto"`` pins only when CUDA is available.
        persistent_workers: ``"auto"`` keeps workers alive between epochs when there are any.
        drop_last: drop the last incomplete batch (item samplers only).
        seed: with the epoch and the item's position, fixes every item's random augmentation.

    Returns:
        The `Loader`.

    Example:
        >>> from finetuner.data import ClassBalancedSampler, ImagePreprocessing, ItemDataset, load_fashion_mnist
        >>> data = load_fashion_mnist("test")
        >>> dataset = ItemDataset(data.items, data.labels, ImagePreprocessing(input_size=(3, 32, 32)), train=True)
        >>> loader = make_loader(dataset, sampler=ClassBalancedSampler(data.labels, 4, batch_size=16))
        >>> inputs, labels = next(iter(loader))
        >>> inputs.shape
        torch.Size([16, 3, 32, 32])
    """
    workers = default_num_workers(dataset) if num_workers == "auto" else int(num_workers)
    is_batch_sampler = isinstance(sampler, (ClassBalancedSampler, BatchSampler))
    if is_batch_sampler and (batch_size is not None or shuffle or drop_last):
        raise ValueError("a batch sampler fixes batching itself: leave batch_size, shuffle and drop_last unset")
    if not is_batch_sampler and batch_size is None:
        raise ValueError("give a batch_size, or a batch sampler such as ClassBalancedSampler")
    if shuffle and sampler is not None:
        raise ValueError("shuffle and sampler exclude each other: a sampler decides the order itself")
    generator = torch.Generator().manual_seed(seed)
    if not is_batch_sampler:
        items = sampler or (RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset))
        sampler = BatchSampler(items, batch_size, drop_last)
    return Loader(
        dataset,
        sampler,
        seed,
        num_workers=workers,
        collate_fn=collate_fn or getattr(dataset, "collate", None),
        pin_memory=torch.cuda.is_available() if pin_memory == "auto" else bool(pin_memory),
        persistent_workers=workers > 0 if persistent_workers == "auto" else bool(persistent_workers),
        generator=generator,
    )
