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


def test_long_texts_and_texts_with_nul_bytes_are_fingerprinted_as_values():
    texts = ["word " * 100, "a\x00b"]  # too long for a file name; a NUL byte
    assert fingerprint_items(texts) == fingerprint_items(list(texts))
    assert fingerprint_items(texts) != fingerprint_items(["word " * 99, "a\x00b"])
