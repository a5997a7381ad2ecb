"""The one tailoring step: `freeze` in the names of the original model, for every task, model kind and entry."""

import pytest
import torch

import finetuner
from finetuner.config import ModelConfig
from finetuner.models import build_backbone
from finetuner.tailor import is_frozen
from finetuner.tailoring import tailor_backbone

CASES = [("timm:test_vit", ["blocks.0", "patch_embed"]), ("test_cnn", ["conv1", "layer1"])]


def frozen_names(model):
    return {name for name, p in model.backbone.named_parameters() if not p.requires_grad}


@pytest.mark.parametrize("name,freeze", CASES)
@pytest.mark.parametrize("task", ["classification", "embedding"])
def test_freeze_lists_use_the_original_names_for_every_task(name, freeze, task):
    model = finetuner.build_model(name, pretrained=False, task=task, freeze=freeze, classes=["a", "b"], output_dim=8)
    frozen = frozen_names(model)
    trainable = {n for n, p in model.backbone.named_parameters() if p.requires_grad}
    assert frozen and trainable  # some layers frozen, the rest trains
    for layer in freeze:  # every parameter under a named layer is frozen, whatever prefix the cut added
        assert any(layer in n for n in frozen)
        assert not any(f".{layer}." in f".{n}" for n in trainable)
    assert all(p.requires_grad for p in model.head.parameters())
    out = model(torch.randn(2, *model.preprocessing.input_size))
    assert out.shape == (2, 2 if task == "classification" else 8)


@pytest.mark.parametrize("task", ["classification", "embedding"])
def test_freeze_true_freezes_the_whole_cut_backbone(task):
    model = finetuner.build_model(
        "test_cnn", pretrained=False, task=task, freeze=True, classes=["a", "b"], output_dim=8
    )
    assert is_frozen(model.backbone)
    assert any(p.requires_grad for p in model.head.parameters())


def test_unknown_freeze_name_lists_close_ones_for_classification_too():
    with pytest.raises(ValueError, match="'blocks.0'"):
        finetuner.build_model("timm:test_vit", pretrained=False, task="classification", freeze=["blockz.0"],
                              classes=["a", "b"])


def test_block_forms_on_a_vit():
    first = finetuner.build_model("timm:test_vit", pretrained=False, freeze="first:1", output_dim=8)
    rest = finetuner.build_model("timm:test_vit", pretrained=False, freeze="all-but-last:1", output_dim=8)
    blocks = len(build_backbone("timm:test_vit", pretrained=False).module.blocks)
    frozen_blocks = {n.split("blocks.")[1].split(".")[0] for n in frozen_names(rest) if "blocks." in n}
    assert frozen_blocks == {str(i) for i in range(blocks - 1)}
    assert {n.split("blocks.")[1].split(".")[0] for n in frozen_names(first) if "blocks." in n} == {"0"}
    assert any("pos_embed" in n for n in frozen_names(first))
    with pytest.raises(ValueError, match="all-but-last:0"):
        finetuner.build_model("timm:test_vit", pretrained=False, freeze=f"all-but-last:{blocks + 1}", output_dim=8)


def test_the_backbone_given_is_not_changed():
    backbone = build_backbone("test_cnn", pretrained=False)
    tailor_backbone(backbone, freeze_layers=["conv1"], output_dim=8)
    assert all(p.requires_grad for p in backbone.module.parameters())


@pytest.mark.parametrize(
    "freeze,message",
    [(3, "freeze must be"), ([""], "non-empty"), (["conv1", 2], "non-empty"), ("first:two", "first:N")],
)
def test_model_config_checks_freeze_shape(freeze, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(freeze=freeze)
    assert ModelConfig(freeze=("conv1", "layer1")).freeze == ["conv1", "layer1"]
