"""LoRA (low-rank adapters, via peft) on any module's attention projections, and merging them back for saving."""

from __future__ import annotations

from collections.abc import Sequence

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


def apply_lora(
    model: nn.Module,
    rank: int = 8,
    alpha: float = 16,
    dropout: float = 0.0,
    target_modules: Sequence[str] | None = None,
) -> nn.Module:
    """Add LoRA adapters to ``model`` in place and make them its only trainable parameters.

    Each targeted Linear ``W`` becomes ``W x + (alpha / rank) B A x`` with ``A`` ``(rank, in)`` and ``B``
    ``(out, rank)``, ``B`` starting at zero (so the output is unchanged until training). Everything else in
    ``model`` is frozen: apply it to the backbone only when a head must train too. Call `merge_lora` before
    saving.

    Args:
        model: any module (a Hugging Face encoder, a timm ViT, a `TailoredModel`'s backbone, ...).
        rank: rank of the update.
        alpha: scale numerator of the update.
        dropout: dropout on the adapter's input during training.
        target_modules: names (or name suffixes) of the Linear layers to adapt; default: `default_target_modules`.

    Returns:
        ``model`` itself.

    Example:
        >>> encoder = apply_lora(build_backbone("all-MiniLM-L6-v2").module, rank=8)
        >>> sum(p.numel() for p in encoder.parameters() if p.requires_grad)  # 6 layers x 2 x (8*384 + 384*8)
        73728
    """
    from peft import LoraConfig, inject_adapter_in_model

    if rank < 1:
        raise ValueError(f"rank must be a positive integer, got {rank}")
    targets = list(target_modules) if target_modules is not None else default_target_modules(model)
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, bias="none")
    return inject_adapter_in_model(config, model)


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
