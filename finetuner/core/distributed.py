"""Process groups under torchrun: rank, world size, barriers, broadcasts (a no-op in a single process)."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def world_size() -> int:
    """Number of processes in the job (1 without torchrun)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's global rank (0 without torchrun)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def local_rank() -> int:
    """This process's rank on its machine, as torchrun sets it."""
    return int(os.environ.get("LOCAL_RANK", 0))


def is_main_process() -> bool:
    """True on rank 0: the process that evaluates, logs and writes files."""
    return rank() == 0


def init_distributed() -> bool:
    """Join the process group that torchrun describes in the environment; a no-op without torchrun.

    Returns:
        True when running with more than one process.

    Example:
        >>> init_distributed()  # plain `python`: nothing to join
        False
    """
    size = os.environ.get("WORLD_SIZE", "1")
    if not size.strip().isdigit():
        raise ValueError(f"WORLD_SIZE={size!r} is not a number of processes: unset it, or start with torchrun.")
    if int(size) <= 1:
        return False
    missing = [name for name in ("RANK", "MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
    if missing:
        raise ValueError(
            f"WORLD_SIZE={size} is set but {', '.join(missing)} not: start with torchrun "
            "(torchrun --nproc_per_node=N ...), or unset WORLD_SIZE for one process."
        )
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank())
        dist.init_process_group(backend=backend)
    return True


def barrier() -> None:
    """Wait for every rank (no-op in a single process)."""
    if world_size() > 1:
        dist.barrier()


def average(value: torch.Tensor) -> torch.Tensor:
    """Mean of ``value`` over ranks (the value itself in a single process)."""
    if world_size() > 1:
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value /= world_size()
    return value


def broadcast_object(value):
    """``value`` from rank 0 on every rank (the value itself in a single process)."""
    if world_size() <= 1:
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]
