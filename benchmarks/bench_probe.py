"""P9: `finetuner.probing` against one plain forward pass of the backbone, side by side in one process.

1. ``probe``: 4 layers x 4 heads (the default heads: none, linear:128, residual:128, residual:256) on a
   Fashion-MNIST subset, **cold** feature cache (a fresh cache folder every repeat): the backbone runs once with
   hooks on the 4 layers, then 12 heads train together on the cached features and 16 rows are scored on held-out
   items and held-out classes.
2. The heads alone, on the probe's cached features: the 12 heads trained together (`train_heads`, what ``probe``
   does) against the same 12 trained one at a time (`train_head` in a loop, what ``probe`` did before).
3. ``sweep``: 20 Optuna trials on the default layer's cached features, **warm** cache (filled beforehand);
   ``--trials 0`` skips it.

The reference is one plain PyTorch pass of the same backbone (``timm`` model, classifier included) over the
same images with the same preprocessing, a DataLoader loop in inference mode. Runs alternate
(reference, probe, reference, sweep, ...) and medians are reported, because absolute times on a shared machine
are not stable. Both sides read items with ``num_workers=0``.

Run: ``python benchmarks/bench_probe.py`` (EfficientNet-Lite0, packaged ImageNet weights, 400 images;
a few minutes on 2 CPU cores), ``--items 100 --repeats 1`` for a smoke run. On a machine shared with other
jobs, ``--threads 1`` keeps both sides off oversubscribed OpenMP threads (small head-training ops suffer most).
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch

import finetuner
from finetuner.data import ItemDataset, load_fashion_mnist, make_loader
from finetuner.models import build_backbone
from finetuner.probing import DEFAULT_HEADS, HeadSpec, Recipe, layer_candidates, probe, sweep, train_head, train_heads
from finetuner.probing.layers import cached_features
from finetuner.training.cache import FeatureCache

HEADS = DEFAULT_HEADS


def plain_forward_pass(module: torch.nn.Module, items, preprocessing, batch_size: int) -> None:
    """The reference: the backbone over the items, a plain DataLoader loop in inference mode."""
    module.eval()
    loader = make_loader(ItemDataset(items, [0] * len(items), preprocessing, train=False), batch_size, num_workers=0)
    with torch.inference_mode():
        for inputs, _ in loader:
            module(inputs.contiguous(memory_format=torch.channels_last))


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--items", type=int, default=400, help="Fashion-MNIST training images (all 10 classes)")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None, help="torch threads for both sides (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.getLogger("optuna").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=UserWarning)  # the sampler's notes on small classes

    data = load_fashion_mnist("train")
    data = data.subset(range(0, len(data), max(1, len(data) // args.items))[: args.items])
    backbone = build_backbone(args.model, pretrained=True)
    module = backbone.module.to(memory_format=torch.channels_last)
    recipe = Recipe(batch_size=args.batch_size, device="cpu")
    options = {"recipe": recipe, "num_workers": 0}
    root = Path(tempfile.mkdtemp(prefix="bench-probe-"))
    warm = root / "warm"
    probe(backbone, data, heads=["none"], cache_dir=warm, **options)  # fill the cache of the sweep and the heads
    features, specs = _heads(backbone, data.items, args.batch_size, warm)
    labels, classes = data.labels, len(data.classes)

    def one_at_a_time() -> None:
        for rows, spec in zip(features, specs):
            train_head(rows, labels, spec, recipe, num_classes=classes)

    def all_together() -> None:
        train_heads(features, labels, specs, recipe, num_classes=classes)

    def reference() -> None:
        plain_forward_pass(module, data.items, backbone.preprocessing, args.batch_size)

    forward, probing, sweeping, separate, together, board, result = [], [], [], [], [], None, None
    for repeat in range(args.repeats):
        forward.append(timed(reference)[0])
        cold = root / f"cold-{repeat}"
        seconds, board = timed(lambda cold=cold: probe(backbone, data, heads=HEADS, cache_dir=cold, **options))
        probing.append(seconds)
        separate.append(timed(one_at_a_time)[0])
        together.append(timed(all_together)[0])
        if args.trials:
            forward.append(timed(reference)[0])
            seconds, result = timed(lambda: sweep(backbone, data, n_trials=args.trials, cache_dir=warm, **options))
            sweeping.append(seconds)

    reference = statistics.median(forward)
    print(board)
    print()
    if result is not None:
        print(result)
        print()
    print(f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} threads)")
    print(f"finetuner {finetuner.__version__}; {args.model}, {len(data)} images, batch {args.batch_size}")
    print(f"plain forward pass       {reference:7.2f} s  (median of {len(forward)}: {_list(forward)})")
    print(
        f"probe {len(board.layers)} layers x {len(HEADS)} heads  {statistics.median(probing):7.2f} s  "
        f"= {statistics.median(probing) / reference:.2f}x  (cold cache; {_list(probing)})"
    )
    one_by_one, joint = statistics.median(separate), statistics.median(together)
    print(
        f"its {sum(h != 'none' for h in HEADS) * len(board.layers)} heads: one at a time {one_by_one:.2f} s, "
        f"together {joint:.2f} s = {one_by_one / joint:.2f}x faster ({_list(separate)} / {_list(together)}); "
        f"{joint / reference:.2f}x the plain pass"
    )
    if result is not None:
        print(
            f"sweep {args.trials} trials         {statistics.median(sweeping):7.2f} s  "
            f"= {statistics.median(sweeping) / reference:.2f}x  (warm cache; {_list(sweeping)}; "
            f"{sum(t.state == 'pruned' for t in result.trials)} pruned)"
        )


def _heads(backbone, items, batch_size: int, cache_dir: Path) -> tuple[list[torch.Tensor], list[HeadSpec]]:
    """The probe's trained heads and, for each, its layer's cached features of every item (the cache is warm)."""
    module, candidates = layer_candidates(backbone, 4)
    found = cached_features(
        backbone, module, candidates, {"train": items}, FeatureCache(cache_dir), device=torch.device("cpu"),
        batch_size=batch_size, num_workers=0,
    )["train"]  # fmt: skip
    specs = [HeadSpec.parse(head) for head in HEADS if head != "none"]
    pairs = [(c.name, spec) for c in candidates for spec in specs]
    return [found[name] for name, _ in pairs], [spec for _, spec in pairs]


def _list(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


if __name__ == "__main__":
    main()
