"""The feature cache: computed once, keyed by weights, data and preprocessing, bounded in memory."""

import numpy as np
import pytest
import torch
from torch import nn

from finetuner.data import ImagePreprocessing
from finetuner.training.cache import FeatureCache, fingerprint_items, fingerprint_module

PREP = ImagePreprocessing(input_size=(3, 8, 8), crop_pct=1.0, augment=None)


class CountingNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3 * 8 * 8, 4)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.linear(x.flatten(1))


def images(n, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 255, (8, 8, 3), dtype=np.uint8) for _ in range(n)]


def compute(cache, net, items, views=1):
    return cache.features(
        net, fingerprint_module(net), items, PREP, device=torch.device("cpu"), views=views, batch_size=4, num_workers=0
    )


def test_features_are_computed_once_then_read_back(tmp_path):
    net, items = CountingNet(), images(10)
    cache = FeatureCache(tmp_path)
    first = compute(cache, net, items)
    calls = net.calls
    second = compute(cache, net, items)
    assert net.calls == calls  # nothing recomputed
    assert torch.equal(first[0], second[0])
    expected = net(torch.stack([PREP.load(i, train=False) for i in items])).detach()
    torch.testing.assert_close(first[0], expected, rtol=1e-5, atol=1e-5)


def test_key_changes_with_weights_data_preprocessing_and_views():
    net, items = CountingNet(), images(6)
    cache = FeatureCache("unused")
    weights = fingerprint_module(net)
    key = cache.key(weights, items, PREP, 1)
    assert cache.key(fingerprint_module(net), items, PREP, 1) == key
    other = CountingNet()
    assert cache.key(fingerprint_module(other), items, PREP, 1) != key
    assert cache.key(weights, images(6, seed=1), PREP, 1) != key
    assert cache.key(weights, items, ImagePreprocessing(input_size=(3, 16, 16), augment=None), 1) != key
    assert cache.key(weights, items, PREP, 2) != key


def test_item_fingerprint_sees_file_changes(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("one")
    before = fingerprint_items([str(path)])
    path.write_text("two!")
    assert fingerprint_items([str(path)]) != before
    assert fingerprint_module(nn.Linear(2, 2)) != fingerprint_module(nn.Linear(2, 2))


def test_large_caches_are_memory_mapped_and_float16_halves_storage(tmp_path):
    net, items = CountingNet(), images(8)
    in_memory = compute(FeatureCache(tmp_path / "a"), net, items)[0]
    mapped_cache = FeatureCache(tmp_path / "b", max_memory_bytes=0, dtype="float16")
    mapped = compute(mapped_cache, net, items)[0]
    assert mapped.dtype == torch.float16
    torch.testing.assert_close(mapped.float(), in_memory, rtol=1e-2, atol=1e-2)
    stored = next((tmp_path / "b").glob("*/view-0.npy"))
    assert isinstance(np.load(stored, mmap_mode="r"), np.memmap)


def test_several_views_use_the_training_augmentation(tmp_path):
    net, items = CountingNet(), images(8)
    augmenting = ImagePreprocessing(input_size=(3, 8, 8), crop_pct=1.0, augment="light")
    views = FeatureCache(tmp_path).features(
        net,
        fingerprint_module(net),
        items,
        augmenting,
        device=torch.device("cpu"),
        views=3,
        batch_size=4,
        num_workers=0,
    )
    assert len(views) == 3 and all(v.shape == (8, 4) for v in views)
    assert not torch.equal(views[0], views[1])


def test_unknown_storage_dtype_is_refused():
    with pytest.raises(ValueError, match="float16"):
        FeatureCache("x", dtype="int8")


def test_an_interrupted_run_keeps_its_finished_shards(tmp_path):
    from cache_case import SHARD_SIZE, resume_case

    cache, net, items, compute_case = resume_case(tmp_path, fail_after=3 * SHARD_SIZE)
    with pytest.raises(RuntimeError, match="simulated crash"):
        compute_case(cache, net, items)
    assert not list(tmp_path.glob("*/meta.json"))  # nothing final yet
    cache, net, items, compute_case = resume_case(tmp_path)
    resumed = compute_case(cache, net, items)[0]
    assert net.rows == len(items) - 3 * SHARD_SIZE  # only the missing shards were computed
    assert not list(tmp_path.glob("*.parts"))  # joined into one file, then removed
    reference_cache, reference_net, _, _ = resume_case(tmp_path / "reference")
    torch.testing.assert_close(resumed, compute_case(reference_cache, reference_net, items)[0])


def test_shards_another_machine_wrote_elsewhere_are_reported(tmp_path, monkeypatch):
    """Rank 0 of two whose cache folder is not shared: the other rank's shards never appear."""
    from cache_case import SHARD_SIZE, resume_case

    from finetuner.core import distributed

    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    monkeypatch.setattr(distributed, "broadcast_object", lambda value: value)
    monkeypatch.setattr(distributed, "barrier", lambda: None)
    cache, net, items, compute_case = resume_case(tmp_path)
    with pytest.raises(ValueError, match="storage all machines share .*FINETUNER_CACHE"):
        compute_case(cache, net, items)
    assert net.rows == 3 * SHARD_SIZE  # rank 0 did its share: shards 1, 3 and 5 of 5


def test_shards_cover_the_items_and_give_every_process_work(monkeypatch):
    from finetuner.core import distributed

    assert FeatureCache("x", shard_size=4).shards(10) == [(0, 4), (4, 8), (8, 10)]
    monkeypatch.setattr(distributed, "world_size", lambda: 4)
    assert FeatureCache("x", shard_size=100).shards(10) == [(0, 3), (3, 6), (6, 9), (9, 10)]
    with pytest.raises(ValueError, match="shard_size"):
        FeatureCache("x", shard_size=0)


def test_augmented_views_differ_with_dataloader_workers(tmp_path):
    net, items = CountingNet(), images(8)
    augmenting = ImagePreprocessing(input_size=(3, 8, 8), crop_pct=1.0, augment="light")
    cache, cpu = FeatureCache(tmp_path), torch.device("cpu")
    views = cache.features(net, fingerprint_module(net), items, augmenting, device=cpu, views=2, num_workers=1)
    assert not torch.equal(views[0], views[1])  # each view its own seed, also in worker processes

def test_long_texts_and_texts_with_nul_bytes_are_fingerprinted_as_values():
    texts = ["word " * 100, "a\x00b"]  # too long for a file name; a NUL byte
    assert fingerprint_items(texts) == fingerprint_items(list(texts))
    assert fingerprint_items(texts) != fingerprint_items(["word " * 99, "a\x00b"])
