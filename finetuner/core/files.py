"""Atomic folder writes (build under a temporary name, then rename into place) and safe reads of the files
finetuner writes, each failing with one message that names the file and what is wrong with it."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# A staging folder is ".<target>.staging-<host>-<pid>-<random>"; the folder it replaces waits, for the instant
# between two renames, as ".<target>.old-<host>-<pid>-<random>".
_STAGING = re.compile(r"^\.(?P<target>.+)\.(?P<kind>staging|old)-(?:(?P<host>[\w.]+)-(?P<pid>\d+)-\w+|\w+)$")
# Staging folders of older versions carry no process id: they count as abandoned after a day.
LEGACY_STAGING_AGE_S = 24 * 3600


def _host() -> str:
    return re.sub(r"[^\w.]", "_", socket.gethostname()) or "host"


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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but another user's
        return True
    return True


def _abandoned(entry: Path, match: re.Match) -> bool:
    """Whether a staging folder's writer is gone: a process of this host that no longer runs, or, for folders
    of other hosts or of older versions (no process id), no change for `LEGACY_STAGING_AGE_S`. A replaced
    folder (``.old-``) whose successor never arrived is the only complete copy left, so it always stays."""
    if match["kind"] == "old" and not (entry.parent / match["target"]).exists():
        return False
    if match["pid"] is not None and match["host"] == _host():
        return not _pid_alive(int(match["pid"]))
    try:
        return time.time() - entry.stat().st_mtime > LEGACY_STAGING_AGE_S
    except FileNotFoundError:
        return False


def remove_abandoned_staging(folder: str | Path) -> list[Path]:
    """Delete the staging folders that killed writers left in ``folder`` and return them.

    Only hidden ``.<name>.staging-*`` / ``.<name>.old-*`` folders of dead processes go; complete folders and
    the staging folders of running writers (this process's included) are never touched. `atomic_folder`
    calls this before each write, so a crashed run's leftovers disappear with the next save.

    Example:
        >>> remove_abandoned_staging("out/checkpoints")  # doctest: +SKIP
        [PosixPath('out/checkpoints/.epoch-0003.staging-host-4242-k2j3h4')]
    """
    folder = Path(folder)
    removed = []
    with contextlib.suppress(FileNotFoundError):
        for entry in folder.iterdir():
            match = _STAGING.match(entry.name)
            if match and entry.is_dir() and not entry.is_symlink() and _abandoned(entry, match):
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
    return removed


@contextlib.contextmanager
def staging_folder(target: str | Path) -> Iterator[Path]:
    """Yield a scratch folder next to ``target`` for a writer that moves its own files into place (ONNX exports);
    it is removed when the block ends, and a killed writer's one is removed by the next write next to ``target``
    (`remove_abandoned_staging`, the same naming as `atomic_folder`).

    Example:
        >>> with staging_folder("out/model.onnx") as scratch:  # doctest: +SKIP
        ...     (scratch / "model.onnx").write_bytes(b"...")
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned_staging(target.parent)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.staging-{_host()}-{os.getpid()}-"))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def atomic_folder(target: str | Path, *, replace: bool = True) -> Iterator[Path]:
    """Yield an empty staging folder next to ``target``; on success it becomes ``target`` in one rename.

    Readers see the old folder or the new one, never a half-written one; on an error the staging folder is
    removed and ``target`` is left as it was. With ``replace=False`` an existing ``target`` wins (another
    process finished the same work first) and the staging folder is dropped. Staging folders left by killed
    writers are removed first (`remove_abandoned_staging`).

    Example:
        >>> with atomic_folder("out/model") as staging:  # doctest: +SKIP
        ...     (staging / "config.json").write_text("{}")
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned_staging(target.parent)
    writer = f"{_host()}-{os.getpid()}-"
    prefix = f".{target.name}.staging-{writer}"
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=prefix))
    try:
        yield staging
        _apply_umask(staging)
        if target.exists() and not replace:
            shutil.rmtree(staging)
        elif target.exists():
            old = target.with_name(f".{target.name}.old-{writer}{staging.name[len(prefix):]}")
            os.replace(target, old)
            os.replace(staging, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def read_json(path: str | Path, what: str) -> Any:
    """Parse a JSON file, or raise a ``ValueError`` naming the file, the position and ``what`` it should be.

    Example:
        >>> read_json("out/model/config.json", "the model's configuration")  # doctest: +SKIP
    """
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is missing: it should hold {what}.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is damaged: it should hold {what} as JSON, but {error}.") from None


def read_safetensors(path: str | Path, what: str, *, shapes_only: bool = False) -> dict[str, Any]:
    """Every tensor of a ``.safetensors`` file (or, with ``shapes_only``, every tensor's shape, from the header
    alone), or a ``ValueError`` naming the file when it is truncated, damaged or not a safetensors file at all
    (a pickle, say), never suggesting unsafe loading.

    Example:
        >>> tensors = read_safetensors("out/model/model.safetensors", "the model's weights")  # doctest: +SKIP
    """
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: it should hold {what}.")
    try:
        if not shapes_only:
            return load_file(str(path))
        with safe_open(str(path), "pt") as file:
            return {name: tuple(file.get_slice(name).get_shape()) for name in file.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise ValueError(
            f"{path} cannot be read: it is truncated, damaged or not a safetensors file ({_sniff(path)}: {error}). "
            f"It should hold {what}: write it again (finetuner saves with save()), or restore a complete copy."
        ) from None


def read_torch_state(path: str | Path, what: str) -> Any:
    """``torch.load`` restricted to tensors and plain containers (``weights_only=True``); a file holding anything
    else, or a damaged one, raises a ``ValueError`` naming the file instead of torch's advice to allow
    arbitrary pickled code.

    Example:
        >>> state = read_torch_state("out/checkpoints/epoch-0002/trainer_state.pt", "the trainer state")
        ... # doctest: +SKIP
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: it should hold {what}.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError, RuntimeError, KeyError, EOFError, ... by content
        if "allowed global" in str(error):
            reason = "it holds Python objects, and finetuner never unpickles objects (they can run code)"
        else:
            reason = f"it is damaged, truncated or not a torch tensor file ({_sniff(path)})"
        raise ValueError(
            f"{path} cannot be read safely: {reason}. It should hold {what}: write it again with finetuner, "
            "or convert it to a plain state dict of tensors (or a .safetensors file)."
        ) from None


def _sniff(path: Path) -> str:
    """What the file looks like, from its first bytes (for error messages)."""
    size = path.stat().st_size
    with open(path, "rb") as file:
        head = file.read(8)
    if size == 0:
        return "the file is empty"
    if head.startswith(b"PK"):
        return f"a torch.save zip archive of {size} bytes"
    if head[:1] == b"\x80":
        return f"a Python pickle of {size} bytes"
    if head.lstrip()[:1] in (b"{", b"["):
        return f"a JSON text of {size} bytes"
    return f"{size} bytes"


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
