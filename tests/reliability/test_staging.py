"""Writers killed mid-write leave hidden staging folders; the next write removes those of dead processes and
never touches complete folders or the staging folders of writers still running."""

import os
import socket
import subprocess
import sys
import time

import torch

from finetuner.core.files import LEGACY_STAGING_AGE_S, atomic_folder, remove_abandoned_staging
from finetuner.training.checkpoint import list_checkpoints, save_checkpoint


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def host() -> str:
    return "".join(c if c.isalnum() or c in "_." else "_" for c in socket.gethostname())


def state(epoch: int) -> dict:
    return {"model": {"w": torch.ones(2)}, "epoch": epoch, "global_step": epoch, "history": [], "optimizers": [],
            "schedulers": [], "torch_rng": torch.get_rng_state()}


def test_the_next_checkpoint_removes_a_killed_writers_staging_folder(tmp_path):
    save_checkpoint(tmp_path, state(1))
    stale = tmp_path / f".epoch-0002.staging-{host()}-{dead_pid()}-k2j3h4x9"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"half of it")
    running = tmp_path / f".epoch-0002.staging-{host()}-{os.getpid()}-abcdefgh"  # a writer still at work
    running.mkdir()
    save_checkpoint(tmp_path, state(2))
    assert not stale.exists()
    assert running.exists()
    assert [p.name for p in list_checkpoints(tmp_path)] == ["epoch-0001", "epoch-0002"]


def test_staging_folders_without_a_process_id_go_only_when_old(tmp_path):
    legacy_old, legacy_new = tmp_path / ".epoch-0003.staging-abcd1234", tmp_path / ".epoch-0004.staging-efgh5678"
    other_host = tmp_path / f".epoch-0005.staging-elsewhere-{dead_pid()}-abcdefgh"
    for folder in (legacy_old, legacy_new, other_host):
        folder.mkdir()
    long_ago = time.time() - LEGACY_STAGING_AGE_S - 60
    os.utime(legacy_old, (long_ago, long_ago))
    assert remove_abandoned_staging(tmp_path) == [legacy_old]
    assert legacy_new.exists() and other_host.exists()


def test_a_replaced_folder_whose_successor_never_arrived_is_kept(tmp_path):
    """Killed between the two renames of a replace: ``.model.old-*`` is then the only complete copy."""
    orphan = tmp_path / f".model.old-{host()}-{dead_pid()}-abcdefgh"
    orphan.mkdir()
    (orphan / "config.json").write_text("{}")
    with atomic_folder(tmp_path / "other") as staging:
        (staging / "x").write_text("1")
    assert orphan.exists()
    with atomic_folder(tmp_path / "model") as staging:  # the successor arrives: the old copy may go next time
        (staging / "config.json").write_text("{}")
    assert remove_abandoned_staging(tmp_path) == [orphan]
    assert (tmp_path / "model" / "config.json").is_file() and (tmp_path / "other" / "x").is_file()


def test_a_failed_write_leaves_nothing_and_a_complete_folder_is_never_removed(tmp_path):
    with atomic_folder(tmp_path / "model") as staging:
        (staging / "a").write_text("1")
    try:
        with atomic_folder(tmp_path / "model") as staging:
            (staging / "a").write_text("2")
            raise RuntimeError("killed")
    except RuntimeError:
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert (tmp_path / "model" / "a").read_text() == "1"
    assert remove_abandoned_staging(tmp_path) == []


def test_a_killed_onnx_exports_scratch_folder_goes_with_the_next_export(tmp_path):
    import finetuner

    model = finetuner.build_model("test_cnn", pretrained=False, output_dim=8)
    stale = tmp_path / f".model.onnx.staging-{host()}-{dead_pid()}-k2j3h4x9"  # what a killed export leaves
    stale.mkdir()
    (stale / "model.onnx").write_bytes(b"half of it")
    model.export(tmp_path / "model.onnx", format="onnx")
    assert not stale.exists() and (tmp_path / "model.onnx").is_file()
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # its own scratch is gone too
