"""Tiny random models and comparison helpers for the tailor tests."""

from __future__ import annotations

import functools

import torch
from torch import nn

IMAGE = (3, 32, 32)


class RNNEncoder(nn.Module):
    """Returns a tuple, like many recurrent wrappers."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(8, 16, batch_first=True)

    def forward(self, x):
        out, (h, _) = self.lstm(x)
        return out, h


class RNNClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = RNNEncoder()
        self.fc = nn.Linear(16, 3)

    def forward(self, x):
        out, _ = self.encoder(x)
        return self.fc(out[:, -1])


class Twice(nn.Module):
    """Calls ``act`` twice and ``lin`` once; ``unused`` never runs."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 6)
        self.act = nn.ReLU()
        self.unused = nn.Linear(6, 6)
        self.out = nn.Linear(6, 2)

    def forward(self, x):
        return self.out(self.act(self.lin(self.act(x))))


def _bert(pooler: bool = True):
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
    )
    return BertModel(config, add_pooling_layer=pooler)


def _hf_vit():
    from transformers import ViTConfig, ViTModel

    config = ViTConfig(
        image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32
    )
    return ViTModel(config)


def _tv(name, **kw):
    import torchvision

    return getattr(torchvision.models, name)(weights=None, **kw)


def _timm(name, **kw):
    import timm

    return timm.create_model(name, pretrained=False, **kw)


def _tv_convnext():
    """torchvision's ConvNeXt class (stem, stages, LayerNorm2d + Flatten + Linear classifier), three thin stages."""
    from torchvision.models.convnext import CNBlockConfig, ConvNeXt

    return ConvNeXt([CNBlockConfig(16, 32, 1), CNBlockConfig(32, 64, 1), CNBlockConfig(64, None, 1)], num_classes=10)


def _tv_vit():
    import torchvision

    return torchvision.models.VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64
    )


# name -> (builder, input_size or None for an example_input)
BUILDERS = {
    "tv_resnet18": (lambda: _tv("resnet18"), IMAGE),
    "tv_resnet50": (lambda: _tv("resnet50"), (3, 64, 64)),
    "tv_efficientnet_b0": (lambda: _tv("efficientnet_b0"), IMAGE),
    "tv_mobilenet_v3_small": (lambda: _tv("mobilenet_v3_small"), IMAGE),
    "tv_convnext": (_tv_convnext, IMAGE),
    "tv_vit": (_tv_vit, IMAGE),
    "timm_resnet18": (lambda: _timm("resnet18"), IMAGE),
    "timm_vit_tiny": (lambda: _timm("vit_tiny_patch16_224", img_size=32), IMAGE),
    "timm_convnext_atto": (lambda: _timm("convnext_atto"), IMAGE),
    "timm_efficientnet_lite0": (lambda: _timm("tf_efficientnet_lite0"), IMAGE),
    "timm_hybrid_vit": (lambda: _timm("vit_tiny_r_s16_p8_224", img_size=32), IMAGE),
    "hf_bert": (_bert, None),
    "hf_bert_no_pooler": (lambda: _bert(pooler=False), None),
    "hf_vit": (_hf_vit, IMAGE),
    "mlp": (lambda: nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 5)), (10,)),
    "rnn": (RNNClassifier, (5, 8)),
}


@functools.cache
def build(name: str) -> nn.Module:
    """The shared model ``name`` in eval mode (cached: never modify it, deepcopy it)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return BUILDERS[name][0]().eval()


def make_input(kwargs: dict):
    """The input the tests feed to models: the example input, or a fresh random batch of 2."""
    if "example_input" in kwargs:
        return kwargs["example_input"]
    return torch.randn(2, *kwargs["input_size"], generator=torch.Generator().manual_seed(7))


def run(model: nn.Module, x):
    with torch.no_grad():
        return model(**x) if isinstance(x, dict) else model(x)


def hooked_output(model: nn.Module, layer_name: str, x):
    """The output of ``layer_name`` on the untouched model (last call), cloned at hook time."""
    seen = {}

    def hook(module, args, output):
        seen["output"] = _clone(output)

    handle = model.get_submodule(layer_name).register_forward_hook(hook)
    try:
        run(model.eval(), x)
    finally:
        handle.remove()
    return seen["output"]


def _clone(obj):
    if isinstance(obj, torch.Tensor):
        return obj.clone()
    if isinstance(obj, dict):
        return {k: _clone(v) for k, v in obj.items()}
    if isinstance(obj, tuple | list):
        return tuple(_clone(v) for v in obj)
    return obj


def assert_equal(a, b):
    """Exact equality of tensors, or of (nested) tuples / dicts of them."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b)
    elif isinstance(a, dict):
        assert dict(b).keys() == a.keys()
        for key in a:
            assert_equal(a[key], b[key])
    elif isinstance(a, tuple | list):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_equal(x, y)
    else:
        assert a == b
