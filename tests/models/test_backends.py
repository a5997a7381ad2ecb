"""Backends: which backend a name resolves to, registration rules, and a backend registered here going through
build_model, save and load; timm weights found in the Hugging Face cache without process-wide settings."""

import importlib.util

import huggingface_hub.constants
import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import finetuner
from finetuner.data.preprocessing import ImagePreprocessing
from finetuner.models import (
    Backbone,
    Backend,
    WeightsNotFoundError,
    backend_for,
    build_backbone,
    get_backend,
    list_models,
    rebuild_backbone,
    register_backend,
    unregister_backend,
)
from finetuner.models.timm_models import build_timm


@pytest.mark.parametrize(
    ("name", "backend"),
    [
        ("resnet18", "torchvision"),  # a registered entry wins over timm's own resnet18
        ("timm:resnet18", "timm"),
        ("torchvision:squeezenet1_0", "torchvision"),
        ("efficientnet_lite0", "timm"),
        ("open_clip:ViT-B-32", "clip"),  # the entry
        ("open_clip:RN50", "clip"),  # the prefix
        ("all-MiniLM-L6-v2", "hf_text"),
        ("hf:bert-base-uncased", "hf_text"),
        ("org/some-encoder", "hf_text"),
        ("timm:hf-hub:timm/vit_small_patch16_224", "timm"),  # a prefix beats the org/name rule
        ("convnext_atto", "timm"),  # any timm name, tried last
        ("test_cnn", "test"),
    ],
)
def test_names_resolve_in_order(name, backend):
    assert backend_for(name).name == backend


def test_a_folder_is_hugging_face_text_even_with_a_timm_name(tmp_path, monkeypatch):
    (tmp_path / "convnext_atto").mkdir()
    monkeypatch.chdir(tmp_path)
    assert backend_for("convnext_atto").name == "hf_text"  # priority 40 before timm's 90


def test_unknown_name_lists_close_matches_once():
    with pytest.raises(ValueError, match="Did you mean: resnet50, ") as error:
        backend_for("resnet5O")
    assert str(error.value).count("resnet50,") == 1


def test_unknown_source_and_custom_modules_say_what_to_do():
    with pytest.raises(ValueError, match="No model backend named 'nope'.*known: clip, custom"):
        get_backend("nope")
    backbone = build_backbone(nn.Linear(4, 2), input_size=(4,))
    assert backbone.backend.name == "custom"
    with pytest.raises(ValueError, match="pass the same module again"):
        rebuild_backbone(backbone.spec)


def test_test_models_live_outside_the_package():
    assert importlib.util.find_spec("finetuner.models.test_models") is None
    assert type(get_backend("test")).__module__ == "tiny_backend"  # registered by tests/conftest.py
    assert {entry.name for entry in list_models("test_*")} == {"test_cnn", "test_cnn_same", "test_vit"}


def test_names_cannot_be_registered_twice():
    class Another(Backend):
        name = "timm"

        def rebuild(self, spec, folder=None):
            raise NotImplementedError

    with pytest.raises(ValueError, match="backend named 'timm' is already registered"):
        register_backend(Another())
    with pytest.raises(ValueError, match="'resnet18' is already registered by the 'torchvision' backend"):
        get_backend("timm").register_model("resnet18", output_dim=512, weights="none")


class ConvBackend(Backend):
    """``conv:<width>``: one 3×3 convolution of that width over 3×8×8 images, average-pooled."""

    name = "conv_test"
    prefix = "conv:"

    def create(self, name, pretrained=True, **kwargs):
        spec = {"source": self.name, "width": int(name)}
        return Backbone(
            module=self.rebuild(spec),
            preprocessing=ImagePreprocessing(input_size=(3, 8, 8), crop_pct=1.0),
            spec=spec,
            example_input=torch.randn(2, 3, 8, 8),
        )

    def rebuild(self, spec, folder=None):
        return nn.Sequential(nn.Conv2d(3, spec["width"], 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())


@pytest.fixture
def conv_backend():
    backend = register_backend(ConvBackend())
    yield backend
    unregister_backend(backend.name)


def test_a_new_backend_goes_through_build_model_save_and_load(conv_backend, tmp_path):
    model = finetuner.build_model("conv:16", pretrained=False, output_dim=4)
    assert model.spec["backbone"] == {"source": "conv_test", "width": 16}
    folder = model.save(tmp_path / "model")
    images = [np.full((8, 8, 3), value, dtype=np.uint8) for value in (0, 100, 200)]
    np.testing.assert_allclose(finetuner.load(folder).encode(images), model.encode(images), rtol=1e-5, atol=1e-6)
    unregister_backend(conv_backend.name)
    with pytest.raises(ValueError, match="No model backend named 'conv_test'"):
        finetuner.load(folder)
    register_backend(conv_backend)  # for the fixture's teardown


def write_hub_cache(cache, repo_id: str, filename: str, state: dict) -> None:
    """The layout `huggingface_hub` leaves after a download: refs/main names a snapshot holding the file."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    (repo / "snapshots" / ("0" * 40)).mkdir(parents=True)
    save_file(state, str(repo / "snapshots" / ("0" * 40) / filename))


def test_timm_weights_come_from_the_hub_cache_without_changing_global_settings(tmp_path, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    with pytest.raises(WeightsNotFoundError, match="pretrained=False"):
        build_timm("test_vit")
    reference = build_timm("test_vit", pretrained=False).module
    write_hub_cache(tmp_path, "timm/test_vit.r160_in1k", "model.safetensors", reference.state_dict())
    loaded = build_timm("test_vit").module
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value)
    assert huggingface_hub.constants.HF_HUB_OFFLINE is False


def test_policies_the_api_reads_instead_of_source_names():
    policies = {b.name: (b.pools_itself, b.default_pair_loss) for b in map(get_backend, ("clip", "hf_text", "timm"))}
    assert policies == {
        "clip": (True, "CLIPLoss"),
        "hf_text": (True, "MultipleNegativesRankingLoss"),
        "timm": (False, "MultipleNegativesRankingLoss"),
    }


def test_layer_name_cuts_per_backend():
    from transformers import AutoModel, BertConfig

    from finetuner.models.clip import TINY_CONFIG, build_clip
    from finetuner.models.hf_text import HFTextEncoder

    image = build_backbone("test_cnn", pretrained=False)
    assert image.backend.cut(image, "layer1") == "layer1"  # left to Tailor's chop
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=3, num_attention_heads=2, intermediate_size=32)
    text = Backbone(HFTextEncoder(AutoModel.from_config(config)), None, {"source": "hf_text", "config": {}})
    assert text.backend.cut(text, "transformer.encoder.layer.1") is None  # done: the first 2 blocks are kept
    assert len(text.module.transformer.encoder.layer) == 2 and text.spec["config"]["num_hidden_layers"] == 2
    clip = build_clip(TINY_CONFIG)
    assert clip.backend.cut(clip, None) is None
    with pytest.raises(ValueError, match="not supported for CLIP dual encoders"):
        clip.backend.cut(clip, "clip.visual")
