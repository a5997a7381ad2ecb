"""LoRA (low-rank adapters, via peft) on any module's attention projections, and merging them back for saving."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

# Attention projections to adapt, by architecture family, first match wins: BERT-like, CLIP/LLaMA-like (HF),
# fused qkv (timm ViT), GPT-2 (fused, a transformers Conv1D).
DEFAULT_TARGETS = (("query", "value"), ("q_proj", "v_proj"), ("qkv",), ("c_attn",))


def _is_linear(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D"  # GPT-2's transposed Linear


def default_target_modules(model: nn.Module) -> list[str]:
    """The attention projections LoRA adapts by default, found by scanning the model's Linear layer names.

    Example:
        >>> default_target_modules(bert)  # doctest: +SKIP
        ['query', 'value']
    """
    leaves = {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if _is_linear(module)}
    for targets in DEFAULT_TARGETS:
        if leaves.issuperset(targets):
            return list(targets)
    raise ValueError(
        f"no known attention projections in {type(model).__name__} (looked for {DEFAULT_TARGETS}): pass "
        f"target_modules=[...] chosen among its Linear layer names: {sorted(leaves)}"
    )


# peft's LoraConfig field names -> ours; both are accepted
PEFT_NAMES = {"r": "rank", "lora_alpha": "alpha", "lora_dropout": "dropout", "target_modules": "target_modules"}
DEFAULTS = {"rank": 8, "alpha": 16, "dropout": 0.0, "target_modules": None}


def apply_lora(model: nn.Module, options: bool | Mapping[str, Any] | Any = None, /, **keywords: Any) -> nn.Module:
    """Add LoRA adapters to ``model`` in place and make them its only trainable parameters.

    Each targeted Linear ``W`` becomes ``W x + (alpha / rank) B A x`` with ``A`` ``(rank, in)`` and ``B``
    ``(out, rank)``, ``B`` starting at zero (so the output is unchanged until training). Everything else in
    ``model`` is frozen: apply it to the backbone only when a head must train too. Call `merge_lora` before
    saving.

    Options (as keywords, or one dict / ``peft.LoraConfig`` as ``options``; see `lora_config`):
        rank / r: rank of the update (8).
        alpha / lora_alpha: scale numerator of the update (16).
        dropout / lora_dropout: dropout on the adapter's input during training (0).
        target_modules: names (or name suffixes) of the Linear layers to adapt; default: `default_target_modules`.

    Args:
        model: any module (a Hugging Face encoder, a timm ViT, a `TailoredModel`'s backbone, ...).
        options: ``True``/``None`` for the defaults, a dict of options, or a ``peft.LoraConfig`` used as is.
        **keywords: the options as keywords (not together with ``options``).

    Returns:
        ``model`` itself.

    Example:
        >>> encoder = apply_lora(build_backbone("all-MiniLM-L6-v2").module, rank=8)
        >>> sum(p.numel() for p in encoder.parameters() if p.requires_grad)  # 6 layers x 2 x (8*384 + 384*8)
        73728
        >>> apply_lora(other_encoder, {"r": 8, "lora_alpha": 16})  # doctest: +SKIP
        >>> apply_lora(third_encoder, peft.LoraConfig(r=4, target_modules=["query"]))  # doctest: +SKIP
    """
    from peft import inject_adapter_in_model

    if options not in (None, True) and keywords:
        raise ValueError(f"Pass LoRA options either as one dict / LoraConfig or as keywords, not both: {keywords}")
    return inject_adapter_in_model(lora_config(model, keywords if options in (None, True) else options), model)


def lora_config(model: nn.Module, options: bool | Mapping[str, Any] | Any = None) -> Any:
    """The ``peft.LoraConfig`` for ``model`` from ``fit``'s ``lora=``: ``True``/``None`` (defaults), a dict with
    our names (``rank``, ``alpha``, ``dropout``, ``target_modules``) or peft's (``r``, ``lora_alpha``,
    ``lora_dropout``), or a ``LoraConfig`` (a copy; missing ``target_modules`` filled by `default_target_modules`).

    Raises:
        ValueError: unknown options, one option under both names, a rank below 1, or another type.

    Example:
        >>> lora_config(bert, {"r": 4, "lora_alpha": 8}).lora_alpha  # doctest: +SKIP
        8
    """
    import copy

    from peft import LoraConfig

    if isinstance(options, LoraConfig):
        config = copy.deepcopy(options)
        config.target_modules = config.target_modules or default_target_modules(model)
        return config
    if options is None or options is True:
        options = {}
    if not isinstance(options, Mapping):
        raise ValueError(f"lora must be True, a dict of options or a peft.LoraConfig, got {type(options).__name__}")
    unknown = sorted(set(options) - set(PEFT_NAMES) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"Unknown LoRA options {unknown}: use {sorted(DEFAULTS)} or peft's {sorted(PEFT_NAMES)}.")
    settings = dict(DEFAULTS)
    for key, value in options.items():
        name = PEFT_NAMES.get(key, key)
        if name != key and name in options:
            raise ValueError(f"LoRA option {name!r} is given twice (as {name!r} and as peft's {key!r}): keep one.")
        settings[name] = value
    if not isinstance(settings["rank"], int) or settings["rank"] < 1:
        raise ValueError(f"rank must be a positive integer, got {settings['rank']!r}")
    targets = settings["target_modules"]
    return LoraConfig(
        r=settings["rank"],
        lora_alpha=settings["alpha"],
        lora_dropout=settings["dropout"],
        target_modules=list(targets) if targets is not None else default_target_modules(model),
        bias="none",
    )


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold the LoRA updates into the base weights, in place, and drop the adapters.

    The result is a plain module with the original parameter names and no peft layers, so its state dict loads
    into the architecture rebuilt from its spec. The merged weights keep ``requires_grad=False``, as LoRA set them.

    Returns:
        ``model`` itself (a module without adapters is returned unchanged).

    Example:
        >>> encoder = merge_lora(encoder)  # before saving
    """
    from peft.tuners.tuners_utils import BaseTunerLayer

    layers = [(name, module) for name, module in model.named_modules() if isinstance(module, BaseTunerLayer)]
    for name, layer in layers:
        layer.merge()
        parent_name, _, attribute = name.rpartition(".")
        setattr(model.get_submodule(parent_name), attribute, layer.get_base_layer())
    if layers and "peft_config" in model.__dict__:
        del model.peft_config
    return model


def has_lora(model: nn.Module) -> bool:
    """True when ``model`` holds LoRA adapters that `merge_lora` has not merged yet.

    Example:
        >>> has_lora(apply_lora(encoder))  # doctest: +SKIP
        True
    """
    from peft.tuners.tuners_utils import BaseTunerLayer

    return any(isinstance(module, BaseTunerLayer) for module in model.modules())
