"""benchmarks/bench_gpu.py without CUDA: one clear line, status 0, nothing measured."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_without_cuda_it_says_so_and_exits_cleanly():
    environment = os.environ | {"CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench_gpu.py")],
        cwd=REPO, env=environment, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    expected = "bench_gpu: no CUDA device here (torch.cuda.is_available() is False): nothing measured."
    assert done.stdout.strip() == expected
    assert "Traceback" not in done.stderr
