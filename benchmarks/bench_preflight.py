"""P13: `finetuner.preflight` against one plain PyTorch forward pass of the backbone, side by side in one process.

``finetuner.preflight(model, "fashion-mnist", epochs=5)`` with the defaults otherwise (shares 10 / 25 / 50 / 100 %,
3 seeds, 3 shuffled-label runs: 15 heads, trained together per number of batches; fit's validation hold-out;
the default feature engine), **cold** feature cache, against the reference: one plain PyTorch pass of the same
backbone (the ``timm`` model, classifier included, ``model.eval()``, ``inference_mode``, ``channels_last``) over
the same 2,000 images with the same preprocessing, a DataLoader loop. The reference runs before and after the
pre-flight (median reported), so the ratio means something on a shared machine.

Run: ``python benchmarks/bench_preflight.py`` (EfficientNet-Lite0, packaged ImageNet weights; about 10 minutes on 2
loaded CPU cores), ``--epochs 1 --seeds 1`` for a smoke run, ``--threads 1`` on an oversubscribed machine,
``--engine torch`` for the pass in PyTorch too.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile

import torch
from run import plain_forward_pass, timed

import finetuner
from finetuner.data import load_fashion_mnist
from finetuner.models import build_backbone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--engine", default="auto", help="preflight's cache_engine: auto, torch or onnxruntime")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None, help="torch threads for both sides (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_fashion_mnist("train")  # what "fashion-mnist" reads: training, validation and held-out classes
    backbone = build_backbone(args.model, pretrained=True)
    module = backbone.module.to(memory_format=torch.channels_last)

    def reference() -> None:
        plain_forward_pass(module, data.items, backbone.preprocessing, args.batch_size)

    forward = [timed(reference)]
    with tempfile.TemporaryDirectory() as cold:
        report = None

        def ours() -> None:
            nonlocal report
            report = finetuner.preflight(
                args.model, "fashion-mnist", epochs=args.epochs, seeds=args.seeds, cache_dir=cold,
                cache_engine=args.engine, verbose=False,
            )  # fmt: skip

        total = timed(ours)
    forward.append(timed(reference))
    plain = statistics.median(forward)
    timing = report.timing
    heads = total - timing["backbone"] - timing["evaluation"]
    print(report)
    print()
    threads, load = torch.get_num_threads(), os.getloadavg()[0]
    print(f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} ({threads} threads), load average "
          f"{load:.1f}; finetuner {finetuner.__version__}; {args.model}, {len(data)} images, "
          f"{(len(report.curve) + 1) * args.seeds} heads x {args.epochs} epochs, engine {args.engine}")  # fmt: skip
    print(f"plain PyTorch pass      {plain:7.1f} s  (before / after: {forward[0]:.1f}, {forward[1]:.1f})")
    print(f"preflight, cold cache   {total:7.1f} s  = {total / plain:.2f}x the plain pass")
    print(f"  its backbone pass     {timing['backbone']:7.1f} s  = {timing['backbone'] / plain:.2f}x")
    print(f"  heads and scoring     {heads:7.1f} s  = {heads / plain:.2f}x (one head epoch on all items, its share: "
          f"{timing['head_epoch']:.2f} s)")  # fmt: skip


if __name__ == "__main__":
    main()
