"""``chop``: cut a model after any layer, so that it returns that layer's output and computes nothing after it."""

from __future__ import annotations

import copy
import warnings
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from finetuner.tailor._inputs import Inputs, call, describe, inference, make_inputs, same, unknown_name
from finetuner.tailor._trace import Record, trace


class _Exit(BaseException):
    """Raised by ``EarlyExit``'s hook. A ``BaseException`` so that ``except Exception`` in model code cannot
    swallow it; it carries its owner so that nested early exits do not catch each other's."""


class EarlyExit(nn.Module):
    """Run ``model`` until ``layer_name`` has returned ``calls`` times, and return that output.

    A forward hook on the layer stores its output and raises a private exception, which ``forward`` catches,
    so nothing after the layer runs. ``model`` stays a child, so its parameters keep their names under
    ``model.``. Deep-copyable and picklable (the hook is a bound method of this module).
    """

    def __init__(self, model: nn.Module, layer_name: str, calls: int = 1):
        super().__init__()
        self.model = model
        self.layer_name = layer_name
        self.calls = calls
        self._count = 0
        self._output: Any = None
        model.get_submodule(layer_name).register_forward_hook(self._exit)

    def _exit(self, module: nn.Module, args: tuple, output: Any) -> None:
        self._count += 1
        if self._count >= self.calls:
            self._output = output
            raise _Exit(self)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        self._count = 0
        try:
            self.model(*args, **kwargs)
        except _Exit as stop:
            if stop.args[0] is not self:
                raise
            output, self._output = self._output, None
            return output
        raise RuntimeError(
            f"The model finished before {self.layer_name!r} ran {self.calls} time(s) (its call count on the input "
            "chop was given); chop a layer that runs the same number of times for every input."
        )

    def extra_repr(self) -> str:
        return f"layer_name={self.layer_name!r}, calls={self.calls}"


class Removed(nn.Module):
    """Stands in for a layer that ``chop`` dropped because it only ran after the chop point; raises if called."""

    def __init__(self, name: str):
        super().__init__()
        self.removed_name = name

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(
            f"Layer {self.removed_name!r} was removed by finetuner.tailor.chop (it ran after the chop point)."
        )

    def extra_repr(self) -> str:
        return repr(self.removed_name)


def chop(
    model: nn.Module,
    layer_name: str,
    input_size: int | Sequence[int] | None = None,
    *,
    example_input: Inputs | None = None,
    input_dtype: torch.dtype = torch.float32,
) -> nn.Module:
    """Return a copy of ``model`` whose output is exactly the output of ``layer_name``, computing nothing after it.

    Works at any depth (``"layer3.0.bn1"``, ``"encoder.layers.encoder_layer_1"``) and on models that are not
    sequential (residual adds, functional calls in ``forward``, dict inputs). The input model is never modified:
    the result is built from a deep copy (frozen layers stay frozen, training flags are kept). For a layer that
    runs several times in one pass (a shared activation), the output of its last call is returned.

    One forward pass on a dummy input (or ``example_input``) tells what runs in which order. Then:

    1. **Structural**, for a tensor input: if the model's children that run up to the layer form a chain
       (each runs once, one after the other, and the parent has no parameters of its own), the result is an
       ``nn.Sequential`` of those children, recursing into the child that holds the layer (e.g. ``layer3``
       keeps only ``layer3.0``). A child that is not a chain is wrapped as in 2. Parameter names stay those
       of the original model. Fast, and traceable / ONNX-exportable.
    2. **Early exit** otherwise (ViT, BERT, dict inputs): ``EarlyExit`` wraps the whole copy and stops the
       forward pass once the layer has run. Layers that only run after it are replaced by ``Removed``
       placeholders, which drops their parameters.

    Each candidate is accepted only if it reproduces the layer's output on the dummy input; if the placeholders
    break the model (its ``forward`` touches a dropped layer before the chop point), they are put back, and the
    plain early exit (all parameters kept, still nothing computed after the layer) is returned.

    Args:
        model: any ``nn.Module``.
        layer_name: a name from ``model.named_modules()``; list them with ``finetuner.tailor.display(model)``.
        input_size: shape of one sample without the batch dimension; guessed for image models (default
            ``(3, 224, 224)``). Text models need ``example_input``.
        example_input: a tensor, or a dict of tensors passed as keyword arguments.
        input_dtype: dtype of the dummy input built from ``input_size``.

    Returns:
        A new module: ``nn.Sequential`` (structural) or ``EarlyExit`` (which takes the model's arguments).

    Raises:
        ValueError: unknown ``layer_name`` (the message lists the closest names), or a layer that did not run.

    Example:
        >>> body = chop(torchvision.models.resnet50(), "layer1", (3, 64, 64))
        >>> body(torch.zeros(1, 3, 64, 64)).shape
        torch.Size([1, 256, 16, 16])
    """
    inputs = make_inputs(model, input_size, example_input, input_dtype)
    return chop_in_place(copy.deepcopy(model), layer_name, inputs)[0]


def chop_in_place(work: nn.Module, layer_name: str, inputs: Inputs) -> tuple[nn.Module, Any]:
    """``chop`` without the copy: ``work``'s modules are reused (and may be replaced by placeholders), so pass a
    copy. Returns the chopped module and the layer's output on ``inputs``."""
    names = [name for name, _ in work.named_modules(remove_duplicate=False) if name]
    if layer_name not in names:
        raise unknown_name(layer_name, names)
    target = work.get_submodule(layer_name)

    def keep(record: Record, args: tuple, output: Any) -> None:
        if record.module is target:  # clone: an in-place op after the layer (ReLU(inplace=True)) would change it
            record.extra["output"] = _clone(output)

    records, _ = trace(work, inputs, on_output=keep)
    by_id = {id(r.module): r for r in records}
    record = by_id[id(target)]
    if not record.ran or record.last_end < 0:
        raise ValueError(
            f"Layer {layer_name!r} did not run on the example input {describe(inputs)}; pick a layer that runs."
        )
    reference = record.extra["output"]

    if not isinstance(inputs, Mapping):
        structural = _chain(work, layer_name.split("."), by_id)
        if structural is not None and _reproduces(structural, inputs, reference):
            return structural, reference

    wrapper = EarlyExit(work, layer_name, calls=record.calls)
    wrapper.training = work.training
    restore = _remove(work, _after(work, layer_name, record.last_end, by_id))
    if _reproduces(wrapper, inputs, reference):
        return wrapper, reference
    for parent, attr, module in restore:
        setattr(parent, attr, module)
    # Last resort, the whole copy stopped at the layer: the same computation as the model, so only a
    # non-deterministic model (or one whose call count varies) can disagree with the traced pass.
    try:
        with inference(wrapper):
            output = call(wrapper, inputs)
    except Exception as exc:
        raise RuntimeError(
            f"Could not chop {type(work).__name__} at {layer_name!r}: {exc}. "
            "Chop at another layer (finetuner.tailor.display lists them)."
        ) from exc
    if not same(output, reference):
        warnings.warn(
            f"Two runs of {type(work).__name__} up to {layer_name!r} gave different values; is the model "
            "non-deterministic?",
            stacklevel=3,
        )
    return wrapper, output


def _chain(module: nn.Module, parts: list[str], by_id: dict[int, Record]) -> nn.Module | None:
    """An ``nn.Sequential`` of ``module``'s children up to the one named ``parts[0]`` (recursing into it), or None
    when they do not form a chain."""
    record = by_id.get(id(module))
    if record is None or record.calls != 1 or _has_own_state(module):
        return None
    children = [(n, c) for n, c in module.named_children() if id(c) in by_id and by_id[id(c)].ran]
    children.sort(key=lambda item: by_id[id(item[1])].first_start)
    names = [n for n, _ in children]
    if parts[0] not in names:
        return None
    chain = children[: names.index(parts[0]) + 1]
    records = [by_id[id(c)] for _, c in chain]
    if any(r.calls != 1 or r.last_end < 0 for r in records):
        return None
    if any(a.last_end > b.first_start for a, b in zip(records, records[1:], strict=False)):
        return None
    (name, child), rest = chain[-1], ".".join(parts[1:])
    if rest:
        tail = _chain(child, parts[1:], by_id)
        if tail is None:
            target = by_id.get(id(child.get_submodule(rest)))
            if target is None or target.last_end < 0:
                return None
            tail = EarlyExit(copy.deepcopy(child), rest, calls=target.calls)
            tail.training = child.training
            _remove(tail.model, _after(child, rest, target.last_end, by_id))
        chain[-1] = (name, tail)
    sequential = nn.Sequential(OrderedDict(chain))
    sequential.training = module.training
    return sequential


def _has_own_state(module: nn.Module) -> bool:
    return any(True for _ in module.parameters(recurse=False)) or any(True for _ in module.buffers(recurse=False))


def _after(module: nn.Module, target: str, end: int, by_id: dict[int, Record], prefix: str = "") -> list[str]:
    """Names (relative to ``module``) of the largest sub-modules whose every call started after tick ``end``.

    Modules that did not run are kept: another input may need them."""
    names = []
    for name, child in module.named_children():
        full = prefix + name
        record = by_id.get(id(child))
        if target == full or target.startswith(full + "."):
            names += _after(child, target, end, by_id, full + ".")
        elif record is not None and record.ran:
            if record.first_start > end:
                names.append(full)
            else:
                names += _after(child, target, end, by_id, full + ".")
    return names


def _remove(module: nn.Module, names: list[str]) -> list[tuple[nn.Module, str, nn.Module]]:
    """Replace the named sub-modules by ``Removed``; returns what is needed to put them back."""
    restore = []
    for name in names:
        parent_name, _, attr = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        restore.append((parent, attr, getattr(parent, attr)))
        setattr(parent, attr, Removed(name))
    return restore


def _reproduces(module: nn.Module, inputs: Inputs, reference: Any) -> bool:
    try:
        with inference(module):
            output = call(module, inputs)
    except Exception:
        return False
    return same(output, reference)


def _clone(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    if isinstance(obj, Mapping):
        return {k: _clone(v) for k, v in obj.items()}
    if isinstance(obj, tuple | list):
        return type(obj)(_clone(v) for v in obj) if type(obj) in (tuple, list) else tuple(_clone(v) for v in obj)
    return obj
