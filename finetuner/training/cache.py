"""The feature cache: a frozen backbone runs once over the data; the head then trains for many epochs on its
features. Features live on disk (one ``.npy`` per view), keyed by the backbone weights, the data and the
preprocessing, so a second `fit` with another head, loss or ``output_dim`` reuses them."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from finetuner.core.files import atomic_folder
from finetuner.inference import batched_outputs

if TYPE_CHECKING:
    from finetuner.data.preprocessing import Preprocessing

logger = logging.getLogger("finetuner")

STORAGE_DTYPES = {"float32": np.float32, "float16": np.float16}


def fingerprint_module(module: nn.Module) -> str:
    """SHA-256 over the names, shapes and bytes of every tensor in ``module``'s state dict."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def fingerprint_items(items: Sequence[Any]) -> str:
    """SHA-256 over the items: file paths with their size and modification time, array/tensor bytes, texts."""
    digest = hashlib.sha256(str(len(items)).encode())
    for item in items:
        if isinstance(item, (str, os.PathLike)) and _is_file(item):
            stat = Path(item).stat()
            digest.update(f"file:{Path(item).resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
        elif isinstance(item, np.ndarray):
            digest.update(f"array:{item.shape}:{item.dtype}".encode() + np.ascontiguousarray(item).tobytes())
        elif isinstance(item, torch.Tensor):
            digest.update(f"tensor:{tuple(item.shape)}".encode() + item.detach().cpu().contiguous().numpy().tobytes())
        elif hasattr(item, "tobytes"):  # PIL images
            digest.update(f"image:{getattr(item, 'size', '')}:{getattr(item, 'mode', '')}".encode() + item.tobytes())
        else:
            digest.update(f"value:{item!r}".encode())
    return digest.hexdigest()


def _is_file(item: str | os.PathLike) -> bool:
    try:
        return Path(item).is_file()
    except (OSError, ValueError):  # a text longer than a file name can be, or with a NUL byte, is no file
        return False


class FeatureCache:
    """Computes and stores backbone features of a list of items, ``views`` of them per item.

    Args:
        folder: where cached features live (default ``<finetuner cache>/features``).
        max_memory_bytes: features up to this size are read into RAM; larger ones are memory-mapped.
        dtype: storage type, ``float32`` or ``float16`` (half the disk and memory).

    Example:
        >>> cache = FeatureCache("out/feature-cache")
        >>> backbone = fingerprint_module(model.backbone)  # hash the weights once, reuse for every item list
        >>> views = cache.features(model.features, backbone, items, prep, device=torch.device("cpu"))
        ... # doctest: +SKIP
    """

    def __init__(self, folder: str | Path | None = None, max_memory_bytes: int = 2 * 1024**3, dtype: str = "float32"):
        if dtype not in STORAGE_DTYPES:
            raise ValueError(f"cache dtype must be one of {sorted(STORAGE_DTYPES)}, got {dtype!r}.")
        if folder is None:
            from finetuner.models.weights import cache_dir

            folder = cache_dir() / "features"
        self.folder, self.max_memory_bytes, self.dtype = Path(folder), max_memory_bytes, dtype

    def key(self, model_fingerprint: str, items: Sequence[Any], preprocessing: Preprocessing | None, views: int) -> str:
        """The cache key: backbone weights (their `fingerprint_module`), data, preprocessing, number of views
        and storage dtype."""
        parts = {
            "model": model_fingerprint,
            "items": fingerprint_items(items),
            "preprocessing": preprocessing.to_config() if preprocessing is not None else None,
            "views": views,
            "dtype": self.dtype,
        }
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]

    def features(
        self,
        fn: Callable[[Any], torch.Tensor],
        model_fingerprint: str,
        items: Sequence[Any],
        preprocessing: Preprocessing,
        *,
        device: torch.device,
        views: int = 1,
        batch_size: int = 64,
        num_workers: int | str = "auto",
        autocast_dtype: torch.dtype | None = None,
        name: str = "data",
    ) -> list[torch.Tensor]:
        """``views`` tensors ``(N, D)`` of ``fn(inputs)`` over ``items``: one view uses the evaluation transform,
        several views are each a draw of the training augmentation. Computed once, then read back from disk."""
        key = self.key(model_fingerprint, items, preprocessing, views)
        target = self.folder / key
        if (target / "meta.json").is_file():
            logger.info("reusing cached features of %s (%d items, %d view(s)) from %s", name, len(items), views, target)
            return self._read(target, views)
        with atomic_folder(target, replace=False) as staging:  # another process may finish the same work first
            for view in range(views):
                description = f"caching {name} features" + (f" (view {view + 1}/{views})" if views > 1 else "")
                rows = batched_outputs(
                    fn,
                    items,
                    preprocessing,
                    device=device,
                    batch_size=batch_size,
                    train=views > 1,
                    num_workers=num_workers,
                    autocast_dtype=autocast_dtype,
                    description=description,
                )
                np.save(staging / f"view-{view}.npy", rows.astype(STORAGE_DTYPES[self.dtype]))
            (staging / "meta.json").write_text(json.dumps({"items": len(items), "views": views, "name": name}))
        return self._read(target, views)

    def _read(self, folder: Path, views: int) -> list[torch.Tensor]:
        paths = [folder / f"view-{view}.npy" for view in range(views)]
        in_memory = sum(p.stat().st_size for p in paths) <= self.max_memory_bytes
        # Copy-on-write mapping: torch needs a writable array, and the file must never change.
        arrays = [np.load(p) if in_memory else np.load(p, mmap_mode="c") for p in paths]
        return [torch.from_numpy(array) for array in arrays]
