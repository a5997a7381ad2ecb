"""`ResidualProjectionHead`: a linear path that starts as the backbone's own features (PCA), plus a residual MLP
that starts at zero."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from finetuner.tailor.heads.base import Head
from finetuner.tailor.heads.linear import pca_projection


class ResidualProjectionHead(Head, name="residual"):
    """``linear(x) + residual_scale * mlp(x)``, built so that training starts where the backbone is.

    The linear path is a projection onto the principal components of the training features once `initialize`
    has seen them (centred by their mean, kept as the Linear's bias, so the weights are a plain state dict):
    before any step, retrieval with the head equals retrieval with the PCA truncation of the frozen features
    (with ``out_features >= in_features``, the centred features themselves: nothing is lost). The residual MLP
    (``LayerNorm -> Linear -> GELU -> Linear``) has its last Linear zero-initialised, so it adds nothing until
    training moves it. Without `initialize`, the linear path is the identity (equal sizes) or a random
    orthonormal projection.

    Args:
        in_features: size of the backbone's features.
        out_features: size of the embedding.
        hidden_features: width of the residual MLP; ``in_features`` by default.
        residual_scale: factor on the residual branch (0 trains the linear path only).
        center: subtract the training features' mean in `initialize` (False keeps the raw features' origin, so
            with equal sizes the head starts as the exact identity).
        normalize: L2-normalise the output.

    Example:
        >>> head = ResidualProjectionHead(512, 128)
        >>> head.initialize(torch.randn(1000, 512))
        >>> head(torch.randn(4, 512)).shape
        torch.Size([4, 128])
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden_features: int | None = None,
        residual_scale: float = 0.5,
        center: bool = True,
        normalize: bool = False,
    ):
        super().__init__()
        if residual_scale < 0:
            raise ValueError(f"residual_scale must be >= 0 (0: linear path only), got {residual_scale}.")
        self.in_features, self.out_features = in_features, out_features
        self.hidden_features = hidden_features or in_features
        self.residual_scale, self.center, self.normalize = float(residual_scale), center, normalize
        self.linear = nn.Linear(in_features, out_features)
        self.residual = nn.Sequential(
            nn.LayerNorm(in_features),
            nn.Linear(in_features, self.hidden_features),
            nn.GELU(),
            nn.Linear(self.hidden_features, out_features),
        )
        with torch.no_grad():
            if in_features == out_features:
                self.linear.weight.copy_(torch.eye(in_features))
            else:
                nn.init.orthogonal_(self.linear.weight)
            self.linear.bias.zero_()
        self._zero_residual()

    def _zero_residual(self) -> None:
        with torch.no_grad():
            self.residual[-1].weight.zero_()
            self.residual[-1].bias.zero_()

    def initialize(self, features: torch.Tensor) -> None:
        """Set the linear path to the principal components of ``features`` ``(N, in_features)``, centred by their
        mean, and the residual branch back to zero.

        With ``out_features >= in_features`` the linear path is the identity (less the mean) and any extra outputs
        start at zero; components past the sample's rank complete an orthonormal basis. Component signs are fixed
        (largest entry positive), so the result is deterministic.

        Raises:
            ValueError: ``features`` is not ``(N, in_features)`` with ``N >= 2`` finite rows.

        Example:
            >>> head = ResidualProjectionHead(16, 4)
            >>> head.initialize(torch.randn(100, 16))
        """
        features = torch.as_tensor(features)
        if features.ndim != 2 or features.shape[1] != self.in_features:
            raise ValueError(
                f"initialize takes a sample of training features of shape (N >= 2, {self.in_features}), got "
                f"{tuple(features.shape)}: pass the backbone's features of at least two training items."
            )
        weight, bias = pca_projection(features, self.out_features, center=self.center)
        with torch.no_grad():
            self.linear.weight.copy_(weight.to(self.linear.weight.dtype))
            self.linear.bias.copy_(bias.to(self.linear.bias.dtype))
        self._zero_residual()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.linear(x) + self.residual_scale * self.residual(x)
        return F.normalize(x, dim=-1) if self.normalize else x

    def config(self) -> dict[str, Any]:
        return {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "hidden_features": self.hidden_features,
            "residual_scale": self.residual_scale,
            "center": self.center,
            "normalize": self.normalize,
        }
