"""Heads: the `Head` contract (config round trips, the registry, user heads through save/load) and pooling."""

import importlib
import json
import pkgutil

import numpy as np
import pytest
import torch
from torch import nn

import finetuner
from finetuner.tailor import (
    ClassificationHead,
    FeaturePool,
    Head,
    LinearHead,
    ProjectionHead,
    check_head,
    create_head,
    head_from_config,
    heads,
    list_heads,
    to_embedding_model,
)

HEADS = [
    LinearHead(8, 4),
    LinearHead(8, 4, normalize=True),
    ProjectionHead(8, 4),
    ProjectionHead(8, 4, num_layers=2, hidden_features=16, normalize=True),
    ProjectionHead(8, 4, num_layers=1),
    ClassificationHead(8, 3),
]


class ScaledHead(Head, name="scaled"):
    """A user's head: defining it is all it takes to build it by name, save it and load it."""

    def __init__(self, in_features: int, out_features: int, scale: float = 2.0):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * torch.tanh(self.linear(x))

    def config(self) -> dict:
        return {"in_features": self.linear.in_features, "out_features": self.linear.out_features, "scale": self.scale}


@pytest.mark.parametrize("head", HEADS, ids=lambda h: json.dumps(h.to_config()))
def test_config_round_trip(head):
    config = json.loads(json.dumps(head.to_config()))  # JSON-serialisable
    assert config["type"] == type(head).__name__
    rebuilt = head_from_config(config)
    assert type(rebuilt) is type(head) and rebuilt.config() == head.config()
    assert type(head).from_config(head.config()).config() == head.config()
    rebuilt.load_state_dict(head.state_dict())
    x = torch.randn(5, 8)
    assert torch.equal(rebuilt.eval()(x), head.eval()(x))


def test_registry_holds_every_builtin_head_by_name_and_type():
    package = finetuner.tailor.heads
    modules = [importlib.import_module(f"{package.__name__}.{m.name}") for m in pkgutil.iter_modules(package.__path__)]
    defined = {
        cls
        for module in modules
        for cls in vars(module).values()
        if isinstance(cls, type) and issubclass(cls, Head) and cls.__module__ == module.__name__ and cls is not Head
    }
    assert {cls.__name__ for cls in defined} <= set(package.__all__)  # every module's head is exported
    built_in = {name for name in list_heads() if heads.HEADS.get(name).__module__.startswith(package.__name__)}
    assert {cls.head_name for cls in defined} == built_in and "scaled" in list_heads()
    assert all(heads.HEADS.get(cls.__name__) is heads.HEADS.get(cls.head_name) is cls for cls in defined)
    builtin = {"linear": LinearHead, "projection": ProjectionHead, "classification": ClassificationHead}
    for name, cls in builtin.items():
        head = create_head(name, 8, 4)
        assert type(head) is cls and head(torch.randn(2, 8)).shape == (2, 4)
        assert type(create_head(cls.__name__, 8, 4)) is cls  # the class name works too
    assert create_head("projection", 8, 4, num_layers=2, normalize=True).config()["num_layers"] == 2
    head = LinearHead(8, 4)
    assert create_head(head, 16, 2) is head  # a Head instance is used as is


def test_unknown_head_names_list_the_known_ones():
    with pytest.raises(ValueError, match=r"Unknown head 'projecton'\. Did you mean 'projection'.*\?.*'linear'"):
        create_head("projecton", 8, 4)
    with pytest.raises(ValueError, match="Unknown head type 'Mystery'.*defined"):
        head_from_config({"type": "Mystery"})


def test_a_plain_module_is_refused_with_the_fix():
    for call in (check_head, lambda h: create_head(h, 8, 4), lambda h: finetuner.tailor.attach(nn.Identity(), h)):
        with pytest.raises(ValueError, match=r"plain Linear: subclass finetuner\.tailor\.Head and implement config"):
            call(nn.Linear(8, 4))
    check_head("linear")
    check_head(ScaledHead(8, 4))


def test_a_plain_module_head_fails_at_build_time_not_at_save():
    with pytest.raises(ValueError, match=r"subclass finetuner\.tailor\.Head"):
        finetuner.build_model("test_cnn", pretrained=False, head=nn.Linear(16, 4))
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 6), nn.ReLU(), nn.Linear(6, 3))
    with pytest.raises(ValueError, match=r"subclass finetuner\.tailor\.Head"):
        to_embedding_model(model, input_size=(12,), head=nn.Linear(6, 2))


def test_a_head_name_taken_by_another_class_is_refused():
    with pytest.raises(ValueError, match="'linear' is already registered.*LinearHead"):

        class OtherLinear(Head, name="linear"):
            def config(self) -> dict:
                return {}

    with pytest.raises(ValueError, match="Unknown head type 'OtherLinear'"):  # nothing half-registered
        head_from_config({"type": "OtherLinear"})


def test_a_user_head_by_name_and_instance_saves_and_loads(tmp_path):
    images = np.random.default_rng(0).integers(0, 255, (3, 32, 32, 3), dtype=np.uint8)
    by_name = finetuner.build_model("test_cnn", pretrained=False, head="scaled", output_dim=4)
    assert type(by_name.head) is ScaledHead and by_name.head.scale == 2.0
    head = ScaledHead(16, 5, scale=3.0)
    model = finetuner.build_model("test_cnn", pretrained=False, head=head)
    assert model.head is head
    for built, folder in ((by_name, tmp_path / "by_name"), (model, tmp_path / "instance")):
        built.save(folder)
        assert json.loads((folder / "config.json").read_text())["head"]["type"] == "ScaledHead"
        loaded = finetuner.load(folder)
        assert type(loaded.head) is ScaledHead and loaded.head.config() == built.head.config()
        np.testing.assert_allclose(loaded.encode(list(images)), built.eval().encode(list(images)), rtol=1e-5, atol=1e-6)


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
