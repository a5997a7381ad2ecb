import copy
import io

import pytest
import torch
from torch import nn

from finetuner.tailor import (
    count_parameters,
    freeze,
    is_frozen,
    to_embedding_model,
    trainable_parameters,
    unfreeze,
)

from .helpers import build


def _small_net():
    return nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.5),
        nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2),
    )  # fmt: skip


def _snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _train(model: nn.Module, steps: int = 3, size=(3, 32, 32)):
    """A few SGD steps with momentum and weight decay over *all* parameters, in train mode."""
    generator = torch.Generator().manual_seed(0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.1)
    model.train()
    for _ in range(steps):
        out = model(torch.randn(4, *size, generator=generator))
        loss = out.pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def _assert_same(a: dict, b: dict, keys):
    for key in keys:
        assert torch.equal(a[key], b[key]), key


def test_frozen_backbone_is_bit_identical_after_training():
    model = to_embedding_model(build("tv_resnet18"), freeze=True, output_dim=8, input_size=(3, 32, 32))
    backbone, head = _snapshot(model.backbone), _snapshot(model.head)
    assert any(k.endswith("num_batches_tracked") for k in backbone)
    _train(model)
    assert model.head.training and not model.backbone.bn1.training  # frozen modules are put back in eval mode
    _assert_same(_snapshot(model.backbone), backbone, backbone)
    after = _snapshot(model.head)
    assert not torch.equal(after["layers.0.weight"], head["layers.0.weight"])
    assert not torch.equal(after["layers.1.running_mean"], head["layers.1.running_mean"])  # the head's BN trains


def test_partly_frozen_backbone():
    model = to_embedding_model(
        build("tv_resnet18"), freeze=["conv1", "bn1", "layer1"], output_dim=8, input_size=(3, 32, 32)
    )
    before = _snapshot(model.backbone)
    _train(model, steps=2)
    after = _snapshot(model.backbone)
    frozen = [k for k in before if k.startswith(("conv1.", "bn1.", "layer1."))]
    assert len(frozen) == 1 + 5 + 2 * 12  # conv1, bn1 (2 parameters, 3 buffers), two blocks of conv-bn-conv-bn
    _assert_same(after, before, frozen)
    assert not torch.equal(after["layer2.0.conv1.weight"], before["layer2.0.conv1.weight"])
    assert not torch.equal(after["layer2.0.bn1.running_mean"], before["layer2.0.bn1.running_mean"])
    assert after["layer2.0.bn1.num_batches_tracked"] == 2


def test_frozen_dropout_and_batchnorm_stay_in_eval_mode_after_train():
    model = freeze(_small_net())
    model.train()
    x = torch.randn(4, 3, 8, 8)
    assert torch.equal(model(x), model(x))  # no dropout
    assert model[1].num_batches_tracked == 0 and not model[3].training  # flags are forced at call time
    assert is_frozen(model) and count_parameters(model, trainable_only=True) == 0


def test_unfreeze_restores_training():
    model = unfreeze(freeze(_small_net()))
    model.train()
    model(torch.randn(4, 3, 8, 8))
    assert model[1].num_batches_tracked == 1 and model[3].training
    assert all(p.requires_grad for p in model.parameters()) and not is_frozen(model)
    assert not any(m._forward_pre_hooks for m in model.modules())


def test_unfreeze_some_layers():
    model = unfreeze(freeze(_small_net()), ["4", "5"])
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["4.weight", "4.bias", "5.weight", "5.bias"]
    model.train()
    model(torch.randn(4, 3, 8, 8))
    assert model[5].num_batches_tracked == 1 and model[1].num_batches_tracked == 0


def test_deepcopy_and_pickle_keep_frozen_behaviour():
    original = freeze(_small_net(), ["0", "1"])
    buffer = io.BytesIO()
    torch.save(original, buffer)
    buffer.seek(0)
    for model in (copy.deepcopy(original), torch.load(buffer, weights_only=False)):
        stats = model[1].running_mean.clone()
        model.train()
        model(torch.randn(4, 3, 8, 8))
        assert torch.equal(model[1].running_mean, stats) and model[1].num_batches_tracked == 0
        assert model[5].num_batches_tracked == 1  # not frozen
        assert is_frozen(model[1]) and not model[0].weight.requires_grad
        unfreeze(model).train()  # finds the copied hooks
        model(torch.randn(4, 3, 8, 8))
        assert model[1].num_batches_tracked == 1


def test_freeze_by_prefix_and_parameter_name():
    model = nn.ModuleDict({"layer1": nn.Linear(2, 2), "layer10": nn.Linear(2, 2)})
    freeze(model, "layer1")
    assert [n for n, p in model.named_parameters() if not p.requires_grad] == ["layer1.weight", "layer1.bias"]
    freeze(model, ["layer10.bias"])
    assert [p.requires_grad for p in model["layer10"].parameters()] == [True, False]
    assert trainable_parameters(model) == [model["layer10"].weight]
    assert count_parameters(model) == 12 and count_parameters(model, trainable_only=True) == 4


def test_freeze_unknown_name_lists_close_names():
    with pytest.raises(ValueError, match=r"'layer5'.*'layer4'.*display"):
        freeze(build("tv_resnet18"), ["layer5"])
    with pytest.raises(ValueError, match="non-empty"):
        freeze(_small_net(), [""])


def test_freeze_returns_the_model_in_place():
    model = _small_net()
    assert freeze(model, False) is model and all(p.requires_grad for p in model.parameters())
    assert freeze(model) is model and unfreeze(model) is model


def test_all_but_last_freezes_a_cnn_stem_with_its_blocks():
    """A CNN has no embeddings: 'all-but-last:N' freezes its stem (what comes before the blocks) too, so only the
    last N blocks and what follows them train, and the frozen part stays bit-identical."""
    import timm

    from finetuner.tailor import resolve_freeze

    cnn = timm.create_model("efficientnet_lite0", pretrained=False, num_classes=0)
    names = resolve_freeze(cnn, "all-but-last:2")
    assert names == ["conv_stem", "bn1"] + [f"blocks.{i}" for i in range(5)]
    freeze(cnn, names)
    trainable = {name.split(".")[0] + ("." + name.split(".")[1] if name.startswith("blocks") else "")
                 for name, p in cnn.named_parameters() if p.requires_grad}  # fmt: skip
    assert trainable == {"blocks.5", "blocks.6", "conv_head", "bn2"}
    before = _snapshot(cnn.conv_stem) | {f"bn1.{k}": v for k, v in _snapshot(cnn.bn1).items()}
    _train(cnn, steps=2, size=(3, 64, 64))
    after = _snapshot(cnn.conv_stem) | {f"bn1.{k}": v for k, v in _snapshot(cnn.bn1).items()}
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_all_but_last_on_a_resnet_freezes_every_stage_before_the_blocks():
    """torchvision's ResNet-50: the longest stage (layer3) is the blocks; conv1 ... layer2 come before it."""
    from torchvision.models import resnet50

    from finetuner.tailor import resolve_freeze

    names = resolve_freeze(resnet50(), "all-but-last:1")
    assert names == ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2"] + [f"layer3.{i}" for i in range(5)]
