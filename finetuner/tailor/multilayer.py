"""``layer_features``: the pooled outputs of several layers of a model, from one forward pass."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from finetuner.tailor._inputs import Inputs, call, inference, make_inputs, unknown_name
from finetuner.tailor._trace import trace
from finetuner.tailor.inspection import capture, find_embedding
from finetuner.tailor.pooling import FeaturePool
from finetuner.tailor.surgery import EarlyExit


class LayerFeatures(nn.Module):
    """Runs a model once and returns ``{layer name: (B, D) features}`` for several of its layers.

    Forward hooks pool each layer's output (of its last call) with its `FeaturePool`; the forward pass stops
    (`EarlyExit`) once the last of the layers has returned, so nothing after it is computed. Build it with
    `layer_features`.

    Attributes:
        layers: the layer names, in the order given.
        pools: one `FeaturePool` per layer, in the same order.
        dims: layer name -> size of its pooled features.
        embedding_layer: the model's `default_embedding_layer` (None when it has none).
    """

    def __init__(self, model: nn.Module, layers: Sequence[str], pools: Sequence[FeaturePool], stop: str, calls: int):
        super().__init__()
        self.layers = list(layers)
        self.pools = nn.ModuleList(pools)
        self.dims: dict[str, int] = {}
        self.embedding_layer: str | None = None
        self._outputs: dict[str, torch.Tensor] = {}
        for name, pool in zip(self.layers, self.pools, strict=True):
            # registered before EarlyExit's own hook, so the last layer is pooled before the pass stops
            model.get_submodule(name).register_forward_hook(self._Keep(self._outputs, name, pool))
        self.model = EarlyExit(model, stop, calls)

    class _Keep:
        """A picklable forward hook that pools a layer's output into a shared dict (clone: a later in-place
        operation must not change it)."""

        def __init__(self, outputs: dict[str, torch.Tensor], name: str, pool: FeaturePool):
            self.outputs, self.name, self.pool = outputs, name, pool

        def __call__(self, module: nn.Module, args: tuple, output: Any) -> None:
            self.outputs[self.name] = self.pool(output).clone()

    def forward(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        self._outputs.clear()
        self.model(*args, **kwargs)
        outputs = {name: self._outputs[name] for name in self.layers}
        self._outputs.clear()
        return outputs


def layer_features(
    model: nn.Module,
    layers: Sequence[str],
    input_size: int | Sequence[int] | None = None,
    *,
    example_input: Inputs | None = None,
    input_dtype: torch.dtype = torch.float32,
) -> LayerFeatures:
    """A copy of ``model`` that returns the pooled outputs of ``layers`` from one forward pass.

    Each layer is pooled as ``to_embedding_model`` pools it: ``FeaturePool("auto")``, except the default
    embedding layer, which gets the pooling that reproduces the classifier's input (e.g. the class token). So
    ``layer_features(model, [name])(x)[name]`` equals ``to_embedding_model(model, name).features(x)`` (and
    ``pool(chop(model, name)(x))``). The input model is not modified.

    Args:
        model: any ``nn.Module``.
        layers: names from ``model.named_modules()`` (see ``display``); each must run on the example input.
        input_size: shape of one sample without the batch dimension (guessed for image models).
        example_input: a tensor, or a dict of tensors passed as keyword arguments.
        input_dtype: dtype of the dummy input built from ``input_size``.

    Returns:
        A `LayerFeatures` module: ``module(inputs) -> {name: (B, D)}``.

    Raises:
        ValueError: no layers, an unknown layer name, or a layer that did not run or whose output cannot be pooled.

    Example:
        >>> taps = layer_features(torchvision.models.resnet18(), ["layer3", "avgpool"], (3, 64, 64))
        >>> {k: v.shape for k, v in taps(torch.zeros(2, 3, 64, 64)).items()}
        {'layer3': torch.Size([2, 256]), 'avgpool': torch.Size([2, 512])}
    """
    if not layers:
        raise ValueError("layer_features needs at least one layer name (finetuner.tailor.display lists them).")
    inputs = make_inputs(model, input_size, example_input, input_dtype)
    names = [name for name, _ in model.named_modules(remove_duplicate=False) if name]
    for name in layers:
        if name not in names:
            raise unknown_name(name, names)
    records, output = trace(model, inputs, on_output=capture)
    by_id = {id(r.module): r for r in records}
    try:
        embedding, mode = find_embedding(records, output)
    except ValueError:
        embedding, mode = None, "auto"
    chosen = [by_id[id(model.get_submodule(name))] for name in layers]
    for name, record in zip(layers, chosen, strict=True):
        if record.last_end < 0:
            raise ValueError(f"Layer {name!r} did not run on the example input; pick layers that run.")
    last = max(chosen, key=lambda r: r.last_end)
    work = copy.deepcopy(model)
    pools = [FeaturePool(mode if name == embedding else "auto") for name in layers]
    module = LayerFeatures(work, layers, pools, layers[chosen.index(last)], last.calls)
    module.train(model.training)
    try:
        with inference(module):
            outputs = call(module, inputs)
    except (TypeError, ValueError) as error:
        raise ValueError(f"Cannot pool the output of one of {list(layers)}: {error}") from error
    module.dims = {name: int(output.shape[1]) for name, output in outputs.items()}
    module.embedding_layer = embedding
    return module
