"""`fit` under torchrun: two CPU processes (gloo), DDP keeps the replicas identical, rank 0 saves."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import finetuner


@pytest.mark.skipif(
    shutil.which("torchrun") is None and not Path(sys.executable).with_name("torchrun").exists(),
    reason="torchrun not installed",
)
def test_fit_under_torchrun_trains_identical_replicas(tmp_path):
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    script = Path(__file__).with_name("ddp_fit_script.py")
    # the finetuner under test (not another install) and tests/ (for tiny_backend) on the workers' path
    path = [str(Path(finetuner.__file__).parents[1]), str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(filter(None, path))}
    result = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node", "2", str(script), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = load_file(str(tmp_path / "rank0.safetensors")), load_file(str(tmp_path / "rank1.safetensors"))
    assert rank0.keys() == rank1.keys()
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name
    saved = finetuner.load(tmp_path / "run" / "model")  # written by rank 0 only
    assert saved.encode(finetuner.data.load_fashion_mnist("test").items[:2]).shape == (2, 8)
