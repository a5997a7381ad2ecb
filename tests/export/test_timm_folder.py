"""The timm format: timm loads the folder strictly (local-dir: and the pretrained_cfg_overlay file route) and gives
this model's features; the head ships beside it; what timm cannot rebuild exactly raises."""

import importlib.util
import json

import numpy as np
import pytest
import timm
import torch
from safetensors.torch import load_file

import finetuner


@pytest.fixture(scope="module")
def timm_model():
    model = finetuner.build_model("timm:test_resnet", pretrained=False, output_dim=8, head="projection")
    model.head.layers[1].running_var.uniform_(0.5, 2.0)
    return model.eval()


def _head_module(folder):
    spec = importlib.util.spec_from_file_location("finetuner_head", folder / "finetuner_head.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _features(net, x):
    with torch.no_grad():
        return net.eval()(x)


def test_local_dir_round_trip(timm_model, tmp_path, image_items):
    folder = timm_model.export(tmp_path / "timm", format="timm")
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md", "config.json", "finetuner_head.py", "head.json", "head.safetensors", "model.safetensors"
    ]
    x = torch.randn(3, *timm_model.preprocessing.input_size)
    expected = timm_model.features(x).detach()
    net = timm.create_model(f"local-dir:{folder}", pretrained=True)
    torch.testing.assert_close(_features(net, x), expected, atol=1e-5, rtol=0)
    # strict: the file holds exactly timm's keys
    fresh = timm.create_model("test_resnet", pretrained=False, num_classes=0)
    result = fresh.load_state_dict(load_file(str(folder / "model.safetensors")), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    # timm's own preprocessing settings are the model's
    data = timm.data.resolve_data_config({}, model=net)
    prep = timm_model.preprocessing
    assert (data["input_size"], tuple(data["mean"]), data["crop_pct"]) == (prep.input_size, prep.mean, prep.crop_pct)
    # the head beside it (finetuner_head.py) turns timm's features into model.encode's vectors
    head = _head_module(folder).FinetunerHead.load(str(folder))
    batch = torch.stack([prep.load(item, train=False) for item in image_items])
    vectors = head(_features(net, batch)).detach().numpy()
    np.testing.assert_allclose(vectors, timm_model.encode(image_items, num_workers=0), atol=1e-5)
    assert "FinetunerHead.load" in (folder / "README.md").read_text()


def test_pretrained_cfg_overlay_file_route(timm_model, tmp_path):
    folder = timm_model.export(tmp_path / "timm", format="timm")
    overlay = {"file": str(folder / "model.safetensors")}
    net = timm.create_model("test_resnet", pretrained=True, num_classes=0, pretrained_cfg_overlay=overlay)
    x = torch.randn(2, *timm_model.preprocessing.input_size)
    torch.testing.assert_close(_features(net, x), timm_model.features(x).detach(), atol=1e-5, rtol=0)


def test_vit_with_class_token_pooling(tmp_path):
    model = finetuner.build_model("timm:test_vit", pretrained=False, output_dim=8, head="projection").eval()
    folder = model.export(tmp_path / "vit", format="timm")
    x = torch.randn(2, *model.preprocessing.input_size)
    net = timm.create_model(f"local-dir:{folder}", pretrained=True)
    torch.testing.assert_close(_features(net, x), model.features(x).detach(), atol=1e-5, rtol=0)


def test_torchvision_resnet_maps_onto_timm(tmp_path):
    model = finetuner.build_model("torchvision:resnet18", pretrained=False).eval()
    folder = model.export(tmp_path / "resnet", format="timm")
    x = torch.randn(2, 3, 64, 64)
    net = timm.create_model(f"local-dir:{folder}", pretrained=True)
    torch.testing.assert_close(_features(net, x), model.features(x).detach(), atol=1e-5, rtol=0)
    assert json.loads((folder / "head.json").read_text())["head"] is None  # encode = the normalised features


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("timm:test_resnet", {"layer_name": "layer2"}, "layer cut at 'layer2' removed them"),
        ("torchvision:efficientnet_b0", {}, "do not map onto timm's efficientnet_b0"),
        ("torchvision:mobilenet_v3_small", {}, "has no timm architecture of that name"),
        ("test_cnn", {}, "comes from 'test'"),
    ],
)
def test_what_timm_cannot_rebuild_raises(tmp_path, name, options, message):
    model = finetuner.build_model(name, pretrained=False, output_dim=8, head="projection", **options)
    with pytest.raises(ValueError, match=message):
        model.export(tmp_path / "timm", format="timm")
    assert not (tmp_path / "timm").exists()
