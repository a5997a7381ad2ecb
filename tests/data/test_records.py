"""LabeledData / PairData: validation, subsets, seeded splits, label encoding, lazy Dataset items."""

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from finetuner.data import DataError, DatasetItems, LabeledData, PairData, check_at_least_two_classes, encode_labels


def test_encode_labels_sorts_names_and_numeric_strings():
    assert encode_labels(["dog", "cat", "dog"]) == ([1, 0, 1], ["cat", "dog"])
    assert encode_labels(["10", "2", "2"]) == ([1, 0, 0], ["2", "10"])
    assert encode_labels([7, 3, np.int64(7)]) == ([1, 0, 1], ["3", "7"])
    assert encode_labels([2, 0], names=["zero", "one", "two"]) == ([1, 0], ["zero", "two"])
    with pytest.raises(DataError, match="mix strings and numbers"):
        encode_labels([1, "x"])
    with pytest.raises(DataError, match="invalid label"):
        encode_labels(["a", ""])


def test_check_at_least_two_classes():
    check_at_least_two_classes(LabeledData(["a", "b"], [0, 1], ["x", "y"]))
    with pytest.raises(DataError, match="at least 2 classes.*only class 'cat'.*one class"):
        check_at_least_two_classes(LabeledData(["a", "b"], [0, 0], ["cat"]))


def test_labeled_data_validates():
    with pytest.raises(DataError, match="one label per item"):
        LabeledData(["a"], [0, 1], ["x", "y"])
    with pytest.raises(DataError, match="range"):
        LabeledData(["a"], [2], ["x", "y"])
    with pytest.raises(DataError, match="one document per query"):
        PairData(["q"], [])
    with pytest.raises(DataError, match="one negative per pair"):
        PairData(["q"], ["d"], negatives=[])


def test_split_is_stratified_and_seeded():
    labels = [0] * 50 + [1] * 30 + [2] * 20
    data = LabeledData(list(range(100)), labels, ["a", "b", "c"])
    rest, part = data.split(0.2, seed=1)
    assert (len(rest), len(part)) == (80, 20)
    assert np.bincount(part.labels).tolist() == [10, 6, 4]
    assert sorted(rest.items + part.items) == list(range(100))
    assert part.items == data.split(0.2, seed=1)[1].items
    assert part.items != data.split(0.2, seed=2)[1].items
    uneven = LabeledData(list(range(7)), [0, 0, 0, 1, 1, 1, 2], ["a", "b", "c"])
    assert len(uneven.split(0.3)[1]) == 2
    with pytest.raises(DataError, match="one part would be empty"):
        LabeledData(["a"], [0], ["x"]).split(0.2)
    with pytest.raises(ValueError):
        data.split(1.0)


def test_pair_split_is_seeded_and_keeps_negatives():
    pairs = PairData([f"q{i}" for i in range(10)], [f"d{i}" for i in range(10)], [float(i) for i in range(10)])
    rest, part = pairs.split(0.3, seed=0)
    assert (len(rest), len(part)) == (7, 3)
    assert [f"q{int(s)}" for s in part.scores] == part.queries
    assert part.queries == pairs.split(0.3, seed=0)[1].queries
    triplets = PairData(["q0", "q1"], ["d0", "d1"], negatives=["n0", "n1"])
    assert triplets.subset([1]).negatives == ["n1"]


def test_dataset_items_read_lazily_by_key_and_subset_stays_lazy():
    reads = []

    class Rows:
        def __len__(self):
            return 4

        def __getitem__(self, i):
            reads.append(i)
            return {"image": f"image {i}", "label": i % 2}

    items = DatasetItems(Rows(), key="image")
    subset = items.subset([3, 1])
    assert reads == [] and isinstance(subset, DatasetItems)
    assert list(subset) == ["image 3", "image 1"] and reads == [3, 1]
    pairs = PairData(DatasetItems(Rows(), key="image"), ["d0", "d1", "d2", "d3"]).subset([2])
    assert isinstance(pairs.queries, DatasetItems) and pairs.queries[0] == "image 2"
    assert DatasetItems(TensorDataset(torch.arange(3), torch.zeros(3)))[2] == 2
