"""``FeaturePool``: turns the output of the layer a model was chopped at into one vector per sample."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

POOL_MODES = ("auto", "cls", "mean", "last")


def unwrap(output: Any) -> torch.Tensor:
    """The tensor to pool from a layer output: the tensor itself; for a dict-like output (a Hugging Face
    ``ModelOutput``) its ``pooler_output`` when present, else its ``last_hidden_state``, else its first tensor;
    for a tuple or list its first element (so ``nn.LSTM``'s ``(output, (h, c))`` gives ``output``)."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, Mapping):
        for key in ("pooler_output", "last_hidden_state"):
            if output.get(key) is not None:
                return output[key]
        values = [v for v in output.values() if v is not None]
        if values:
            return unwrap(values[0])
    elif isinstance(output, tuple | list) and output:
        return unwrap(output[0])
    raise TypeError(f"Cannot pool a layer output of type {type(output).__name__}: pick a layer that returns a tensor.")


def pool_features(output: Any, mode: str = "auto") -> torch.Tensor:
    """Pool a layer output to ``(B, D)``; see ``FeaturePool``."""
    x = unwrap(output)
    if x.ndim == 2:
        return x
    if x.ndim == 3:
        if mode in ("auto", "cls"):
            return x[:, 0]
        if mode == "mean":
            return x.mean(dim=1)
        if mode == "last":
            return x[:, -1]
        raise ValueError(f"Unknown pooling mode {mode!r}; use one of {POOL_MODES}.")
    if x.ndim >= 4:
        if all(s == 1 for s in x.shape[2:]):
            return x.flatten(1)
        return x.flatten(2).mean(dim=2)
    raise ValueError(f"Cannot pool an output of shape {tuple(x.shape)} to (batch, features).")


class FeaturePool(nn.Module):
    """Turn a layer output into one feature vector per sample, ``(B, D)``.

    - ``(B, D)``: unchanged.
    - ``(B, D, 1, 1)`` (already pooled): flattened.
    - ``(B, C, H, W)`` (and any ``(B, C, *spatial)``): global average pooling.
    - ``(B, T, D)`` (tokens or time steps): ``"cls"`` takes token 0 (the class token), ``"mean"`` averages the
      tokens (padding included: no attention mask is seen here), ``"last"`` takes the last step (recurrent
      nets); ``"auto"`` means ``"cls"``.
    - A Hugging Face ``ModelOutput`` / dict: its ``pooler_output`` if present, else ``last_hidden_state``
      pooled as above. A tuple: its first element, pooled as above.

    Args:
        mode: ``"auto"``, ``"cls"``, ``"mean"`` or ``"last"``; only matters for 3-D outputs.

    Example:
        >>> FeaturePool()(torch.zeros(2, 512, 7, 7)).shape
        torch.Size([2, 512])
    """

    def __init__(self, mode: str = "auto"):
        super().__init__()
        if mode not in POOL_MODES:
            raise ValueError(f"Unknown pooling mode {mode!r}; use one of {POOL_MODES}.")
        self.mode = mode

    def forward(self, output: Any) -> torch.Tensor:
        return pool_features(output, self.mode)

    def config(self) -> dict:
        """JSON-serialisable arguments; ``FeaturePool.from_config(pool.config())`` rebuilds it."""
        return {"type": "FeaturePool", "mode": self.mode}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> FeaturePool:
        return cls(mode=config.get("mode", "auto"))

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"
