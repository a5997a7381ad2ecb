"""torch Datasets of (item, label): labels from targets or one pass, items read lazily."""

import pytest
import torch
from torch.utils.data import Dataset, IterableDataset, TensorDataset

from finetuner.data import DataError, load_data


class _Items(Dataset):
    """A Dataset without a targets attribute, counting how often items are read."""

    def __init__(self):
        self.reads = 0

    def __len__(self):
        return 4

    def __getitem__(self, i):
        self.reads += 1
        return torch.full((3, 2, 2), float(i)), ["b", "a"][i % 2]


def test_torch_dataset_items_stay_lazy():
    data = load_data(TensorDataset(torch.zeros(4, 3, 2, 2), torch.tensor([2, 0, 2, 5])))
    assert (data.labels, data.classes) == ([1, 0, 1, 2], ["0", "2", "5"])
    dataset = _Items()
    data = load_data(dataset)
    assert (data.labels, data.classes) == ([1, 0, 1, 0], ["a", "b"])
    reads = dataset.reads
    subset = data.subset([3, 1])
    assert dataset.reads == reads  # nothing read until an item is used
    assert subset.items[0][0, 0, 0] == 3.0 and len(subset.items) == 2


def test_torch_dataset_with_targets_and_classes_keeps_class_names():
    class Named(TensorDataset):
        classes = ["zero", "one", "two"]

    dataset = Named(torch.zeros(3, 1), torch.tensor([2, 0, 2]))
    dataset.targets = [2, 0, 2]
    assert load_data(dataset).classes == ["zero", "two"]


def test_unusable_datasets_raise():
    class Stream(IterableDataset):
        def __iter__(self):
            yield from ()

    with pytest.raises(DataError, match="IterableDataset, which finetuner does not read yet"):
        load_data(Stream())
    with pytest.raises(DataError, match=r"must return \(item, label\) tuples, got 3 values"):
        load_data(TensorDataset(torch.zeros(2, 3), torch.zeros(2), torch.zeros(2)))
    with pytest.raises(DataError, match="is empty"):
        load_data(TensorDataset(torch.zeros(0, 3), torch.zeros(0)))
