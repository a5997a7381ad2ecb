"""P7: the ``onnx-int8`` export against the float32 ``onnx`` export, side by side in one process.

EfficientNet-Lite0 with its packaged ImageNet weights (no head: the 1,280-d pooled features) is exported to ONNX in
float32 and with dynamic int8 quantisation (``model.export(path, format="onnx-int8")``). On a class-balanced slice of
the embedded Fashion-MNIST test set (300 images by default) this measures:

1. throughput of ``OnnxEncoder`` on the preprocessed batch (onnxruntime, CPU), int8 and float32 alternated, medians
   of ``--repeats`` passes, and the ratio int8 / float32;
2. Recall@1 (leave-one-out, cosine, by class) of the PyTorch model, the float32 file and the int8 file;
3. file sizes, and the largest difference between the float32 file and PyTorch.

Run: ``python benchmarks/bench_onnx_int8.py`` (about a minute on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime
import torch

import finetuner
from finetuner.data import load_fashion_mnist
from finetuner.evaluation import retrieval_metrics
from finetuner.export import OnnxEncoder
from finetuner.export.onnx_preprocessing import arrays_for


def balanced_slice(n: int):
    data = load_fashion_mnist("test")
    per_class = n // len(data.classes)
    picked = [i for c in range(len(data.classes)) for i in np.flatnonzero(np.asarray(data.labels) == c)[:per_class]]
    return [data.items[i] for i in picked], np.asarray(data.labels)[picked]


def throughput(encoder: OnnxEncoder, batches: list[np.ndarray]) -> float:
    start = time.perf_counter()
    for batch in batches:
        encoder(batch)
    return sum(len(b) for b in batches) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--per-channel", action="store_true", help="int8 scales per output channel")
    args = parser.parse_args()

    items, labels = balanced_slice(args.images)
    model = finetuner.build_model("efficientnet_lite0")  # packaged ImageNet weights, pooled features
    with tempfile.TemporaryDirectory() as folder:
        fp32_path = model.export(Path(folder) / "fp32.onnx")
        int8_path = model.export(
            Path(folder) / "int8.onnx", format="onnx-int8", per_channel=args.per_channel, min_similarity=0.0
        )
        sizes = {name: path.stat().st_size / 2**20 for name, path in (("fp32", fp32_path), ("int8", int8_path))}
        fp32, int8 = OnnxEncoder(fp32_path), OnnxEncoder(int8_path)

        torch_vectors = model.encode(items, batch_size=args.batch_size)
        vectors = {"pytorch": torch_vectors, "onnx fp32": fp32.encode(items), "onnx int8": int8.encode(items)}
        inputs = arrays_for(fp32.preprocessing)(items)  # preprocessed once, shared by both files
        batches = [inputs[i : i + args.batch_size] for i in range(0, len(inputs), args.batch_size)]
        throughput(fp32, batches[:1]), throughput(int8, batches[:1])  # warm-up
        speeds: dict[str, list[float]] = {"fp32": [], "int8": []}
        for _ in range(args.repeats):
            speeds["fp32"].append(throughput(fp32, batches))
            speeds["int8"].append(throughput(int8, batches))

    fp32_speed, int8_speed = (statistics.median(speeds[name]) for name in ("fp32", "int8"))
    print(f"# P7 {datetime.date.today()}  {platform.processor() or platform.machine()}  {os.cpu_count()} CPUs")
    print(
        f"finetuner {finetuner.__version__}  torch {torch.__version__}  onnxruntime {onnxruntime.__version__}  "
        f"{len(items)} Fashion-MNIST test images (balanced), batch {args.batch_size}, {args.repeats} repeats, "
        f"per_channel={args.per_channel}"
    )
    print(f"file size: fp32 {sizes['fp32']:.1f} MiB, int8 {sizes['int8']:.1f} MiB")
    print(f"max |onnx fp32 - pytorch| = {np.abs(vectors['onnx fp32'] - torch_vectors).max():.2e}")
    cosine = np.sum(vectors["onnx int8"] * vectors["onnx fp32"], axis=1)
    print(f"cosine(int8, fp32) per image: min {cosine.min():.4f}, mean {cosine.mean():.4f}")
    print(
        f"throughput: fp32 {fp32_speed:.1f} img/s, int8 {int8_speed:.1f} img/s, "
        f"ratio int8/fp32 {int8_speed / fp32_speed:.2f}x (runs: {speeds})"
    )
    for name, found in vectors.items():
        recall = retrieval_metrics(found, labels, k=(1,))["recall@1"]
        print(f"Recall@1 {name}: {recall:.4f}")


if __name__ == "__main__":
    main()
