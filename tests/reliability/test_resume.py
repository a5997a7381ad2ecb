"""Exact resume in the default configuration: DataLoader workers and random augmentation. Each item's augmentation
is fixed by (seed, epoch, position), so no worker state needs saving and the number of workers does not matter."""

import numpy as np
import pytest
import torch

import finetuner
from finetuner.data import ImagePreprocessing
from finetuner.inference import batched_outputs


def fit(data, tmp_path, workers, **overrides):
    options = dict(pretrained=False, output_dim=8, cache=False, batch_size=8, seed=3, num_workers=workers)
    return finetuner.fit("test_cnn", data, **{**options, **overrides})


def assert_same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    different = [name for name in sa if not torch.equal(sa[name], sb[name])]
    assert not different, different


def test_a_resumed_run_with_workers_and_augmentation_equals_the_straight_run_bit_for_bit(files, tmp_path):
    straight = fit(files, tmp_path, workers=1, epochs=3)
    fit(files, tmp_path, workers=1, epochs=2, output_dir=tmp_path / "out")  # "killed" after epoch 2
    resumed = fit(files, tmp_path, workers=1, epochs=3, resume_from=tmp_path / "out" / "checkpoints")
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in straight.history]
    assert_same_weights(straight.model, resumed.model)


def test_the_number_of_workers_does_not_change_training(files, tmp_path):
    in_process, two_workers = (fit(files, tmp_path, workers=workers, epochs=2) for workers in (0, 2))
    assert_same_weights(in_process.model, two_workers.model)


def test_augmented_views_differ_by_epoch_and_not_by_workers(arrays):
    """Cached views (cache_views=K) are epochs 0..K-1 of the augmentation: distinct, and the same in any worker."""
    model = finetuner.build_model("test_cnn", pretrained=False).eval()
    prep = ImagePreprocessing(input_size=(3, 32, 32))

    def view(epoch, workers):
        return batched_outputs(model, arrays.items, prep, device=torch.device("cpu"), batch_size=8, train=True,
                               num_workers=workers, epoch=epoch)

    first = view(0, workers=0)
    assert np.array_equal(first, view(0, workers=1))
    assert not np.allclose(first, view(1, workers=1))


@pytest.mark.parametrize("workers", [0, 1])
def test_duplicates_in_one_epoch_get_their_own_augmentation(workers):
    """Classes smaller than num_items_per_class repeat items in a batch: each copy is a different view."""
    from torch.utils.data import BatchSampler

    from finetuner.data import ItemDataset, make_loader

    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    dataset = ItemDataset([image], [0], ImagePreprocessing(input_size=(3, 16, 16)), train=True)
    inputs, _ = next(iter(make_loader(dataset, sampler=BatchSampler([0, 0, 0, 0], 4, False), num_workers=workers)))
    assert len({tuple(x.flatten()[:64].tolist()) for x in inputs}) == 4
