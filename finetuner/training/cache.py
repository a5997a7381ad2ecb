"""The feature cache: a frozen backbone runs once over the data; the head then trains for many epochs on its
features. Features live on disk (one ``.npy`` per view), keyed by the backbone weights, the data and the
preprocessing, so a second `fit` with another head, loss or ``output_dim`` reuses them.

The items are cut into shards, each computed and saved on its own (atomically) before being copied into the final
file; so memory stays bounded by a shard, a run that dies keeps its finished shards, and under ``torchrun`` every
process computes its share of the shards into the same (shared) folder."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import numbers
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from finetuner.core import distributed
from finetuner.core.files import atomic_file, atomic_folder
from finetuner.data import take_items
from finetuner.inference import OnnxFunction, batched_outputs, check_engine, planned_engine

if TYPE_CHECKING:
    from finetuner.data.preprocessing import Preprocessing

logger = logging.getLogger("finetuner")

STORAGE_DTYPES = {"float32": np.float32, "float16": np.float16}
# the output widths of each function (by fingerprint) seen in this process: a later pass in onnxruntime, whose
# graph is not checked against PyTorch again, still knows where one name's columns end and the next one's begin
_WIDTHS: dict[str, list[int]] = {}


def fingerprint_module(module: nn.Module) -> str:
    """SHA-256 over the names, shapes and bytes of every tensor in ``module``'s state dict."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def fingerprint_features(backbone: nn.Module, pool: nn.Module) -> str:
    """The fingerprint of what computes cached features: the (chopped) backbone's tensors and the pooling's
    config, so two poolings of one layer never share a cache entry.

    Example:
        >>> fingerprint_features(model.backbone, model.pool)  # doctest: +SKIP
    """
    config = pool.config() if hasattr(pool, "config") else type(pool).__name__
    weights = fingerprint_module(nn.ModuleDict({"backbone": backbone, "pool": pool}))
    return hashlib.sha256(f"{weights}:{json.dumps(config, sort_keys=True, default=str)}".encode()).hexdigest()


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

    Under ``torchrun`` every process calls `features` with the same arguments: each computes its share of the
    shards missing from the cache folder (which must then be on storage every process sees), rank 0 joins them,
    and every process reads the result. Shards finished by an earlier, interrupted run are not computed again.

    Args:
        folder: where cached features live (default ``<finetuner cache>/features``, i.e. ``$FINETUNER_CACHE``).
        max_memory_bytes: features up to this size are read into RAM; larger ones are memory-mapped.
        dtype: storage type, ``float32`` or ``float16`` (half the disk and memory).
        shard_size: items per shard (fewer when that gives every process a shard): the unit of work, of memory
            while computing, and of what an interrupted run keeps.
        engine: what runs the features: ``"auto"`` (onnxruntime where it reproduces PyTorch, on the CPU), ``"torch"``
            or ``"onnxruntime"`` (see `finetuner.inference.OnnxFunction`). The traced graphs live in ``folder/onnx``.

    After `features`, ``engines`` maps each pass's description to the engine that computed (or, for a reused cache,
    had computed) it.

    Example:
        >>> cache = FeatureCache("out/feature-cache")
        >>> backbone = fingerprint_module(model.backbone)  # hash the weights once, reuse for every item list
        >>> views = cache.features(model.features, backbone, items, prep, device=torch.device("cpu"))
        ... # doctest: +SKIP
    """

    def __init__(
        self,
        folder: str | Path | None = None,
        max_memory_bytes: int = 2 * 1024**3,
        dtype: str = "float32",
        shard_size: int = 8192,
        engine: str = "auto",
    ):
        if dtype not in STORAGE_DTYPES:
            raise ValueError(f"cache dtype must be one of {sorted(STORAGE_DTYPES)}, got {dtype!r}.")
        if isinstance(shard_size, bool) or shard_size < 1:
            raise ValueError(f"shard_size must be a positive number of items, got {shard_size!r}.")
        if folder is None:
            from finetuner.models.weights import cache_dir

            folder = cache_dir() / "features"
        self.folder, self.max_memory_bytes, self.dtype = Path(folder), max_memory_bytes, dtype
        self.shard_size = shard_size
        self.engine = check_engine(engine)
        self.engines: dict[str, str] = {}
        self._refused: dict[str, str] = {}  # failed exports, by graph file: each tried and logged once per cache

    def key(
        self,
        model_fingerprint: str,
        items: Sequence[Any],
        preprocessing: Preprocessing | None,
        views: int,
        items_fingerprint: str | None = None,
        engine: str = "torch",
    ) -> str:
        """The cache key: backbone weights (their `fingerprint_module`), data (``items_fingerprint`` when already
        computed), preprocessing, number of views, storage dtype and engine (what `planned_engine` gives)."""
        parts = {
            "engine": engine,
            "model": model_fingerprint,
            "items": items_fingerprint or fingerprint_items(items),
            "preprocessing": preprocessing.to_config() if preprocessing is not None else None,
            "views": views,
            "dtype": self.dtype,
        }
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]

    def shards(self, num_items: int) -> list[tuple[int, int]]:
        """The ``(start, stop)`` item ranges of the shards, for this number of processes."""
        size = min(self.shard_size, max(1, math.ceil(num_items / distributed.world_size())))
        return [(start, min(start + size, num_items)) for start in range(0, num_items, size)]

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
        options = {"device": device, "views": views, "batch_size": batch_size, "num_workers": num_workers}
        return self.named_features(
            lambda inputs: {name: fn(inputs)},
            {name: model_fingerprint},
            items,
            preprocessing,
            autocast_dtype=autocast_dtype,
            description=name,
            **options,
        )[name]

    def named_features(
        self,
        fn: Callable[[Any], Mapping[str, torch.Tensor]],
        fingerprints: Mapping[str, str],
        items: Sequence[Any],
        preprocessing: Preprocessing,
        *,
        device: torch.device,
        views: int = 1,
        batch_size: int = 64,
        num_workers: int | str = "auto",
        autocast_dtype: torch.dtype | None = None,
        description: str = "data",
    ) -> dict[str, list[torch.Tensor]]:
        """`features` for a ``fn`` that returns several outputs ``{name: (B, D)}`` in one pass (e.g. the pooled
        outputs of several layers): each output is cached under its own key, made from its entry in
        ``fingerprints``. When any is missing, one pass over the missing shards computes all of them.

        Example:
            >>> taps = finetuner.tailor.layer_features(module, ["layer3", "avgpool"], (3, 224, 224))
            >>> fingerprints = {"layer3": "...", "avgpool": "..."}  # e.g. fingerprint_features(chopped, pool)
            >>> cache.named_features(taps, fingerprints, items, prep, device=torch.device("cpu"))  # doctest: +SKIP
        """
        if isinstance(views, bool) or not isinstance(views, numbers.Integral) or views < 1:
            raise ValueError(
                f"cache_views must be a whole number of at least 1, got {views!r}: 1 caches the evaluation transform "
                "(no augmentation), K > 1 caches K augmented views per item."
            )
        # Rank 0 hashes the items (one pass over the files, not one per process) and decides for everyone.
        engine = planned_engine(self.engine, device)
        decision = None
        if distributed.is_main_process():
            items_key = fingerprint_items(items)
            keys = {
                name: self.key(fp, items, preprocessing, views, items_key, engine) for name, fp in fingerprints.items()
            }
            decision = {name: (key, (self.folder / key / "meta.json").is_file()) for name, key in keys.items()}
        decision = distributed.broadcast_object(decision)
        targets = {name: self.folder / key for name, (key, _) in decision.items()}
        missing = [name for name, (_, done) in decision.items() if not done]
        if not missing:
            logger.info("reusing cached features of %s (%d items, %d view(s))", description, len(items), views)
            meta = json.loads((targets[next(iter(targets))] / "meta.json").read_text())
            self.engines[description] = meta.get("engine", "torch")
        else:
            # what the engine runs: the outputs of these fingerprints, in this order (their names are only labels)
            fingerprint = hashlib.sha256(json.dumps([fingerprints[n] for n in missing]).encode()).hexdigest()
            self._compute(fn, missing, targets, items, preprocessing, views, description, device=device,
                          batch_size=batch_size, num_workers=num_workers, autocast_dtype=autocast_dtype,
                          fingerprint=fingerprint, engine=engine)  # fmt: skip
        return {name: self._read(target, views) for name, target in targets.items()}

    def _compute(
        self,
        fn: Callable[[Any], Mapping[str, torch.Tensor]],
        names: list[str],
        targets: Mapping[str, Path],
        items: Sequence[Any],
        preprocessing: Preprocessing,
        views: int,
        description: str,
        *,
        fingerprint: str,
        engine: str,
        device: torch.device,
        **options: Any,
    ) -> None:
        """Compute the shards of ``names`` not kept from an earlier run (each process its share), then join them.
        ``engine`` is `planned_engine`'s answer; ``fingerprint`` identifies ``fn`` with ``names`` for it."""
        parts = {name: targets[name].with_name(f"{targets[name].name}.parts") for name in names}
        shards = [(view, start, stop) for view in range(views) for start, stop in self.shards(len(items))]
        todo = None
        if distributed.is_main_process():
            todo = [s for s in shards if not all((parts[name] / _shard_name(*s)).is_file() for name in names)]
            logger.info(
                "caching %s features: %d items, %d view(s), %d shard(s) to compute (%d kept from an earlier run) "
                "on %d process(es)",
                description,
                len(items),
                views,
                len(todo),
                len(shards) - len(todo),
                distributed.world_size(),
            )
        mine = distributed.broadcast_object(todo)[distributed.rank() :: distributed.world_size()]
        def joined(inputs: Any) -> torch.Tensor:
            outputs = fn(inputs)
            _WIDTHS[fingerprint] = [outputs[name].shape[1] for name in names]
            return torch.cat([outputs[name].float() for name in names], dim=1)

        run: Callable[[Any], torch.Tensor] = joined
        if engine == "onnxruntime":
            run = OnnxFunction(joined, fingerprint, self.folder / "onnx", device=device, refused=self._refused,
                               explicit=self.engine == "onnxruntime")  # fmt: skip
        shown = distributed.is_main_process()  # one progress bar, rank 0's
        for number, (view, start, stop) in enumerate(mine, start=1):
            rows = batched_outputs(
                run,
                take_items(items, range(start, stop)),
                preprocessing,
                train=views > 1,
                description=f"caching {description} features ({number}/{len(mine)})" if shown else None,
                epoch=view,  # every view its own augmentation draw ...
                seed=start,  # ... and every shard its own items' seeds
                device=device,
                **options,
            )
            bounds = np.cumsum(_WIDTHS[fingerprint])[:-1]
            for name, part in zip(names, np.split(rows, bounds, axis=1)):
                with atomic_file(parts[name] / _shard_name(view, start, stop)) as path, path.open("wb") as file:
                    np.save(file, part.astype(STORAGE_DTYPES[self.dtype], copy=False))
        if isinstance(run, OnnxFunction) and run.engine is not None:  # None: this process had no shard to compute
            engine = run.engine
        self.engines[description] = engine
        distributed.barrier()
        error = None
        if distributed.is_main_process():
            for name in names:
                label = description if name == description else f"{description}: {name}"
                error = error or self._join(parts[name], targets[name], shards, len(items), label, engine)
        error = distributed.broadcast_object(error)
        if error is not None:
            raise ValueError(error)

    def _join(
        self, parts: Path, target: Path, shards: list[tuple[int, int, int]], num_items: int, name: str, engine: str
    ) -> str | None:
        """Copy the shards into one ``view-<v>.npy`` per view (a shard at a time); None, or what went wrong.
        ``meta.json`` records ``engine``, the one that computed the shards of this process."""
        missing = [_shard_name(*shard) for shard in shards if not (parts / _shard_name(*shard)).is_file()]
        if missing:
            return (
                f"{len(missing)} feature shard(s) that other processes computed are not in {parts} (e.g. "
                f"{missing[0]}): every process must see the same cache folder. Put it on storage all machines share "
                "(FINETUNER_CACHE=/shared/path, or cache_dir=...)."
            )
        views = 1 + max(view for view, _, _ in shards)
        with atomic_folder(target, replace=False) as staging:  # another job may finish the same work first
            for view in range(views):
                paths = [(start, stop, parts / _shard_name(v, start, stop)) for v, start, stop in shards if v == view]
                dim = np.load(paths[0][2], mmap_mode="r").shape[1]
                out = np.lib.format.open_memmap(
                    staging / f"view-{view}.npy", mode="w+", dtype=STORAGE_DTYPES[self.dtype], shape=(num_items, dim)
                )
                for start, stop, path in paths:
                    out[start:stop] = np.load(path, mmap_mode="r")
                out.flush()
                del out
            meta = {"items": num_items, "views": views, "name": name, "engine": engine}
            (staging / "meta.json").write_text(json.dumps(meta))
        shutil.rmtree(parts, ignore_errors=True)
        return None

    def _read(self, folder: Path, views: int) -> list[torch.Tensor]:
        paths = [folder / f"view-{view}.npy" for view in range(views)]
        in_memory = sum(p.stat().st_size for p in paths) <= self.max_memory_bytes
        # Copy-on-write mapping: torch needs a writable array, and the file must never change.
        arrays = [np.load(p) if in_memory else np.load(p, mmap_mode="c") for p in paths]
        return [torch.from_numpy(array) for array in arrays]


def _shard_name(view: int, start: int, stop: int) -> str:
    return f"view-{view}-items-{start:09d}-{stop:09d}.npy"
