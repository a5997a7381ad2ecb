"""`LinearHead`: one ``nn.Linear``, optionally L2-normalised; `pca_projection`, the backbone's features reduced by
their principal components, which `LinearHead.untuned` and `ResidualProjectionHead` start from."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from finetuner.tailor.heads.base import Head


class LinearHead(Head, name="linear"):
    """One ``nn.Linear``, optionally followed by L2 normalisation.

    Args:
        in_features: size of the backbone's features.
        out_features: size of the embedding.
        normalize: L2-normalise the output.

    Example:
        >>> LinearHead(512, 128)(torch.randn(4, 512)).shape
        torch.Size([4, 128])
    """

    def __init__(self, in_features: int, out_features: int, normalize: bool = False):
        super().__init__()
        self.in_features, self.out_features, self.normalize = in_features, out_features, normalize
        self.linear = nn.Linear(in_features, out_features)

    @classmethod
    def untuned(cls, features: torch.Tensor, out_features: int) -> LinearHead:
        """The untuned backbone as a head of ``out_features`` outputs: the identity (extra outputs zero) when
        that is at least the features' size, else the projection onto the principal components of ``features``
        ``(N, D)``, centred by their mean (PCA). What `fit` returns when no trained candidate beats it.

        Example:
            >>> head = LinearHead.untuned(torch.randn(100, 16), 16)
            >>> bool(torch.equal(head.linear.weight, torch.eye(16)))
            True
        """
        head = cls(features.shape[1], out_features)
        weight, bias = pca_projection(features, out_features, center=out_features < features.shape[1])
        with torch.no_grad():
            head.linear.weight.copy_(weight.to(head.linear.weight.dtype))
            head.linear.bias.copy_(bias.to(head.linear.bias.dtype))
        return head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.linear(x)
        return F.normalize(x, dim=-1) if self.normalize else x

    def config(self) -> dict[str, Any]:
        return {"in_features": self.in_features, "out_features": self.out_features, "normalize": self.normalize}


def pca_projection(
    features: torch.Tensor, out_features: int, *, center: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(weight (out, D), bias (out,))`` (float64) of the linear map onto the principal components of ``features``
    ``(N, D)``, centred by their mean when ``center`` (the bias is minus the projected mean).

    With ``out_features >= D`` the weight is the identity and any extra outputs are zero; components past the
    sample's rank complete an orthonormal basis. Component signs are fixed (largest entry positive), so the result
    is deterministic.

    Raises:
        ValueError: ``features`` is not ``(N, D)`` with ``N >= 2`` finite rows.

    Example:
        >>> weight, bias = pca_projection(torch.randn(100, 16), 4)
        >>> tuple(weight.shape), tuple(bias.shape)
        ((4, 16), (4,))
    """
    features = torch.as_tensor(features)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(
            f"The start of a head takes a sample of training features of shape (N >= 2, D), got "
            f"{tuple(features.shape)}: pass the backbone's features of at least two training items."
        )
    features = features.detach().to("cpu", torch.float64)
    if not torch.isfinite(features).all():
        raise ValueError("The head's start got non-finite features (NaN or inf): check the backbone's outputs.")
    width = features.shape[1]
    mean = features.mean(0) if center else torch.zeros(width, dtype=torch.float64)
    kept = min(width, out_features)
    if out_features >= width:
        components = torch.eye(width, dtype=torch.float64)  # a full rotation changes no ranking
    else:
        # eigenvectors of the (D, D) scatter matrix: a complete orthonormal basis, largest variance first,
        # in O(N D^2) time and O(D^2) memory whatever N
        centred = features - mean
        _, vectors = torch.linalg.eigh(centred.T @ centred)
        components = vectors.flip(1)[:, :kept].T
        signs = torch.sign(components.gather(1, components.abs().argmax(1, keepdim=True)))
        components = components * torch.where(signs == 0, 1.0, signs)
    weight = torch.zeros(out_features, width, dtype=torch.float64)
    weight[:kept] = components
    return weight, -weight @ mean
