"""Dummy inputs, eval-mode runs and name look-ups shared by the tailor functions."""

from __future__ import annotations

import contextlib
import difflib
import itertools
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn

Inputs = torch.Tensor | Mapping[str, Any]
DEFAULT_IMAGE_SIZE = (3, 224, 224)


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a module without any)."""
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        return tensor.device
    return torch.device("cpu")


def default_input_size(model: nn.Module) -> tuple[int, ...]:
    """Guess the per-sample input shape of ``model`` (used when neither input_size nor example_input is given).

    Rules, first match wins: timm patch embeddings (``patch_embed.img_size``), timm ``pretrained_cfg``,
    torchvision ``VisionTransformer.image_size``, a Hugging Face vision config (``image_size``), then the first
    layer with weights (``Linear`` -> ``(in_features,)``, ``Conv2d`` -> ``(in_channels, 224, 224)``, ...),
    else ``(3, 224, 224)``. Text models (an ``Embedding`` first, or a Hugging Face text config) raise
    ``ValueError``: they need ``example_input``.
    """
    patch_embed = getattr(model, "patch_embed", None)
    img_size = getattr(patch_embed, "img_size", None)
    if img_size is not None:
        in_chans = next((m.in_channels for m in patch_embed.modules() if isinstance(m, nn.Conv2d)), 3)
        return (in_chans, *_pair(img_size))
    cfg = getattr(model, "pretrained_cfg", None)
    if isinstance(cfg, Mapping) and cfg.get("input_size"):
        return tuple(cfg["input_size"])
    if isinstance(getattr(model, "image_size", None), int) and isinstance(getattr(model, "conv_proj", None), nn.Conv2d):
        return (model.conv_proj.in_channels, model.image_size, model.image_size)  # torchvision ViT
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "model_type"):  # Hugging Face
        if getattr(config, "image_size", None) is not None:
            return (getattr(config, "num_channels", 3), *_pair(config.image_size))
        raise ValueError(
            f"{type(model).__name__} is a text model: pass example_input=, e.g. dict(tokenizer(['a text'], "
            "return_tensors='pt')) with input_ids and attention_mask."
        )
    for module in model.modules():
        if isinstance(module, nn.Linear):
            return (module.in_features,)
        if isinstance(module, nn.Conv1d):
            return (module.in_channels, 224)
        if isinstance(module, nn.Conv2d):
            return (module.in_channels, 224, 224)
        if isinstance(module, nn.Conv3d):
            return (module.in_channels, 16, 112, 112)
        if isinstance(module, nn.RNNBase) and module.batch_first:
            return (16, module.input_size)
        if isinstance(module, nn.Embedding | nn.RNNBase):
            raise ValueError(f"Cannot guess an input for {type(model).__name__}: pass input_size= or example_input=.")
    return DEFAULT_IMAGE_SIZE


def _pair(size: int | Sequence[int]) -> tuple[int, ...]:
    return (size, size) if isinstance(size, int) else tuple(size)


def make_inputs(
    model: nn.Module,
    input_size: int | Sequence[int] | None = None,
    example_input: Inputs | None = None,
    input_dtype: torch.dtype = torch.float32,
) -> Inputs:
    """The input a tailor function runs ``model`` on: ``example_input`` as given (moved to the model's device), or a
    batch of 2 random samples of shape ``input_size`` (float: standard normal; integer dtypes: ids in {0, 1}).

    Uses its own seeded generator, so the global random state is left alone and results are reproducible.
    """
    if input_size is not None and example_input is not None:
        raise ValueError("Pass either input_size= or example_input=, not both.")
    device = model_device(model)
    if example_input is not None:
        if isinstance(example_input, torch.Tensor):
            return example_input.to(device)
        if isinstance(example_input, Mapping):
            return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in example_input.items()}
        raise TypeError(f"example_input must be a tensor or a dict of tensors, got {type(example_input).__name__}")
    size = default_input_size(model) if input_size is None else _as_size(input_size)
    generator = torch.Generator().manual_seed(0)
    shape = (2, *size)
    if input_dtype.is_floating_point or input_dtype.is_complex:
        x = torch.randn(shape, generator=generator).to(input_dtype)
    else:
        x = torch.randint(0, 2, shape, generator=generator).to(input_dtype)
    return x.to(device)


def _as_size(input_size: int | Sequence[int]) -> tuple[int, ...]:
    size = (input_size,) if isinstance(input_size, int) else tuple(input_size)
    if not size or not all(isinstance(s, int) and s > 0 for s in size):
        raise ValueError(
            f"input_size must be positive ints without the batch dimension, e.g. (3, 224, 224); got {input_size!r}"
        )
    return size


def call(model: nn.Module, inputs: Inputs) -> Any:
    """``model(**inputs)`` for a dict, ``model(inputs)`` for a tensor."""
    return model(**inputs) if isinstance(inputs, Mapping) else model(inputs)


@contextlib.contextmanager
def inference(model: nn.Module) -> Iterator[None]:
    """Eval mode under ``no_grad``; every module's ``training`` flag is restored afterwards."""
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for module, flag in flags:
            module.training = flag


def run(model: nn.Module, inputs: Inputs) -> Any:
    """Run ``model`` on ``inputs``; a failure is re-raised with a hint about the input."""
    try:
        return call(model, inputs)
    except Exception as exc:
        raise RuntimeError(
            f"Running {type(model).__name__} on the example input {describe(inputs)} failed: {exc}\n"
            "Pass input_size= (without the batch dimension) or example_input= that the model accepts."
        ) from exc


def describe(inputs: Inputs) -> str:
    if isinstance(inputs, torch.Tensor):
        return f"of shape {tuple(inputs.shape)}"
    return (
        "{"
        + ", ".join(f"{k}: {tuple(v.shape) if isinstance(v, torch.Tensor) else v!r}" for k, v in inputs.items())
        + "}"
    )


def unknown_name(name: str, valid: Sequence[str], what: str = "layer") -> ValueError:
    """A ``ValueError`` for an unknown layer name that lists the closest valid names."""
    close = difflib.get_close_matches(name, list(valid), n=5, cutoff=0.5)
    hint = "closest: " + ", ".join(repr(c) for c in close) if close else "no close match"
    return ValueError(
        f"Unknown {what} name {name!r} ({hint}). "
        "List all layer names with finetuner.tailor.display(model, input_size=...)."
    )


def same(a: Any, b: Any) -> bool:
    """Whether two outputs (tensors, or tuples/dicts of them) hold the same values (tight float tolerance)."""
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        if a.shape != b.shape or a.dtype != b.dtype:
            return False
        if a.is_floating_point():
            return torch.allclose(a, b, rtol=1e-5, atol=1e-6, equal_nan=True)
        return torch.equal(a, b)
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return list(a.keys()) == list(b.keys()) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, tuple | list) and isinstance(b, tuple | list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    containers = torch.Tensor | Mapping | tuple | list
    if isinstance(a, containers) or isinstance(b, containers):
        return False
    return a is b or (type(a) is type(b) and a == b)
