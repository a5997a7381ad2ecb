"""How a frozen fit grows with the data: time and peak memory of the same fit on 1x, 2x, 4x and 8x the items.

Each size runs in its own process (so each peak is its own). The images are synthetic 32x32 RGB arrays made from
their index when read (nothing is held in memory but the labels), the backbone is a small CNN with 1024-d features,
and the feature cache is always memory-mapped (``cache_max_memory=0``), so what grows with the data is on disk.
One thread per process: on a shared machine the CPU time (user + system) is the steadier measure of the work.

    python benchmarks/scaling.py                 # 4,000 -> 32,000 items (a few minutes on 2 CPU cores)
    python benchmarks/scaling.py --items 1000    # a smoke run

Reported per size: wall and CPU time of `fit`, its parts (feature extraction, one head epoch), and peak memory: the
process's peak RSS (``ru_maxrss``, which also counts pages of the memory-mapped cache that training touched: the
kernel drops those under pressure) and the peak of its anonymous memory (``RssAnon``, sampled every 10 ms:
what the process itself allocated).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

FEATURES = 1024


class SyntheticImages(Dataset):
    """``size`` 32x32 RGB uint8 images of ``num_classes`` classes (a class colour plus noise), made on access."""

    def __init__(self, size: int, num_classes: int = 100, seed: int = 0):
        self.size, self.seed = size, seed
        self.targets = np.arange(size) % num_classes
        self.classes = [f"class-{c}" for c in range(num_classes)]
        self.palette = np.random.default_rng(seed).integers(40, 216, (num_classes, 3))

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        label = int(self.targets[index])
        noise = np.random.default_rng([self.seed, index]).integers(-40, 40, (32, 32, 3))
        return (self.palette[label] + noise).clip(0, 255).astype(np.uint8), label


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.AvgPool2d(2),
        nn.Conv2d(64, FEATURES, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )  # fmt: skip


class AnonymousPeak(threading.Thread):
    """Samples this process's anonymous resident memory (``RssAnon``) and keeps the largest value, in bytes."""

    def __init__(self, every: float = 0.01):
        super().__init__(daemon=True)
        self.every, self.peak, self.running = every, 0, True

    @staticmethod
    def now() -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
        return 0

    def run(self) -> None:
        while self.running:
            self.peak = max(self.peak, self.now())
            time.sleep(self.every)


class Marks(logging.Handler):
    """The time of the first log record that starts with each of the given prefixes."""

    def __init__(self, prefixes: tuple[str, ...]):
        super().__init__()
        self.prefixes, self.times = prefixes, {}

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        for prefix in self.prefixes:
            if message.startswith(prefix) and prefix not in self.times:
                self.times[prefix] = time.perf_counter()


def fit(items: int, epochs: int, batch_size: int, cache: str):
    import finetuner

    return finetuner.fit(
        small_cnn(),
        SyntheticImages(items),
        SyntheticImages(1000, seed=1),
        input_size=(3, 32, 32),
        freeze=True,
        output_dim=64,
        epochs=epochs,
        batch_size=batch_size,
        num_workers=0,
        cache_dir=cache,
        cache_max_memory=0,
    )


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def one_size(items: int, epochs: int, batch_size: int) -> dict:
    """Run the fit on ``items`` items in this process; what it measured."""
    with tempfile.TemporaryDirectory() as cache:
        fit(500, 2, batch_size, cache)  # a warm-up: every lazily imported module loaded before the baseline
    marks = Marks(("caching train items", "before training", "epoch 1/", f"epoch {epochs}/"))
    logger = logging.getLogger("finetuner")
    logger.addHandler(marks)
    logger.setLevel(logging.INFO)
    sampler = AnonymousPeak()
    baseline = AnonymousPeak.now()
    sampler.start()
    with tempfile.TemporaryDirectory() as cache:
        start, cpu = time.perf_counter(), cpu_seconds()
        run = fit(items, epochs, batch_size, cache)
        total, cpu = time.perf_counter() - start, cpu_seconds() - cpu
        cache_bytes = sum(p.stat().st_size for p in Path(cache).rglob("*.npy"))
    sampler.running = False
    sampler.join()
    t = marks.times
    steps = -(-items // batch_size)
    epoch = (t[f"epoch {epochs}/"] - t["epoch 1/"]) / max(1, epochs - 1)
    return {
        "items": items,
        "seconds": total,
        "cpu_seconds": cpu,
        "extract_seconds": t["before training"] - t["caching train items"],
        "epoch_seconds": epoch,
        "step_ms": 1000 * epoch / steps,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_anon_mb": sampler.peak / 2**20,
        "anon_growth_mb": (sampler.peak - baseline) / 2**20,
        "cache_mb": cache_bytes / 2**20,
        "map@r": run.metrics["after"]["map@r"],
    }


def table(rows: list[dict]) -> str:
    lines = [
        "| items | fit: wall | fit: CPU (× previous) | extraction (per item) | head epoch (per step) | peak RSS "
        "| peak anonymous (growth in fit) | cache on disk |",
        "|---|---|---|---|---|---|---|---|",
    ]
    previous = None
    for row in rows:
        ratio = f" ({row['cpu_seconds'] / previous:.2f}×)" if previous else ""
        lines.append(
            f"| {row['items']:,} | {row['seconds']:.1f} s | {row['cpu_seconds']:.1f} s{ratio} | "
            f"{row['extract_seconds']:.1f} s ({1e6 * row['extract_seconds'] / row['items']:.0f} µs) | "
            f"{row['epoch_seconds']:.2f} s ({row['step_ms']:.2f} ms) | {row['peak_rss_mb']:.0f} MiB | "
            f"{row['peak_anon_mb']:.0f} MiB (+{row['anon_growth_mb']:.0f}) | {row['cache_mb']:.0f} MiB |"
        )
        previous = row["cpu_seconds"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=4000, help="the 1x size")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2, help="runs per size; the one with the least CPU time counts")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        os.environ["TQDM_DISABLE"] = "1"
        torch.set_num_threads(1)
        print(json.dumps(one_size(args.child, args.epochs, args.batch_size)))
        return
    rows = []
    for factor in (1, 2, 4, 8):
        command = [sys.executable, __file__, "--child", str(factor * args.items), "--epochs", str(args.epochs)]
        command += ["--batch-size", str(args.batch_size)]
        runs = []
        for _ in range(args.repeats):  # the least disturbed run: other processes only ever add time
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            if result.returncode:
                sys.exit(result.stderr[-3000:])
            runs.append(json.loads(result.stdout.strip().splitlines()[-1]))
            print(json.dumps(runs[-1]), file=sys.stderr)
        rows.append(min(runs, key=lambda run: run["cpu_seconds"]))
    print(table(rows))
    ratios = [b["cpu_seconds"] / a["cpu_seconds"] for a, b in zip(rows, rows[1:])]
    growth = [row["anon_growth_mb"] for row in rows]
    print(f"\nCPU time ratio per doubling: {', '.join(f'{r:.2f}' for r in ratios)} (goal <= 2.2)")
    print(f"anonymous memory growth during fit: {', '.join(f'{g:.0f}' for g in growth)} MiB (goal: flat)")


if __name__ == "__main__":
    main()
