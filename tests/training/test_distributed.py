"""`fit` under torchrun: two CPU processes (gloo). Full fine-tuning: DDP keeps the replicas identical, rank 0 saves.
Frozen backbone: each item goes through the backbone once in all, shards an interrupted run finished are reused,
and every rank ends with the model one process would have trained."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from cache_case import SHARD_SIZE, resume_case
from safetensors.torch import load_file

import finetuner
from finetuner.data import load_fashion_mnist

TORCHRUN = Path(sys.executable).with_name("torchrun")
needs_torchrun = pytest.mark.skipif(
    shutil.which("torchrun") is None and not TORCHRUN.exists(), reason="torchrun not installed"
)


def torchrun(out: Path, mode: str) -> list[dict]:
    """Run ddp_fit_script.py in ``mode`` on 2 processes; what each rank reported."""
    script = Path(__file__).with_name("ddp_fit_script.py")
    # the finetuner under test (not another install) and tests/ (for tiny_backend) on the workers' path
    path = [str(Path(finetuner.__file__).parents[1]), str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(filter(None, path))}
    result = subprocess.run(
        [str(TORCHRUN), "--standalone", "--nproc_per_node", "2", str(script), str(out), mode],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return [json.loads((out / f"rank{rank}.json").read_text()) for rank in range(2)]


def assert_same_state(first: dict, second: dict, atol: float = 0.0) -> None:
    assert first.keys() == second.keys()
    for name in first:
        torch.testing.assert_close(first[name], second[name], rtol=0, atol=atol, msg=name)


def rank_states(out: Path) -> tuple[dict, dict]:
    return load_file(str(out / "rank0.safetensors")), load_file(str(out / "rank1.safetensors"))


@needs_torchrun
def test_full_fine_tuning_under_torchrun_ends_with_one_model_on_every_rank(tmp_path):
    ranks = torchrun(tmp_path, "full")
    # parameters are kept in step by DDP; BatchNorm statistics too, since rank 0's are shared at the end
    assert_same_state(*rank_states(tmp_path))
    assert ranks[0]["metrics"] == ranks[1]["metrics"]
    assert "eval/map@r" in ranks[1]["history"][-1]  # every rank sees rank 0's evaluation
    saved = finetuner.load(tmp_path / "run" / "model")  # written by rank 0 only
    assert saved.encode(load_fashion_mnist("test").items[:2]).shape == (2, 8)


@needs_torchrun
def test_frozen_fit_under_torchrun_extracts_each_item_once_and_matches_one_process(tmp_path):
    # A run that died after two shards of the cache: those shards stay, nothing else is final.
    cache, net, items, compute = resume_case(tmp_path / "resume", fail_after=2 * SHARD_SIZE)
    with pytest.raises(RuntimeError, match="simulated crash"):
        compute(cache, net, items)
    assert len(list((tmp_path / "resume").glob("*.parts/*.npy"))) == 2

    ranks = torchrun(tmp_path, "frozen")

    # the restart computed only the missing shards, split between the ranks, and got the uninterrupted result
    assert sum(rank["resume_rows"] for rank in ranks) == len(items) - 2 * SHARD_SIZE
    assert all(rank["resume_rows"] > 0 for rank in ranks)
    reference_cache, reference_net, _, _ = resume_case(tmp_path / "reference")
    expected = compute(reference_cache, reference_net, items)[0]
    for rank in ranks:
        torch.testing.assert_close(torch.tensor(rank["resume_features"]), expected, rtol=1e-5, atol=1e-5)

    # the fit: 80 training and 40 evaluation items went through the backbone once in all, shared by the ranks
    assert sum(rank["backbone_rows"] for rank in ranks) == 80 + 40
    assert all(rank["backbone_rows"] > 0 for rank in ranks)
    rank0, rank1 = rank_states(tmp_path)
    assert_same_state(rank0, rank1)
    assert ranks[0]["metrics"] == ranks[1]["metrics"] and ranks[0]["history"] == ranks[1]["history"]

    # one process trains the same head on the same batches
    single = finetuner.fit(
        "test_cnn",
        load_fashion_mnist("train").subset(list(range(0, 2000, 25))),
        load_fashion_mnist("test").subset(list(range(0, 1000, 25))),
        pretrained=False,
        freeze=True,
        output_dim=8,
        epochs=2,
        batch_size=16,
        num_workers=0,
        cache_dir=tmp_path / "single-cache",
    )
    assert_same_state(rank0, {k: v.detach() for k, v in single.model.state_dict().items()}, atol=1e-4)
    for key, value in single.metrics["after"].items():
        assert ranks[0]["metrics"]["after"][key] == pytest.approx(value, abs=0.02), key
