"""A tiny random open_clip dual encoder: a CLIPLoss step lowers the loss; rebuild + safetensors round trip."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from finetuner.models import WeightsNotFoundError, build_backbone, rebuild_backbone
from finetuner.models.clip import TINY_CONFIG, build_clip
from finetuner.training.pair_losses import CLIPLoss

CAPTIONS = ["a red square", "a blue circle", "a green line", "a black dot"]


@pytest.fixture(scope="module")
def clip():
    torch.manual_seed(0)
    return build_clip(TINY_CONFIG)


def test_one_step_lowers_the_clip_loss(clip):
    model, loss_fn = clip.module, CLIPLoss()
    images, texts = torch.randn(4, 3, 32, 32), clip.extras["tokenizer"](CAPTIONS)
    assert texts.shape == (4, 16)
    # small steps: the gradients of random tiny towers are steep
    optimizer = torch.optim.SGD([*model.parameters(), *loss_fn.parameters()], lr=1e-4)
    losses = []
    for _ in range(2):
        loss = loss_fn(model.encode_image(images), model.encode_text(texts))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[1] < losses[0]
    assert model.clip.logit_scale.grad is None  # the temperature is CLIPLoss's


def test_rebuild_and_safetensors_round_trip(clip, tmp_path):
    model = clip.module.eval()
    save_file(model.state_dict(), tmp_path / "model.safetensors")
    spec = json.loads(json.dumps(clip.spec))
    torch.manual_seed(1)
    rebuilt = rebuild_backbone(spec, tmp_path).eval()
    rebuilt.load_state_dict(load_file(tmp_path / "model.safetensors"))
    images, texts = clip.example_input, clip.extras["tokenizer"](CAPTIONS)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(images), model(images))
        torch.testing.assert_close(rebuilt.encode_text(texts), model.encode_text(texts))
    assert clip.preprocessing.input_size == (3, 32, 32)


def test_weights_file_loads_into_the_open_clip_model(clip, tmp_path):
    save_file(clip.module.clip.state_dict(), tmp_path / "open_clip_model.safetensors")
    loaded = build_clip(TINY_CONFIG, pretrained=True, weights=tmp_path / "open_clip_model.safetensors").module
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(clip.example_input), clip.module.eval()(clip.example_input))


def test_pretrained_weights_must_be_given():
    with pytest.raises(WeightsNotFoundError, match="weights='path/to/open_clip_model.safetensors'"):
        build_backbone("open_clip:ViT-B-32")
    with pytest.raises(ValueError, match="unknown open_clip architecture"):
        build_clip("open_clip:no-such-net")
