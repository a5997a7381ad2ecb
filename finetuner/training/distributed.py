"""torchrun + DDP: the same `fit` runs under ``torchrun --nproc_per_node N``; rank 0 evaluates, logs and saves."""

from __future__ import annotations

import torch
from torch import nn

from finetuner.core.distributed import (  # noqa: F401 - one module for fit's DDP needs
    average,
    barrier,
    broadcast_object,
    init_distributed,
    is_main_process,
    local_rank,
    rank,
    world_size,
)
from finetuner.training.pair_losses import PairLoss


def wrap_model(model: nn.Module, device: torch.device) -> nn.Module:
    """Wrap in DistributedDataParallel when running distributed, else return ``model``."""
    if world_size() <= 1:
        return model
    device_ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def wrap_loss(loss: nn.Module) -> nn.Module:
    """Metric losses see the embeddings of every rank (pytorch-metric-learning's wrapper), so negatives are global;
    a `PairLoss` gathers what it needs itself."""
    if world_size() <= 1 or isinstance(loss, (PairLoss, nn.CrossEntropyLoss)):
        return loss
    from pytorch_metric_learning.utils.distributed import DistributedLossWrapper

    return DistributedLossWrapper(loss)
