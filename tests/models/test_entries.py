"""Every registered model (timm's `test_model_default_cfgs`): its spec rebuilds the same architecture, and it builds
with the embedding size `list_models` announces. Entries over ``HEAVY`` parameters build for real with ``-m slow``."""

import functools
import json

import pytest
import torch

from finetuner import tailor
from finetuner.models import Backbone, build_backbone, get_entry, list_backends, list_models, rebuild_backbone

HEAVY = 6_000_000  # parameters; counted on the meta device, where building costs nothing
# a cheap name for each backend whose registered entries are all heavy or that builds any name of its family
OPEN_NAMES = {"timm": "timm:test_vit", "torchvision": "torchvision:squeezenet1_0", "vectors": "vectors:8"}


@functools.cache
def meta_backbone(name: str) -> Backbone:
    """``name`` built on the meta device: the architecture and its spec, no memory and no initialisation."""
    with torch.device("meta"):
        return build_backbone(name, pretrained=False)


def shapes(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in module.state_dict().items()}


def cheap_or_slow(name: str):
    size = sum(p.numel() for p in meta_backbone(name).module.parameters())
    return pytest.param(name, marks=[pytest.mark.slow] if size > HEAVY else [])


NAMES = [entry.name for entry in list_models()] + list(OPEN_NAMES.values())


def test_every_backend_is_covered():
    covered = {entry.backend for entry in list_models()} | set(OPEN_NAMES)
    assert covered == {backend.name for backend in list_backends()} - {"custom"}


@pytest.mark.parametrize("name", NAMES)
def test_spec_rebuilds_the_same_architecture(name):
    backbone = meta_backbone(name)
    spec = json.loads(json.dumps(backbone.spec))  # what save() writes
    entry = get_entry(name)
    assert backbone.backend.name == spec["source"] == (entry.backend if entry else name.split(":")[0])
    with torch.device("meta"):
        rebuilt = rebuild_backbone(spec)
    assert shapes(rebuilt) == shapes(backbone.module)


@pytest.mark.parametrize("name", [cheap_or_slow(name) for name in NAMES])
def test_builds_with_its_output_dim_and_rebuilt_weights_give_the_same_outputs(name):
    backbone = build_backbone(name, pretrained=False)
    module, inputs = backbone.module.eval(), backbone.example_input
    if backbone.backend.pools_itself:
        features = module(inputs)
    else:
        features = tailor.to_embedding_model(module, example_input=inputs).eval().features(inputs)
    entry = get_entry(name)
    if entry is not None:
        assert features.shape == (2, entry.output_dim)
    rebuilt = rebuild_backbone(json.loads(json.dumps(backbone.spec))).eval()
    rebuilt.load_state_dict(module.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(inputs), module(inputs))
