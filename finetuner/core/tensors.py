"""Checks on named tensors: which hold NaN or infinity, and whether a saved state fits a model."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch


def non_finite_tensors(named: Iterable[tuple[str, torch.Tensor]]) -> list[str]:
    """Names of the floating-point tensors that hold a NaN or an infinity (integer tensors are always finite).

    The per-tensor checks run on the tensors' devices and come back to the host in one copy per device, so
    the call costs one synchronisation however many tensors there are.

    Args:
        named: ``(name, tensor)`` pairs, e.g. ``model.named_parameters()`` or ``state_dict().items()``.

    Returns:
        The offending names, in the order given; empty when every tensor is finite.

    Example:
        >>> non_finite_tensors([("w", torch.ones(2)), ("b", torch.tensor([float("nan")]))])
        ['b']
    """
    order, by_device = [], {}
    for name, tensor in named:
        if tensor.is_floating_point() or tensor.is_complex():
            order.append(name)
            by_device.setdefault(tensor.device, []).append((name, tensor))
    bad = set()
    for pairs in by_device.values():
        flags = torch.stack([torch.isfinite(t.detach()).all() for _, t in pairs]).cpu().tolist()
        bad.update(name for (name, _), finite in zip(pairs, flags) if not finite)
    return [name for name in order if name in bad]


def compare_states(expected: Mapping[str, Any], found: Mapping[str, Any]) -> tuple[list[str], list[str], list[str]]:
    """``(missing, unexpected, wrong_shapes)`` between two state dicts (values: tensors or shapes).

    ``wrong_shapes`` entries read ``"name: (8, 16) here, (4, 16) saved"``.

    Example:
        >>> compare_states({"w": torch.zeros(2, 3), "b": torch.zeros(2)}, {"w": (4, 3), "x": (1,)})
        (['b'], ['x'], ['w: (2, 3) here, (4, 3) saved'])
    """

    def shape(value: Any) -> tuple[int, ...]:
        return tuple(value.shape) if hasattr(value, "shape") else tuple(value)

    missing = [name for name in expected if name not in found]
    unexpected = [name for name in found if name not in expected]
    wrong = [
        f"{name}: {shape(expected[name])} here, {shape(found[name])} saved"
        for name in expected
        if name in found and shape(expected[name]) != shape(found[name])
    ]
    return missing, unexpected, wrong


def mismatch_summary(missing: Sequence[str], unexpected: Sequence[str], wrong_shapes: Sequence[str]) -> str:
    """One line naming the first few differences that `compare_states` found ("" when there are none).

    Example:
        >>> mismatch_summary(["head.weight"], [], [])
        'missing head.weight'
    """

    def few(names: Sequence[str]) -> str:
        return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")

    parts = [
        f"{label} {few(names)}"
        for label, names in (("missing", missing), ("unexpected", unexpected), ("other shapes", wrong_shapes))
        if names
    ]
    return "; ".join(parts)
