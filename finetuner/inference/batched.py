"""Batched inference over raw items: the one code path behind `encode`, the feature cache and evaluation."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm.auto import tqdm

from finetuner.core import distributed
from finetuner.core.device import autocast, move_to
from finetuner.core.log import show_progress

if TYPE_CHECKING:
    from finetuner.data.preprocessing import Preprocessing


def batched_outputs(
    fn: Callable[[Any], torch.Tensor],
    items: Sequence[Any],
    preprocessing: Preprocessing,
    *,
    device: torch.device,
    batch_size: int = 64,
    train: bool = False,
    num_workers: int | str = "auto",
    autocast_dtype: torch.dtype | None = None,
    description: str | None = None,
    out: np.ndarray | None = None,
    epoch: int = 0,
    seed: int = 0,
) -> np.ndarray:
    """Run ``fn`` on every item, in batches, and return float32 outputs ``(N, D)`` in the items' order.

    Items are decoded and preprocessed in DataLoader workers (``train=True`` applies the training
    augmentation). Text is sorted by length so batches carry little padding, and the order is restored.
    ``out`` (e.g. a memory-mapped array) receives the rows instead of a new array. With ``train=True``, ``epoch``
    picks the augmentation draw and ``seed`` the items' seeds: the same (seed, epoch) gives the same outputs,
    whatever ``num_workers`` (give each augmented pass its own).

    Example:
        >>> vectors = batched_outputs(model, ["a.jpg", "b.jpg"], prep, device=torch.device("cpu"))  # doctest: +SKIP
    """
    from finetuner.data.datasets import ItemDataset, make_loader

    if len(items) == 0:
        raise ValueError("Nothing to encode: the list of items is empty.")
    order = _length_order(items) if getattr(preprocessing, "kind", None) == "text" else None
    ordered = [items[i] for i in order] if order is not None else items
    dataset = ItemDataset(ordered, [0] * len(ordered), preprocessing, train=train)
    loader = make_loader(dataset, batch_size, shuffle=False, num_workers=num_workers, seed=seed)
    loader.set_epoch(epoch)
    result = out  # allocated at the first batch otherwise: no list of pieces to join (one copy, no fragments)
    start = 0
    with torch.inference_mode():
        quiet = description is None or not (distributed.is_main_process() and show_progress())  # one bar, rank 0
        for inputs, _ in tqdm(loader, desc=description, disable=quiet, leave=False):
            # channels_last: faster convolutions on CUDA and on the CPU alike; a no-op for other inputs
            inputs = move_to(inputs, device, channels_last=True)
            with autocast(device, autocast_dtype):
                outputs = fn(inputs)
            batch = outputs.float().cpu().numpy()
            if result is None:
                result = np.empty((len(ordered), *batch.shape[1:]), dtype=np.float32)
            result[start : start + len(batch)] = batch
            start += len(batch)
    if order is not None:
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        result[:] = result[inverse]
    return result


def _length_order(texts: Sequence[Any]) -> np.ndarray:
    from finetuner.data.preprocessing.text import sort_by_length

    return np.asarray(sort_by_length(list(texts)))
