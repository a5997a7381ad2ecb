"""Map-style ``torch.utils.data.Dataset``s returning ``(item, label)``; items stay lazy."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch.utils.data import Dataset, IterableDataset

from finetuner.data.errors import DataError
from finetuner.data.formats.base import DataFormat, DataKind, register_format
from finetuner.data.records import DatasetItems, LabeledData, encode_labels


class TorchDatasetFormat(DataFormat):
    """A map-style ``torch.utils.data.Dataset`` of ``(item, label)`` (e.g. torchvision's ``ImageFolder``, ``CIFAR10``).

    Items are read through the Dataset where they are used (in DataLoader workers). Labels come from its
    ``targets``/``labels`` attribute when present, else from one pass over it; its ``classes`` name them.

    Example:
        >>> import torch
        >>> from torch.utils.data import TensorDataset
        >>> TorchDatasetFormat().read(TensorDataset(torch.zeros(3, 2), torch.tensor([0, 1, 1])), {}, DataKind.AUTO)
        LabeledData(3 items, 2 classes: 0, 1)
    """

    name = "torch_dataset"
    priority = 80
    description = "a map-style torch Dataset of (item, label)"

    def can_read(self, source: Any) -> bool:
        return isinstance(source, Dataset)

    def read(self, source: Any, columns: Mapping[str, str], kind: DataKind) -> LabeledData:
        name = type(source).__name__
        if isinstance(source, IterableDataset):
            raise DataError(f"the {name} is an IterableDataset, which finetuner does not read yet: use a map-style one")
        if len(source) == 0:
            raise DataError(f"the {name} is empty")
        first = source[0]
        if not (isinstance(first, (tuple, list)) and len(first) == 2):
            got = f"{len(first)} values" if isinstance(first, (tuple, list)) else f"a {type(first).__name__}"
            raise DataError(f"a {name} must return (item, label) tuples, got {got}")
        raw = getattr(source, "targets", None)
        if raw is None:
            raw = getattr(source, "labels", None)
        if raw is None or len(raw) != len(source):
            raw = [source[i][1] for i in range(len(source))]
        raw = raw.tolist() if hasattr(raw, "tolist") else list(raw)
        labels, classes = encode_labels(raw, names=getattr(source, "classes", None))
        return LabeledData(DatasetItems(source), labels, classes)


register_format(TorchDatasetFormat())
