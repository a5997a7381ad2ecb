"""Candidate layers and their features: one pass, one cache entry per layer, equal to the chopped model's output."""

import logging

import pytest
import torch

import finetuner
from finetuner import tailor
from finetuner.inference import batched_outputs
from finetuner.models import build_backbone
from finetuner.probing import layer_candidates
from finetuner.probing.layers import cached_features
from finetuner.training.cache import FeatureCache

from .conftest import IMAGE

CPU = torch.device("cpu")


def features(backbone, cache_dir, items, layers=4):
    module, candidates = layer_candidates(backbone, layers)
    found = cached_features(
        backbone, module, candidates, {"train": items}, FeatureCache(cache_dir), device=CPU, batch_size=8, num_workers=0
    )
    return candidates, found["train"]


def test_auto_layers_skip_a_stage_that_pools_to_the_embedding(cnn):
    _, candidates = layer_candidates(build_backbone(cnn, input_size=IMAGE))
    # stage2 pooled is avgpool's output: dropped; the default layer is marked by layer_name=None
    assert [(c.name, c.layer_name, c.dim) for c in candidates] == [
        ("stem", "stem", 8),
        ("stage1", "stage1", 12),
        ("avgpool", None, 16),
    ]


def test_auto_layers_of_a_vit_are_its_last_blocks(vit):
    _, candidates = layer_candidates(build_backbone(vit, input_size=IMAGE), 3)
    assert [(c.name, c.pool) for c in candidates] == [("blocks.3", "auto"), ("blocks.4", "auto"), ("norm", "cls")]


@pytest.mark.parametrize("name", ["cnn", "vit"])
def test_each_cached_layer_equals_the_chopped_model(request, name, small_data, cache_dir):
    module = request.getfixturevalue(name)
    backbone = build_backbone(module, input_size=IMAGE)
    items = small_data.items[:10]
    candidates, found = features(backbone, cache_dir, items)
    assert len(candidates) >= 3
    for candidate in candidates:
        chopped = tailor.chop(module, candidate.name, example_input=backbone.example_input).eval()
        pool = tailor.FeaturePool(candidate.pool)
        expected = batched_outputs(
            lambda x, chopped=chopped, pool=pool: pool(chopped(x)), items, backbone.preprocessing, device=CPU
        )
        assert found[candidate.name].shape == (10, candidate.dim)
        torch.testing.assert_close(found[candidate.name], torch.from_numpy(expected), rtol=1e-5, atol=1e-5)
    # one cache entry per layer, read back without running the model again
    assert len(list(cache_dir.glob("*/meta.json"))) == len(candidates)
    again = cached_features(
        backbone, _Broken(), candidates, {"train": items}, FeatureCache(cache_dir), device=CPU, num_workers=0
    )["train"]
    assert all(torch.equal(again[c.name], found[c.name]) for c in candidates)


class _Broken(torch.nn.Module):
    def forward(self, x):
        raise AssertionError("the cache should have answered")


def test_fit_at_a_probed_layer_reuses_the_cache(cnn, small_data, eval_data, cache_dir, caplog):
    candidates, _ = features(build_backbone(cnn, input_size=IMAGE), cache_dir, small_data.items)
    cached = set(cache_dir.iterdir())
    with caplog.at_level(logging.INFO, logger="finetuner"):
        finetuner.fit(
            cnn, small_data, layer_name="stage1", freeze=True, output_dim=8, input_size=IMAGE, epochs=1,
            cache_dir=cache_dir, num_workers=0, device="cpu",
        )  # fmt: skip
    assert "reusing cached features of train items" in caplog.text
    assert set(cache_dir.iterdir()) == cached


def test_unknown_layers_are_named(cnn):
    with pytest.raises(ValueError, match="stage1"):
        layer_candidates(build_backbone(cnn, input_size=IMAGE), ["stage11"])
    for bad in ("stem", 0, []):
        with pytest.raises(ValueError, match="number of layers"):
            layer_candidates(build_backbone(cnn, input_size=IMAGE), bad)
