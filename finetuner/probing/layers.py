"""Candidate layers of a backbone, and their pooled features from one forward pass, cached one key per layer."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from finetuner import tailor
from finetuner.models import Backbone
from finetuner.tailor.blocks import find_blocks
from finetuner.training.cache import FeatureCache, fingerprint_features

DEFAULT_LAYER_COUNT = 4


@dataclass(frozen=True)
class Candidate:
    """One layer the probe tries.

    Attributes:
        name: the layer's name in the backbone (as `finetuner.display` lists it).
        layer_name: what to pass as ``fit(layer_name=...)`` / ``build_model(layer_name=...)`` to get exactly these
            features: None for the backbone's default embedding layer, else ``name``.
        pool: the `FeaturePool` mode (``cls``, ``mean``, ...) or, for text encoders, the token pooling.
        dim: size of the pooled features.
        fingerprint: `fingerprint_features` of the chopped backbone and its pooling: the cache key's model part,
            the same that `fit` computes for a frozen backbone cut at this layer.
    """

    name: str
    layer_name: str | None
    pool: str
    dim: int
    fingerprint: str


def is_text(backbone: Backbone) -> bool:
    return backbone.spec.get("source") == "hf_text"


def image_layers(module: nn.Module, example_input: Any, count: int = DEFAULT_LAYER_COUNT) -> list[str]:
    """The default candidates of an image backbone, in the order they run: the last ``count - 1`` stages before
    the default embedding layer whose pooled features differ from it, and that layer itself.

    The stages are the children (with parameters) of the *trunk*: starting at the root, the trunk moves into its
    largest child while that child holds at least half of its parameters and has more children with parameters
    (so ``blocks`` of a timm ViT or EfficientNet, ``features`` of a torchvision EfficientNet, the root of a ResNet).

    Example:
        >>> image_layers(torchvision.models.resnet18(), torch.randn(2, 3, 64, 64))  # doctest: +SKIP
        ['layer1', 'layer2', 'layer3', 'avgpool']
    """
    return _auto_image_taps(module, example_input, count)[1]


def _auto_image_taps(module: nn.Module, example_input: Any, count: int) -> tuple[tailor.LayerFeatures, list[str]]:
    """`image_layers` and a `LayerFeatures` that computes them (and possibly one more layer)."""
    infos = tailor.summary(module, example_input=example_input)
    embedding = tailor.default_embedding_layer(module, example_input=example_input)
    order = {info.name: index for index, info in enumerate(infos)}
    params = {info.name: info.params for info in infos} | {"": sum(p.numel() for p in module.parameters())}

    def stages(parent: str) -> list[str]:
        prefix = parent + "." if parent else ""
        return [
            info.name
            for info in infos
            if info.name.startswith(prefix) and "." not in info.name[len(prefix) :] and info.params and info.calls == 1
        ]

    trunk = ""
    while stages(trunk):
        body = max(stages(trunk), key=params.__getitem__)
        if len(stages(body)) <= len(stages(trunk)) or 2 * params[body] < params[trunk]:
            break
        trunk = body
    before = [
        name
        for name in stages(trunk)
        if order[name] < order[embedding] and name != embedding and not embedding.startswith(name + ".")
    ][-count:]  # one spare: the last stage often pools to the embedding itself (a ResNet's layer4 and its avgpool)
    taps = tailor.layer_features(module, [*before, embedding], example_input=example_input)
    with torch.no_grad():
        outputs = _call(taps.eval(), example_input)
    target = outputs[embedding]
    kept = [
        name
        for name in before
        if outputs[name].shape != target.shape or not torch.allclose(outputs[name], target, rtol=1e-4, atol=1e-5)
    ]
    return taps, (kept[-(count - 1) :] if count > 1 else []) + [embedding]


def text_layers(encoder: nn.Module, count: int = DEFAULT_LAYER_COUNT) -> list[str]:
    """The default candidates of a text encoder: its last ``count`` transformer blocks.

    Example:
        >>> text_layers(backbone.module, 2)  # doctest: +SKIP
        ['transformer.encoder.layer.4', 'transformer.encoder.layer.5']
    """
    name, blocks = find_blocks(encoder)
    return [f"{name}.{i}" for i in range(len(blocks))][-count:]


class TextBlockFeatures(nn.Module):
    """An `HFTextEncoder`'s token pooling (attention mask included) of the hidden states after several of its
    blocks, from one pass: what the encoder truncated after each block (`truncate_blocks`) would return.

    Args:
        encoder: the `HFTextEncoder`.
        blocks: layer name -> index of the block after which its features are taken.
    """

    def __init__(self, encoder: nn.Module, blocks: Mapping[str, int]):
        super().__init__()
        self.encoder, self.blocks = encoder, dict(blocks)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        output = self.encoder.transformer(
            input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True, **extra
        )
        # hidden_states[0] is the embedding layer's output, so block i's output is hidden_states[i + 1]
        return {name: self.encoder.pool(output.hidden_states[i + 1], attention_mask) for name, i in self.blocks.items()}


def layer_candidates(
    backbone: Backbone, layers: int | Sequence[str] = DEFAULT_LAYER_COUNT
) -> tuple[nn.Module, list[Candidate]]:
    """The module that computes every candidate's features in one pass (``module(inputs) -> {name: (B, D)}``),
    and the candidates.

    Args:
        backbone: an image backbone (any ``nn.Module``) or a Hugging Face text encoder (``source`` ``hf_text``).
        layers: how many candidates to pick (see `image_layers`, `text_layers`), or the layer names.

    Raises:
        ValueError: CLIP backbones, an unknown layer name (text: not a transformer block), no layers.

    The input module is not changed (the feature module works on a copy).

    Example:
        >>> backbone = finetuner.models.build_backbone(torchvision.models.resnet18(), input_size=(3, 64, 64))
        >>> module, candidates = layer_candidates(backbone)  # doctest: +SKIP
        >>> [(c.name, c.layer_name) for c in candidates]  # doctest: +SKIP
        [('layer1', 'layer1'), ('layer2', 'layer2'), ('layer3', 'layer3'), ('avgpool', None)]
    """
    if backbone.spec.get("source") == "clip":
        raise ValueError("probe does not support CLIP dual encoders: probe its image tower as an nn.Module instead.")
    valid = layers >= 1 if isinstance(layers, int) else not isinstance(layers, str) and len(layers) > 0
    if not valid:
        raise ValueError(f"layers must be a number of layers (1 or more) or a list of layer names, got {layers!r}.")
    if is_text(backbone):
        return _text_candidates(backbone, layers)
    module, example = backbone.module, backbone.example_input
    if isinstance(layers, int):
        taps, names = _auto_image_taps(module, example, layers)
    else:
        names = list(layers)
        taps = tailor.layer_features(module, names, example_input=example)
    candidates = []
    for name in names:
        pool = tailor.FeaturePool(taps.pools[taps.layers.index(name)].mode)
        fingerprint = fingerprint_features(tailor.chop(module, name, example_input=example), pool)
        layer_name = None if name == taps.embedding_layer else name
        candidates.append(Candidate(name, layer_name, pool.mode, taps.dims[name], fingerprint))
    return taps, candidates


def _text_candidates(backbone: Backbone, layers: int | Sequence[str]) -> tuple[nn.Module, list[Candidate]]:
    from finetuner.models.hf_text import truncate_blocks

    encoder = backbone.module
    every = text_layers(encoder, count=len(find_blocks(encoder)[1]))
    names = every[-layers:] if isinstance(layers, int) else list(layers)
    unknown = [name for name in names if name not in every]
    if unknown:
        raise ValueError(
            f"{unknown} are not transformer blocks of this text encoder: use names from {every[0]!r} to {every[-1]!r}."
        )
    candidates = []
    for name in names:
        truncated = truncate_blocks(copy.deepcopy(encoder), name)
        fingerprint = fingerprint_features(truncated, tailor.FeaturePool())
        layer_name = None if name == every[-1] else name
        candidates.append(Candidate(name, layer_name, encoder.pooling, encoder.output_dim, fingerprint))
    blocks = {name: every.index(name) for name in names}
    return TextBlockFeatures(copy.deepcopy(encoder), blocks), candidates  # a copy: the caller's model stays put


def cached_features(
    backbone: Backbone,
    module: nn.Module,
    candidates: Sequence[Candidate],
    item_lists: Mapping[str, Sequence[Any]],
    cache: FeatureCache,
    *,
    device: torch.device,
    batch_size: int = 64,
    num_workers: int | str = "auto",
    autocast_dtype: torch.dtype | None = None,
) -> dict[str, dict[str, torch.Tensor]]:
    """``{list name: {layer: (N, D) features}}``: one pass of ``module`` over each item list, each layer cached
    under its own key (the same key `fit` uses for a frozen backbone cut at that layer, on the same items)."""
    if backbone.preprocessing is None:
        raise ValueError(
            "This backbone has no preprocessing, so probe cannot read raw items: build it with input_size=(C, H, W)."
        )
    module.to(device, memory_format=torch.channels_last).eval()
    fingerprints = {c.name: c.fingerprint for c in candidates}

    def run(inputs: Any) -> dict[str, torch.Tensor]:
        return _call(module, inputs)

    found = {}
    for list_name, items in item_lists.items():
        views = cache.named_features(
            run,
            fingerprints,
            items,
            backbone.preprocessing,
            device=device,
            batch_size=batch_size,
            num_workers=num_workers,
            autocast_dtype=autocast_dtype,
            description=list_name,
        )
        found[list_name] = {name: tensors[0] for name, tensors in views.items()}
    return found


def _call(module: nn.Module, inputs: Any) -> Any:
    return module(**inputs) if isinstance(inputs, Mapping) else module(inputs)
