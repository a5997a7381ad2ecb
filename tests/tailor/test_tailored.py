import copy

import pytest
import torch
from torch import nn

from finetuner.tailor import (
    ClassificationHead,
    FeaturePool,
    LinearHead,
    ProjectionHead,
    TailoredModel,
    attach,
    count_parameters,
    is_frozen,
    to_embedding_model,
)

from .helpers import hooked_output, make_input, run


def _pre_logits(model: nn.Module, classifier: str, x) -> torch.Tensor:
    """The input of the model's classifier, captured by a pre-hook."""
    seen = {}
    handle = model.get_submodule(classifier).register_forward_pre_hook(lambda m, a: seen.setdefault("x", a[0].clone()))
    run(model.eval(), x)
    handle.remove()
    return seen["x"]


@pytest.mark.parametrize(
    ("model_name", "classifier"),
    [("tv_resnet18", "fc"), ("tv_mobilenet_v3_small", "classifier.3"), ("tv_convnext", "classifier.2"),
     ("tv_vit", "heads.head"), ("mlp", "2"), ("rnn", "fc")],
)  # fmt: skip
def test_default_features_are_the_classifier_input(zoo, model_name, classifier):
    model, kwargs = zoo(model_name)
    x = make_input(kwargs)
    tailored = to_embedding_model(model, **kwargs).eval()
    assert tailored.head is None
    assert torch.allclose(run(tailored, x), _pre_logits(model, classifier, x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("model_name", ["timm_vit_tiny", "timm_convnext_atto", "timm_hybrid_vit"])
def test_timm_features_are_pre_logits(zoo, model_name):
    model, kwargs = zoo(model_name)
    x = make_input(kwargs)
    with torch.no_grad():
        expected = model.forward_head(model.forward_features(x), pre_logits=True)
    assert torch.allclose(run(to_embedding_model(model, **kwargs).eval(), x), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("model_name", ["hf_bert", "hf_vit"])
def test_hugging_face_features_are_the_pooled_output(zoo, model_name):
    model, kwargs = zoo(model_name)
    x = make_input(kwargs)
    expected = run(model, x).pooler_output
    tailored = to_embedding_model(model, output_dim=4, **kwargs).eval()
    with torch.no_grad():
        assert torch.allclose(tailored.features(x), expected, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        assert tailored(x).shape == (2, 4)  # a TailoredModel takes the dict itself


def test_bert_without_pooler_uses_the_class_token(zoo):
    model, kwargs = zoo("hf_bert_no_pooler")
    x = make_input(kwargs)
    tailored = to_embedding_model(model, **kwargs).eval()
    assert tailored.embedding_layer == "encoder"
    with torch.no_grad():
        assert torch.equal(tailored(x), run(model, x).last_hidden_state[:, 0])


def test_to_embedding_model_frozen_with_projection_head(zoo):
    model, kwargs = zoo("tv_resnet18")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    tailored = to_embedding_model(model, freeze=True, output_dim=16, **kwargs)
    assert isinstance(tailored.head, ProjectionHead) and tailored.embedding_layer == "avgpool"
    assert is_frozen(tailored.backbone) and isinstance(tailored.pool, FeaturePool)
    assert count_parameters(tailored, trainable_only=True) == count_parameters(tailored.head)
    assert count_parameters(tailored.head) == 2 * (512 * 512 + 512 + 2 * 512) + 512 * 16 + 16
    assert run(tailored.eval(), make_input(kwargs)).shape == (2, 16)
    # the input model is untouched
    assert all(p.requires_grad for p in model.parameters()) and not any(m._forward_pre_hooks for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_to_embedding_model_layer_name_and_heads(zoo):
    model, kwargs = zoo("tv_resnet18")
    x = make_input(kwargs)
    tailored = to_embedding_model(model, "layer3", freeze=["conv1", "bn1"], output_dim=6, head="linear",
                                  normalize=True, **kwargs).eval()  # fmt: skip
    assert isinstance(tailored.head, LinearHead) and tailored.embedding_layer == "layer3"
    expected = hooked_output(model, "layer3", x).mean(dim=(2, 3))
    with torch.no_grad():
        assert torch.allclose(tailored.features(x), expected, rtol=1e-5, atol=1e-6)
    assert torch.allclose(run(tailored, x).norm(dim=1), torch.ones(2))
    frozen = {n for n, p in tailored.backbone.named_parameters() if not p.requires_grad}
    assert frozen == {"conv1.weight", "bn1.weight", "bn1.bias"}
    custom = to_embedding_model(model, freeze=True, head=ClassificationHead(512, 3), **kwargs)
    assert count_parameters(custom, trainable_only=True) == 512 * 3 + 3


def test_to_embedding_model_errors(zoo):
    model, kwargs = zoo("mlp")
    with pytest.raises(ValueError, match="nothing to train.*output_dim"):
        to_embedding_model(model, freeze=True, **kwargs)
    with pytest.raises(ValueError, match="Unknown head"):
        to_embedding_model(model, output_dim=3, head="mlp", **kwargs)
    with pytest.raises(ValueError, match=r"'fc'.*display"):
        to_embedding_model(model, "fc", **kwargs)


def test_tailored_model_and_attach():
    backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    tailored = attach(backbone, LinearHead(4, 2))
    assert isinstance(tailored, TailoredModel) and tailored.backbone is backbone
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(tailored.features(x), backbone(x).mean(dim=(2, 3)))
    assert torch.equal(tailored(x), tailored.head(tailored.features(x)))
    swapped = attach(tailored, None)
    assert swapped.backbone is backbone and torch.equal(swapped(x), tailored.features(x))
    assert torch.equal(copy.deepcopy(tailored)(x), tailored(x))


def test_dict_inputs_reach_the_backbone_as_keywords():
    class Keywords(nn.Module):
        def forward(self, input_ids, attention_mask):
            return (input_ids * attention_mask).float()

    tailored = TailoredModel(Keywords(), FeaturePool())
    ids = torch.tensor([[1, 2], [3, 4]])
    assert torch.equal(tailored({"input_ids": ids, "attention_mask": torch.ones_like(ids)}), ids.float())
