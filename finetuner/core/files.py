"""Atomic folder writes: build a folder under a temporary name, then rename it into place."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _apply_umask(folder: Path) -> None:
    """`mkdtemp` and some writers create private (0700/0600) entries; give them the usual permissions."""
    mask = _umask()
    os.chmod(folder, 0o777 & ~mask)
    for path in folder.rglob("*"):
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~mask)


@contextlib.contextmanager
def atomic_folder(target: str | Path, *, replace: bool = True) -> Iterator[Path]:
    """Yield an empty staging folder next to ``target``; on success it becomes ``target`` in one rename.

    Readers see the old folder or the new one, never a half-written one; on an error the staging folder is
    removed and ``target`` is left as it was. With ``replace=False`` an existing ``target`` wins (another
    process finished the same work first) and the staging folder is dropped.

    Example:
        >>> with atomic_folder("out/model") as staging:  # doctest: +SKIP
        ...     (staging / "config.json").write_text("{}")
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.staging-"))
    try:
        yield staging
        _apply_umask(staging)
        if target.exists() and not replace:
            shutil.rmtree(staging)
        elif target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
            os.replace(staging, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_file(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; once the block succeeds, the file written there becomes
    ``target`` in one rename (atomic on one filesystem, shared ones included), so readers never see half a file.

    Example:
        >>> with atomic_file("cache/shard-0.npy") as path:  # doctest: +SKIP
        ...     np.save(path, rows)
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        yield staging
        os.replace(staging, target)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
