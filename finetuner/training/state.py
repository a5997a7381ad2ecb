"""The weights a run trains: `trained_state` (what checkpoints and selection snapshots hold) and
`interpolate_into` (WiSE-FT and weight-space selection)."""

from __future__ import annotations

import torch


def trained_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The part of ``model``'s state dict that training can change: trainable parameters and every buffer
    (BatchNorm statistics). Frozen weights are left out, so checkpoints and snapshots of a frozen-backbone run
    hold the head, not a copy of the backbone; ``load_state_dict(state, strict=False)`` puts it back.

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
        >>> net[0].requires_grad_(False)  # doctest: +ELLIPSIS
        Linear(...)
        >>> sorted(trained_state(net))
        ['1.bias', '1.weight']
    """
    frozen = {name for name, parameter in model.named_parameters() if not parameter.requires_grad}
    return {name: tensor for name, tensor in model.state_dict().items() if name not in frozen}


def interpolate_into(model: torch.nn.Module, start: dict, end: dict, alpha: float) -> None:
    """Set ``model``'s weights to ``(1 - alpha) * start + alpha * end`` for the tensors in ``end`` (all of them,
    or a `trained_state`); tensors equal in both (frozen ones, integer buffers) are copied exactly, so frozen
    layers stay bit-identical."""
    state = model.state_dict()
    with torch.no_grad():
        for name in end:
            target = state[name]
            first, last = start[name].to(target.device), end[name].to(target.device)
            if target.is_floating_point() and not torch.equal(first, last):
                target.copy_(torch.lerp(first, last, alpha))
            else:
                target.copy_(last)
