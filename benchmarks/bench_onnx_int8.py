"""P7: the ``onnx-int8`` export against the float32 ``onnx`` export, side by side in one process.

EfficientNet-Lite0 with its packaged ImageNet weights (no head: the 1,280-d pooled features) is exported to ONNX in
float32, with static int8 quantisation (``model.export(path, format="onnx-int8")``: the default for a graph with
convolutions, QDQ, calibrated on ``--calibration`` Fashion-MNIST *training* images, the user's own items) and with
dynamic int8 (``quantization="dynamic"``, the former default). On a class-balanced slice of the embedded
Fashion-MNIST test set (300 images by default, none of them calibrated on; ``--validation``: training images that
were not calibrated on, where the export's defaults were chosen) this measures:

1. throughput of ``OnnxEncoder`` on the preprocessed batch (onnxruntime, CPU), the files alternated, medians
   of ``--repeats`` passes, and the ratios int8 / float32;
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


def balanced_slice(data, n: int, skip: frozenset[int] = frozenset()):
    """The first ``n / classes`` items of each class of ``data``, leaving out the indices in ``skip``."""
    labels = np.asarray(data.labels)
    per_class = [[i for i in np.flatnonzero(labels == c) if i not in skip] for c in range(len(data.classes))]
    picked = [i for indices in per_class for i in indices[: n // len(data.classes)]]
    return [data.items[i] for i in picked], labels[picked]


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
    parser.add_argument("--calibration", type=int, default=200, help="training images to calibrate static int8 on")
    parser.add_argument("--no-dynamic", action="store_true", help="leave out the dynamic int8 file")
    parser.add_argument("--validation", action="store_true", help="measure on training images not calibrated on")
    args = parser.parse_args()

    train = load_fashion_mnist("train")
    calibrated = range(0, len(train.items), len(train.items) // args.calibration)[: args.calibration]
    calibration = [train.items[i] for i in calibrated]
    if args.validation:
        items, labels = balanced_slice(train, args.images, skip=frozenset(calibrated))
    else:
        items, labels = balanced_slice(load_fashion_mnist("test"), args.images)
    model = finetuner.build_model("efficientnet_lite0")  # packaged ImageNet weights, pooled features
    with tempfile.TemporaryDirectory() as folder:
        paths = {"fp32": model.export(Path(folder) / "fp32.onnx")}
        paths["int8 static"] = model.export(
            Path(folder) / "static.onnx", format="onnx-int8", check_items=calibration, min_similarity=0.0
        )
        if not args.no_dynamic:
            paths["int8 dynamic"] = model.export(
                Path(folder) / "dynamic.onnx", format="onnx-int8", quantization="dynamic", min_similarity=0.0
            )
        sizes = {name: path.stat().st_size / 2**20 for name, path in paths.items()}
        encoders = {name: OnnxEncoder(path) for name, path in paths.items()}
        torch_vectors = model.encode(items, batch_size=args.batch_size)
        vectors = {"pytorch": torch_vectors} | {name: encoder.encode(items) for name, encoder in encoders.items()}
        inputs = arrays_for(encoders["fp32"].preprocessing)(items)  # preprocessed once, shared by every file
        batches = [inputs[i : i + args.batch_size] for i in range(0, len(inputs), args.batch_size)]
        for encoder in encoders.values():
            throughput(encoder, batches[:1])  # warm-up
        speeds: dict[str, list[float]] = {name: [] for name in encoders}
        for _ in range(args.repeats):
            for name, encoder in encoders.items():
                speeds[name].append(throughput(encoder, batches))

    median = {name: statistics.median(values) for name, values in speeds.items()}
    print(f"# P7 {datetime.date.today()}  {platform.processor() or platform.machine()}  {os.cpu_count()} CPUs")
    print(
        f"finetuner {finetuner.__version__}  torch {torch.__version__}  onnxruntime {onnxruntime.__version__}  "
        f"{len(items)} Fashion-MNIST {'training' if args.validation else 'test'} images (balanced), "
        f"batch {args.batch_size}, {args.repeats} repeats; "
        f"static int8 calibrated on {len(calibration)} training images"
    )
    print("file size: " + ", ".join(f"{name} {size:.1f} MiB" for name, size in sizes.items()))
    print(f"max |onnx fp32 - pytorch| = {np.abs(vectors['fp32'] - torch_vectors).max():.2e}")
    for name in encoders:
        if name != "fp32":
            cosine = np.sum(vectors[name] * vectors["fp32"], axis=1)
            print(f"cosine({name}, fp32) per image: min {cosine.min():.4f}, mean {cosine.mean():.4f}")
            print(
                f"throughput {name}: {median[name]:.1f} img/s vs fp32 {median['fp32']:.1f} img/s = "
                f"{median[name] / median['fp32']:.2f}x"
            )
    print(f"(runs, img/s: {speeds})")
    for name, found in vectors.items():
        recall = retrieval_metrics(found, labels, k=(1,))["recall@1"]
        print(f"Recall@1 {name}: {recall:.4f}")


if __name__ == "__main__":
    main()
