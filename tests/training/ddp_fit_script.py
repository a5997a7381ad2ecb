"""Run by tests/training/test_distributed.py under `torchrun --nproc_per_node 2`."""

import sys
from pathlib import Path

import tiny_backend  # noqa: F401  (registers test_cnn; the test puts tests/ on PYTHONPATH)
from safetensors.torch import save_file

import finetuner
from finetuner.data import load_fashion_mnist
from finetuner.training import distributed

out = Path(sys.argv[1])
data = load_fashion_mnist("train").subset(list(range(0, 2000, 25)))
evaluation = load_fashion_mnist("test").subset(list(range(0, 1000, 25)))
run = finetuner.fit(
    "test_cnn",
    data,
    evaluation,
    pretrained=False,
    output_dim=8,
    epochs=2,
    batch_size=16,
    num_workers=0,
    output_dir=out / "run",
    cache_dir=out / "cache",
)
# Parameters are averaged by DDP; BatchNorm running statistics are rank 0's (broadcast at each forward).
state = {k: v.detach().contiguous() for k, v in run.model.named_parameters()}
save_file(state, str(out / f"rank{distributed.rank()}.safetensors"))
assert distributed.world_size() == 2
assert "eval/map@r" in run.history[-1]  # every rank sees rank 0's evaluation
