import numpy as np
import pytest
import torch

import finetuner
from finetuner.data import DataError, LabeledData, PairData, VectorData, VectorPairs, hold_out, load_data, vector_width
from finetuner.data.preprocessing import preprocessing_from_config
from finetuner.data.preprocessing.vectors import VectorPreprocessing


def test_vector_data_rows_labels_and_subsets():
    vectors = np.arange(12, dtype=np.float32).reshape(6, 2)
    data = VectorData(vectors, ["b", "a", "b", "a", "c", "c"])
    assert isinstance(data, LabeledData) and data.classes == ["a", "b", "c"] and data.labels == [1, 0, 1, 0, 2, 2]
    part = data.subset([4, 1])
    assert vector_width(part) == 2 and np.array_equal(part.items[0], vectors[4])
    assert np.array_equal(part.items.to_array(), vectors[[4, 1]])
    assert load_data(data) is data


def test_int_labels_take_class_names_and_none_is_one_class():
    data = VectorData(torch.ones(3, 4), np.array([1, 0, 1]), classes=["cat", "dog"])
    assert data.classes == ["cat", "dog"] and data.labels == [1, 0, 1]
    assert VectorData(np.ones((2, 4))).classes == ["unlabelled"]


def test_memory_mapped_npy_is_read_row_by_row(tmp_path):
    path = tmp_path / "vectors.npy"
    np.save(path, np.random.default_rng(0).normal(size=(20, 5)).astype(np.float32))
    data = VectorData(path, [i % 4 for i in range(20)])
    assert isinstance(data.items.dataset, np.memmap)
    split = hold_out(data, 0.25, 0)
    assert vector_width(split.train) == 5 and len(split.train) + len(split.validation) == 20


@pytest.mark.parametrize(
    ("vectors", "labels", "message"),
    [
        (np.ones(4), None, "an \\(n, d\\) array"),
        (np.ones((0, 3)), None, "an \\(n, d\\) array"),
        (np.array([["a", "b"]]), None, "real numbers"),
        (np.ones((3, 2)), ["a"], "give one label per row"),
        ("nothing.npy", None, "not a .npy file"),
    ],
)
def test_bad_vectors_are_named(vectors, labels, message):
    with pytest.raises(DataError, match=message):
        VectorData(vectors, labels)


def test_vector_pairs_are_pairs_of_one_width():
    pairs = VectorPairs(np.ones((3, 4)), np.zeros((3, 4)))
    assert isinstance(pairs, PairData) and vector_width(pairs.subset([0, 2])) == 4
    with pytest.raises(DataError, match="one width"):
        VectorPairs(np.ones((3, 4)), np.zeros((3, 5)))
    with pytest.raises(DataError, match="one document per query"):
        VectorPairs(np.ones((3, 4)), np.zeros((2, 4)))


def test_preprocessing_round_trips_and_checks_the_width():
    prep = VectorPreprocessing(3)
    assert preprocessing_from_config(prep.to_config()) == prep
    assert prep.collate([prep.load([1, 2, 3], train=True)] * 2).dtype == torch.float32
    with pytest.raises(DataError, match="3 numbers"):
        prep.load([1, 2], train=False)


def test_the_vectors_backend_is_the_identity_and_saves(tmp_path):
    model = finetuner.build_model("vectors:6", output_dim=6, head="linear")
    model.head = None  # the vectors themselves
    vectors = np.random.default_rng(0).normal(size=(4, 6)).astype(np.float32)
    expected = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    assert np.allclose(model.encode(vectors), expected, atol=1e-6)
    model = finetuner.build_model("vectors:6", output_dim=3, head="linear")
    model.save(tmp_path / "m")
    assert np.array_equal(finetuner.load(tmp_path / "m").encode(vectors), model.encode(vectors))


@pytest.mark.parametrize("name", ["vectors:x", "vectors:0"])
def test_a_width_is_needed(name):
    with pytest.raises(ValueError, match="vectors:<d>"):
        finetuner.build_model(name)
