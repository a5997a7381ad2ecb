"""Run by tests/training/test_distributed.py under `torchrun --nproc_per_node 2`.

``ddp_fit_script.py OUT full``: full fine-tuning (DDP). ``ddp_fit_script.py OUT frozen``: the feature cache resumed
from shards the test left in ``OUT/resume``, then a frozen fit on cached features. Each rank writes its model's
state (``rank<r>.safetensors``) and what it saw (``rank<r>.json``).
"""

import json
import sys
from pathlib import Path

import tiny_backend  # noqa: F401  (registers test_cnn; the test puts tests/ on PYTHONPATH)
import torch
from safetensors.torch import save_file

import finetuner
from finetuner.data import load_fashion_mnist
from finetuner.training import distributed

out, mode = Path(sys.argv[1]), sys.argv[2]
data = load_fashion_mnist("train").subset(list(range(0, 2000, 25)))
evaluation = load_fashion_mnist("test").subset(list(range(0, 1000, 25)))
seen: dict = {}

if mode == "frozen":
    from cache_case import resume_case  # the cache the test interrupted, rebuilt the same way

    distributed.init_distributed()
    cache, net, items, compute = resume_case(out / "resume")
    seen["resume_features"] = compute(cache, net, items)[0].tolist()
    seen["resume_rows"] = net.rows

    rows = [0]

    def count_backbone_rows(module, args):
        # the backbone's first layer, in the inference passes (the cache's; training runs on cached features)
        if isinstance(module, torch.nn.Conv2d) and module.in_channels == 3 and torch.is_inference_mode_enabled():
            rows[0] += len(args[0])

    handle = torch.nn.modules.module.register_module_forward_pre_hook(count_backbone_rows)
    # PyTorch runs every batch, so the hook sees every row (onnxruntime would leave only first batches to PyTorch).

options = {"freeze": True, "cache_dir": out / "cache", "cache_engine": "torch"} if mode == "frozen" else {}
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
    **options,
)
assert distributed.world_size() == 2
if mode == "frozen":
    handle.remove()
    seen["backbone_rows"] = rows[0]
seen["metrics"], seen["history"] = run.metrics, run.history
rank = distributed.rank()
save_file({k: v.detach().contiguous() for k, v in run.model.state_dict().items()}, str(out / f"rank{rank}.safetensors"))
(out / f"rank{rank}.json").write_text(json.dumps(seen))
