"""torchrun + DDP: the same `fit` runs under ``torchrun --nproc_per_node N``; rank 0 evaluates, logs and saves.

Two ways to train under torchrun: each rank takes its share of the batches and DDP keeps the replicas in step
(raw items), or every rank trains on all batches (the head on cached features: cheap, and the result is the
single-process one). Either way `finish_training` leaves every rank holding rank 0's model.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
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
from finetuner.tailor import is_frozen
from finetuner.training.pair_losses import PairLoss


def shards_batches(batches: Any) -> bool:
    """Whether ranks train on different batches (each its share, so DDP must keep them in step) rather than every
    rank on all of them: a batch source whose sampler has ``num_replicas == 1`` gives every rank all batches."""
    sampler = getattr(batches, "batch_sampler", None)
    return world_size() > 1 and getattr(sampler, "num_replicas", world_size()) > 1


def wrap_model(
    model: nn.Module, device: torch.device, *, sharded: bool = True, sync_batchnorm: bool = False
) -> nn.Module:
    """Wrap in DistributedDataParallel when ranks train on different batches, else return ``model``.

    Args:
        model: the module being trained (already on ``device``).
        device: this rank's device.
        sharded: ranks see different batches (`shards_batches`); False: every rank trains on all of them, so
            there is nothing to synchronise.
        sync_batchnorm: compute BatchNorm statistics over the batches of all ranks (`convert_sync_batchnorm`,
            GPUs only); frozen BatchNorm layers keep their running statistics.

    Example:
        >>> wrap_model(nn.Linear(4, 2), torch.device("cpu"))  # a single process: nothing to wrap
        Linear(in_features=4, out_features=2, bias=True)
    """
    if world_size() <= 1 or not sharded:
        return model
    if sync_batchnorm:
        if device.type != "cuda":
            raise ValueError(
                "sync_batchnorm=True needs GPUs: torch's SyncBatchNorm synchronises statistics between CUDA "
                "devices only. Leave sync_batchnorm off on CPU."
            )
        model = convert_sync_batchnorm(model)
    device_ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def wrap_loss(loss: nn.Module, *, sharded: bool = True) -> nn.Module:
    """Metric losses see the embeddings of every rank (pytorch-metric-learning's wrapper), so negatives are global;
    a `PairLoss` gathers what it needs itself. Unsharded batches (every rank sees all of them): unchanged."""
    if world_size() <= 1 or not sharded or isinstance(loss, (PairLoss, nn.CrossEntropyLoss)):
        return loss
    from pytorch_metric_learning.utils.distributed import DistributedLossWrapper

    return DistributedLossWrapper(loss)


class _SyncBatchNorm(nn.SyncBatchNorm):
    """A SyncBatchNorm that remembers the BatchNorm class it replaced, so `revert_sync_batchnorm` can restore it."""

    replaced: type[nn.Module]


def _rebuilt(layer: nn.Module, cls: type[nn.Module]) -> nn.Module:
    """A ``cls`` BatchNorm layer holding ``layer``'s very parameters and statistics (shared, not copied)."""
    new = cls(layer.num_features, layer.eps, layer.momentum, layer.affine, layer.track_running_stats)
    new.weight, new.bias = layer.weight, layer.bias
    new.running_mean, new.running_var = layer.running_mean, layer.running_var
    new.num_batches_tracked = layer.num_batches_tracked
    return new.train(layer.training)


def convert_sync_batchnorm(model: nn.Module) -> nn.Module:
    """Replace, in place, every BatchNorm layer that trains with a SyncBatchNorm sharing its weights and statistics;
    layers frozen with `finetuner.tailor.freeze` stay as they are (their statistics never change).

    Returns:
        ``model`` (a new module only when ``model`` itself is such a BatchNorm layer).

    Example:
        >>> net = convert_sync_batchnorm(nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8)))
        >>> isinstance(net[1], nn.SyncBatchNorm)
        True
    """
    if isinstance(model, nn.modules.batchnorm._BatchNorm) and not isinstance(model, nn.SyncBatchNorm):
        if is_frozen(model):
            return model
        sync = _rebuilt(model, _SyncBatchNorm)
        sync.replaced = type(model)
        return sync
    for name, child in model.named_children():
        setattr(model, name, convert_sync_batchnorm(child))
    return model


def revert_sync_batchnorm(model: nn.Module) -> nn.Module:
    """Undo `convert_sync_batchnorm` in place: the original BatchNorm classes, with the trained weights and
    statistics (the same tensors). Returns ``model`` (a new module only when ``model`` itself was converted).

    Example:
        >>> net = revert_sync_batchnorm(convert_sync_batchnorm(nn.Sequential(nn.BatchNorm1d(4))))
        >>> type(net[0]).__name__
        'BatchNorm1d'
    """
    if isinstance(model, _SyncBatchNorm):
        return _rebuilt(model, model.replaced)
    for name, child in model.named_children():
        setattr(model, name, revert_sync_batchnorm(child))
    return model


def finish_training(model: nn.Module) -> nn.Module:
    """After training under torchrun: SyncBatchNorm layers back to plain BatchNorm, and rank 0's parameters and
    buffers (BatchNorm statistics included, which DDP leaves per rank) copied to every rank, so every rank holds
    the same model. A no-op in a single process.

    Example:
        >>> head = finish_training(nn.Linear(4, 2))  # a single process: nothing to share
    """
    model = revert_sync_batchnorm(model)
    if world_size() <= 1:
        return model
    through_gpu = dist.get_backend() == "nccl"
    with torch.no_grad():
        for tensor in model.state_dict().values():  # shares storage with the parameters and buffers
            held = tensor.cuda() if through_gpu and not tensor.is_cuda else tensor
            dist.broadcast(held, src=0)
            if held is not tensor:
                tensor.copy_(held)
    return model
