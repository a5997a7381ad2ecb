"""`NeighbourhoodLoss`: a metric loss plus a pull that keeps the frozen features' neighbourhoods.

A head trained on a frozen backbone's features sees those features as its input, so the input's in-batch cosine
similarities are at hand for free. Distilling them into the head's output similarities (mean squared difference
over the pairs of a batch, relational distillation) keeps the geometry that classes never trained on rely on,
while the metric loss reshapes the training classes: a stronger recipe (a higher rate, a miner, more epochs) can
then be used without moving the unseen classes as far.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def similarity_distillation(
    inputs: torch.Tensor, outputs: torch.Tensor, center: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean squared difference between the in-batch cosine similarities of ``outputs`` and of ``inputs`` minus
    ``center`` (the diagonal left out); 0 when the outputs keep every pairwise cosine of the inputs.

    Features after a ReLU are all positive, so their raw cosines are all high; heads that start at their PCA
    (`ResidualProjectionHead`) see them centred: give the features' mean as ``center`` to distil that geometry.

    Example:
        >>> x = torch.randn(8, 16)
        >>> float(similarity_distillation(x, 2 * x)) < 1e-10
        True
    """
    if len(inputs) < 2:
        return outputs.sum() * 0.0
    teacher = inputs.detach().flatten(1).float()
    if center is not None:
        teacher = teacher - center.to(teacher.device, teacher.dtype)
    teacher = F.normalize(teacher, dim=-1)
    student = F.normalize(outputs.float(), dim=-1)
    off_diagonal = ~torch.eye(len(inputs), dtype=torch.bool, device=outputs.device)
    difference = (student @ student.T - teacher @ teacher.T)[off_diagonal]
    return difference.pow(2).mean()


class NeighbourhoodLoss(nn.Module):
    """``loss(outputs, labels, indices) + weight * similarity_distillation(inputs, outputs, center)``.

    For heads on a frozen backbone's features, whose input is the frozen feature: the `Trainer` passes each
    batch's model inputs (``inputs=``) to a loss with ``takes_inputs``. A miner's indices go to the metric loss.

    Args:
        loss: a metric loss on labelled embeddings (pytorch-metric-learning's call).
        weight: the distillation term's weight (0: the metric loss alone).
        center: subtracted from the inputs before their similarities are taken (the training features' mean).

    Example:
        >>> from finetuner.training import build_loss
        >>> loss = NeighbourhoodLoss(build_loss("TripletMarginLoss"), weight=1.0)
        >>> x = torch.randn(6, 8)
        >>> loss(x, torch.tensor([0, 0, 1, 1, 2, 2]), inputs=x).ndim
        0
    """

    takes_inputs = True

    def __init__(self, loss: nn.Module, weight: float, center: torch.Tensor | None = None):
        super().__init__()
        if not weight >= 0:
            raise ValueError(f"keep_neighbourhood must be a weight of at least 0 (0: off), got {weight!r}.")
        self.loss, self.weight = loss, float(weight)
        self.register_buffer("center", None if center is None else center.detach().float().clone())

    def forward(
        self, embeddings: torch.Tensor, labels: torch.Tensor, indices_tuple: Any = None, *, inputs: torch.Tensor
    ) -> torch.Tensor:
        value = self.loss(embeddings, labels, indices_tuple)
        if self.weight == 0:
            return value
        return value + self.weight * similarity_distillation(inputs, embeddings, self.center)


def takes_inputs(loss: nn.Module) -> bool:
    """True for losses that also get the batch's model inputs (`NeighbourhoodLoss`)."""
    return bool(getattr(loss, "takes_inputs", False))
