"""``freeze`` / ``unfreeze``: frozen means no gradient, no running-statistics update, no dropout, ever."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from finetuner.tailor._inputs import unknown_name
from finetuner.tailor.blocks import find_blocks, first_blocks

_MARK = "_finetuner_frozen"

Layers = bool | str | Sequence[str]
FIRST, ALL_BUT_LAST = "first:", "all-but-last:"  # "first:N" / "all-but-last:N" transformer blocks


def check_freeze(layers: Layers) -> bool | str | list[str]:
    """``layers`` in one of the forms `resolve_freeze` takes, checked without a model: a bool, ``"first:N"`` /
    ``"all-but-last:N"``, a layer name, or a list of layer names (a tuple becomes a list).

    Raises:
        ValueError: another type, an empty or non-string name, or a block count that is not a whole number.

    Example:
        >>> check_freeze(("conv1", "layer1"))
        ['conv1', 'layer1']
    """
    if isinstance(layers, bool):
        return layers
    if isinstance(layers, str):
        for form in (FIRST, ALL_BUT_LAST):
            if layers.startswith(form) and not layers[len(form) :].isdigit():
                raise ValueError(f"freeze={layers!r}: use {form}N with a whole number N of transformer blocks.")
        names = [layers]
    elif isinstance(layers, (list, tuple)):
        names = list(layers)
    else:
        raise ValueError(
            f"freeze must be True/False, 'first:N', 'all-but-last:N', a layer name or a list of layer names "
            f"(`finetuner display MODEL` lists them), got {type(layers).__name__} {layers!r}."
        )
    bad = [name for name in names if not isinstance(name, str) or not name.strip(".").strip()]
    if bad:
        raise ValueError(f"freeze names must be non-empty layer names (`finetuner display MODEL` lists them): {bad}.")
    return layers if isinstance(layers, str) else names


def resolve_freeze(model: nn.Module, layers: Layers) -> bool | list[str]:
    """The one freeze convention, resolved and checked against ``model`` (the original network, before any cut):
    ``True`` / ``False``; ``"first:N"`` (the embeddings and the first N transformer blocks); ``"all-but-last:N"``
    (all blocks but the last N, with the embeddings); a name or a list of names that `display` prints for
    ``model`` (each freezes everything under it).

    Returns:
        ``True``, ``False`` or the list of names to pass to `freeze`.

    Raises:
        ValueError: a malformed value, an unknown name (the message lists the closest ones), a block count the model
            does not have.

    Example:
        >>> resolve_freeze(vit, "first:1")  # doctest: +SKIP
        ['patch_embed', 'cls_token', 'pos_embed', 'blocks.0']
    """
    layers = check_freeze(layers)
    if isinstance(layers, bool):
        return layers
    if isinstance(layers, str) and layers.startswith(FIRST):
        return first_blocks(model, int(layers[len(FIRST) :]))
    if isinstance(layers, str) and layers.startswith(ALL_BUT_LAST):
        name, blocks = find_blocks(model)
        last = int(layers[len(ALL_BUT_LAST) :])
        if not 0 <= last <= len(blocks):
            raise ValueError(
                f"{type(model).__name__} has {len(blocks)} blocks ({name}): freeze 'all-but-last:0' to "
                f"'all-but-last:{len(blocks)}', not {layers!r}"
            )
        return first_blocks(model, len(blocks) - last)
    names = [layers] if isinstance(layers, str) else layers
    _select(model, names)  # unknown names fail here, with the closest ones
    return names


def _keep_eval(module: nn.Module, args: tuple) -> None:
    """Forward pre-hook of every frozen module: whatever ``model.train()`` did, run this module in eval mode."""
    module.training = False


def freeze(model: nn.Module, layers: Layers = True) -> nn.Module:
    """Freeze ``model`` (or some of its layers) in place, and return it.

    A frozen module's parameters get ``requires_grad=False``, and the module always runs in eval mode, even after
    ``model.train()``: BatchNorm uses and keeps its running statistics (``running_mean``, ``running_var`` and
    ``num_batches_tracked`` stay bit-identical), Dropout and other training-only behaviour is off. This is done
    with a forward pre-hook plus a marker attribute on each frozen module, so ``copy.deepcopy`` and pickling keep
    it; a ``state_dict`` does not carry it (freeze again after rebuilding a model).

    Args:
        model: any ``nn.Module``.
        layers: ``True`` for the whole model; or a name / list of names from ``model.named_modules()`` (or
            ``named_parameters()``), each one also selecting everything under it (``"layer1"`` freezes
            ``layer1.*``). ``False`` or an empty list freezes nothing.

    Returns:
        ``model`` itself.

    Raises:
        ValueError: an unknown name (the message lists the closest names).

    Example:
        >>> model = freeze(torchvision.models.resnet18(), ["conv1", "bn1", "layer1"])
    """
    modules, params = _select(model, layers)
    for param in params:
        param.requires_grad_(False)
    for module in modules:
        if not getattr(module, _MARK, False):
            module.register_forward_pre_hook(_keep_eval, prepend=True)
            setattr(module, _MARK, True)
        module.training = False
    return model


def unfreeze(model: nn.Module, layers: Layers = True) -> nn.Module:
    """Undo ``freeze`` in place for ``model`` (``True``) or the named layers / prefixes, and return ``model``.

    Parameters get ``requires_grad=True`` and the modules follow ``model.train()`` / ``model.eval()`` again
    (their current flag is left as it is: call ``model.train()`` before training, as usual).
    """
    modules, params = _select(model, layers)
    for param in params:
        param.requires_grad_(True)
    for module in modules:
        hooks = module._forward_pre_hooks
        for key in [k for k, hook in hooks.items() if hook is _keep_eval]:
            del hooks[key]
        if _MARK in module.__dict__:
            delattr(module, _MARK)
    return model


def is_frozen(module: nn.Module) -> bool:
    """Whether ``freeze`` froze all of ``module``: no trainable parameter, and every sub-module locked in eval mode."""
    return all(getattr(m, _MARK, False) for m in module.modules()) and not any(
        p.requires_grad for p in module.parameters()
    )


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters with ``requires_grad=True`` (what to hand to an optimizer)."""
    return [p for p in model.parameters() if p.requires_grad]


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameter values of ``model`` (shared parameters counted once), or only the trainable ones."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _select(model: nn.Module, layers: Layers) -> tuple[list[nn.Module], list[nn.Parameter]]:
    """The modules and parameters that ``layers`` names, each with everything under it."""
    if layers is True:
        return list(model.modules()), list(model.parameters())
    if layers is False or layers is None:
        return [], []
    if isinstance(layers, str):
        layers = [layers]
    module_names = dict(model.named_modules(remove_duplicate=False))
    param_names = dict(model.named_parameters(remove_duplicate=False))
    modules: dict[int, nn.Module] = {}
    params: dict[int, nn.Parameter] = {}
    for layer in layers:
        if not isinstance(layer, str) or not layer.strip("."):
            raise ValueError(
                f"Layer names must be non-empty strings (or layers=True for the whole model); got {layer!r}"
            )
        prefix = layer.rstrip(".")
        found = False
        for name, module in module_names.items():
            if name == prefix or name.startswith(prefix + "."):
                found = True
                modules.update((id(m), m) for m in module.modules())
                params.update((id(p), p) for p in module.parameters())
        for name, param in param_names.items():
            if name == prefix or name.startswith(prefix + "."):
                found = True
                params[id(param)] = param
        if not found:
            raise unknown_name(layer, [n for n in module_names if n] + list(param_names))
    return list(modules.values()), list(params.values())
