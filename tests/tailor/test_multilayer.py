"""`layer_features`: several layers' pooled outputs from one pass equal what `to_embedding_model` cuts and pools."""

import pytest
import torch

from finetuner import tailor

from .helpers import make_input, run

CASES = {
    "tv_resnet18": ["layer2", "layer3.0.bn1", "avgpool"],
    "timm_vit_tiny": ["blocks.0", "blocks.1.mlp", "norm"],  # norm is the default layer, pooled as the class token
    "tv_efficientnet_b0": ["features.4", "features.6", "avgpool"],
    "hf_bert": ["encoder.layer.0", "embeddings"],  # given out of order, dict inputs
}


def features(tailored, x):
    with torch.no_grad():
        return tailored.eval().features(x)


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_layer_equals_the_model_cut_there(zoo, name):
    model, kwargs = zoo(name)
    taps = tailor.layer_features(model, CASES[name], **kwargs)
    x = make_input(kwargs)
    outputs = run(taps.eval(), x)
    assert list(outputs) == CASES[name]
    for layer in CASES[name]:
        expected = features(tailor.to_embedding_model(model, layer_name=layer, **kwargs), x)
        torch.testing.assert_close(outputs[layer], expected, rtol=1e-5, atol=1e-5)
        assert taps.dims[layer] == expected.shape[1]
    default = tailor.to_embedding_model(model, **kwargs)
    assert taps.embedding_layer == default.embedding_layer
    if default.embedding_layer in CASES[name]:  # the default layer keeps its own pooling (a ViT's class token)
        torch.testing.assert_close(outputs[default.embedding_layer], features(default, x))


def test_nothing_after_the_last_layer_runs_and_the_model_is_untouched(zoo):
    model, kwargs = zoo("tv_resnet18")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    taps = tailor.layer_features(model, ["layer3", "layer2"], **kwargs)
    calls = []
    taps.model.model.layer4.register_forward_hook(lambda *args: calls.append("layer4"))
    run(taps.eval(), make_input(kwargs))
    assert calls == []
    assert not model._forward_hooks and not model.layer3._forward_hooks
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_bad_layers_are_named(zoo):
    model, kwargs = zoo("tv_resnet18")
    with pytest.raises(ValueError, match="layer3"):
        tailor.layer_features(model, ["layer33"], **kwargs)
    with pytest.raises(ValueError, match="at least one"):
        tailor.layer_features(model, [], **kwargs)
