import numpy as np
import pytest
import torch
from torch.utils.data import BatchSampler, SequentialSampler, TensorDataset

from finetuner.data import (
    ClassBalancedSampler,
    DataError,
    ImagePreprocessing,
    ItemDataset,
    PairDataset,
    default_num_workers,
    load_data,
    make_loader,
)

PREP = ImagePreprocessing(input_size=(3, 16, 16), augment=None)


def test_item_dataset_loads_through_the_preprocessing(image_folder):
    data = load_data(image_folder)
    dataset = ItemDataset(data.items, data.labels, PREP, train=False)
    inputs, labels = dataset.collate([dataset[i] for i in range(len(dataset))])
    assert inputs.shape == (6, 3, 16, 16) and labels.tolist() == data.labels
    assert torch.allclose(inputs[0], PREP.load(data.items[0], train=False))


@pytest.mark.parametrize("workers", [0, 1])
def test_corrupt_file_error_surfaces_from_a_loader(corrupt_jpg, workers):
    loader = make_loader(ItemDataset([corrupt_jpg], [0], PREP, train=True), 1, num_workers=workers)
    with pytest.raises(DataError, match=str(corrupt_jpg)):
        next(iter(loader))


def test_pair_dataset_with_and_without_scores():
    images = [np.full((8, 8), i * 40, dtype=np.uint8) for i in range(4)]
    dataset = PairDataset(images, images[::-1], PREP, train=False, scores=[1, 0.5, 0.25, 0])
    queries, documents, scores, negatives = make_loader(dataset, 4).__iter__().__next__()
    assert queries.shape == documents.shape == (4, 3, 16, 16)
    assert torch.equal(queries[0], documents[3]) and scores.tolist() == [1, 0.5, 0.25, 0] and negatives is None
    batch = next(iter(make_loader(PairDataset(images, images, PREP, train=False), 2)))
    assert batch[2] is None and batch[3] is None
    triplets = PairDataset(images, images, PREP, train=False, negatives=images[::-1])
    negatives = next(iter(make_loader(triplets, 4)))[3]
    assert torch.equal(negatives[0], documents[0])


def test_auto_workers_only_for_files():
    assert default_num_workers(ItemDataset([np.zeros((4, 4), np.uint8)], [0], PREP, train=True)) == 0
    assert default_num_workers(ItemDataset([torch.zeros(3, 4, 4)], [0], PREP, train=True)) == 0
    files = ItemDataset(["a.jpg"], [0], PREP, train=True)
    lazy = ItemDataset(load_data(TensorDataset(torch.zeros(2, 1), torch.tensor([0, 1]))).items, [0, 1], PREP, True)
    for dataset in (files, lazy, TensorDataset(torch.zeros(2))):
        assert 0 <= default_num_workers(dataset) <= 4
    loader = make_loader(files, 1)
    assert loader.num_workers == default_num_workers(files)
    assert loader.persistent_workers == (loader.num_workers > 0)
    assert loader.pin_memory == torch.cuda.is_available()


def test_seeded_shuffle_reproduces():
    dataset = ItemDataset([torch.full((3, 2, 2), float(i)) for i in range(10)], list(range(10)), PREP, train=True)

    def order(seed):
        return torch.cat([labels for _, labels in make_loader(dataset, 3, shuffle=True, seed=seed)]).tolist()

    assert order(0) == order(0) and order(0) != order(1) and sorted(order(0)) == list(range(10))


def test_batch_samplers_drive_batching():
    labels = np.repeat(np.arange(3), 4).tolist()
    dataset = ItemDataset([torch.zeros(3, 2, 2)] * 12, labels, PREP, train=True)
    loader = make_loader(dataset, sampler=ClassBalancedSampler(labels, 2, batch_size=4))
    assert [len(labels) for _, labels in loader] == [4] * len(loader.batch_sampler)
    plain = make_loader(dataset, sampler=BatchSampler(SequentialSampler(dataset), 5, drop_last=False))
    assert [len(labels) for _, labels in plain] == [5, 5, 2]
    with pytest.raises(ValueError, match="batch sampler"):
        make_loader(dataset, 4, sampler=ClassBalancedSampler(labels, 2, batch_size=4))
    with pytest.raises(ValueError, match="batch_size"):
        make_loader(dataset)


def test_workers_load_files(image_folder):
    data = load_data(image_folder)
    loader = make_loader(ItemDataset(data.items, data.labels, PREP, train=True), 3, num_workers=1)
    assert [tuple(inputs.shape) for inputs, _ in loader] == [(3, 3, 16, 16)] * 2
