"""``freeze`` / ``unfreeze``: frozen means no gradient, no running-statistics update, no dropout, ever."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from finetuner.tailor._inputs import unknown_name

_MARK = "_finetuner_frozen"

Layers = bool | str | Sequence[str]


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
