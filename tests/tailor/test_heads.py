import json

import pytest
import torch
from torch import nn

from finetuner.tailor import ClassificationHead, FeaturePool, LinearHead, ProjectionHead, build_head

HEADS = [
    LinearHead(8, 4),
    LinearHead(8, 4, normalize=True),
    ProjectionHead(8, 4),
    ProjectionHead(8, 4, num_layers=2, hidden_features=16, normalize=True),
    ProjectionHead(8, 4, num_layers=1),
    ClassificationHead(8, 3),
]


@pytest.mark.parametrize("head", HEADS, ids=lambda h: json.dumps(h.config()))
def test_config_round_trip(head):
    config = json.loads(json.dumps(head.config()))  # JSON-serialisable
    rebuilt = build_head(config)
    assert type(rebuilt) is type(head) and rebuilt.config() == head.config()
    rebuilt.load_state_dict(head.state_dict())
    x = torch.randn(5, 8)
    assert torch.equal(rebuilt.eval()(x), head.eval()(x))


def test_projection_head_layers():
    head = ProjectionHead(8, 4)
    kinds = [type(m) for m in head.layers]
    assert kinds == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear]
    assert [m.out_features for m in head.layers if isinstance(m, nn.Linear)] == [8, 8, 4]  # hidden = in_features
    assert sum(isinstance(m, nn.Linear) for m in ProjectionHead(8, 4, num_layers=5).modules()) == 5
    with pytest.raises(ValueError, match="num_layers"):
        ProjectionHead(8, 4, num_layers=0)


def test_normalize():
    out = ProjectionHead(8, 4, normalize=True)(torch.randn(5, 8))
    assert torch.allclose(out.norm(dim=1), torch.ones(5))
    assert not torch.allclose(LinearHead(8, 4)(torch.randn(5, 8)).norm(dim=1), torch.ones(5))


def test_classification_head_is_the_torchvision_recipe():
    torch.manual_seed(3)
    reference = nn.Linear(512, 10)
    torch.manual_seed(3)
    head = ClassificationHead(512, 10)
    assert isinstance(head, nn.Linear) and list(head.state_dict()) == ["weight", "bias"]
    assert torch.equal(head.weight, reference.weight) and torch.equal(head.bias, reference.bias)


def test_build_head_unknown_type():
    with pytest.raises(ValueError, match="Unknown head type 'Mystery'"):
        build_head({"type": "Mystery"})


def test_feature_pool_shapes():
    pool = FeaturePool()
    x2, x4 = torch.randn(2, 5), torch.randn(2, 5, 3, 4)
    assert pool(x2) is x2
    assert torch.equal(pool(x4[:, :, :1, :1]), x4[:, :, 0, 0])
    assert torch.allclose(pool(x4), x4.mean(dim=(2, 3)))
    tokens = torch.randn(2, 7, 5)
    assert torch.equal(pool(tokens), tokens[:, 0]) and torch.equal(FeaturePool("cls")(tokens), tokens[:, 0])
    assert torch.allclose(FeaturePool("mean")(tokens), tokens.mean(1))
    assert torch.equal(FeaturePool("last")(tokens), tokens[:, -1])
    assert torch.equal(pool((tokens, torch.zeros(1))), tokens[:, 0])  # a tuple: its first element


def test_feature_pool_model_outputs():
    from transformers.modeling_outputs import BaseModelOutput, BaseModelOutputWithPooling

    hidden, pooled = torch.randn(2, 7, 5), torch.randn(2, 5)
    assert FeaturePool()(BaseModelOutputWithPooling(last_hidden_state=hidden, pooler_output=pooled)) is pooled
    assert torch.equal(FeaturePool("mean")(BaseModelOutput(last_hidden_state=hidden)), hidden.mean(1))


def test_feature_pool_config_and_errors():
    pool = FeaturePool("mean")
    assert FeaturePool.from_config(json.loads(json.dumps(pool.config()))).mode == "mean"
    with pytest.raises(ValueError, match="Unknown pooling mode"):
        FeaturePool("max")
    with pytest.raises(ValueError, match="Cannot pool"):
        FeaturePool()(torch.zeros(3))
