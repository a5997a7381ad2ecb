"""The frozen-work benchmarks (P9, P11, encode) on CUDA, in one prepared run of under 5 minutes, for the day a GPU
is lent. Every figure is a ratio of two runs in this one process (absolute times on a shared machine are noise).

1. **backbone pass** (EfficientNet-Lite0, packaged weights, 224 px, preprocessed batches already on the GPU):
   PyTorch fp32 eval; bf16 (or fp16) autocast with ``channels_last``; the same under ``torch.compile``;
   onnxruntime's CUDA provider through `OnnxFunction` (when onnxruntime has it). Images/s and ratios to fp32.
2. **features pass as the cache runs it** (decode + preprocess in DataLoader workers, pinned memory, the backbone):
   ``batched_outputs`` with PyTorch autocast against a plain ``model(x)`` DataLoader loop.
3. **frozen fit** (``freeze=True``, ``output_dim=128``, 10 epochs, cold cache) ÷ one plain forward pass.
4. **probe** 4 layers x 4 heads (cold cache) ÷ one plain forward pass; its 12 heads together against one at a time.
5. **encode** of a saved frozen-backbone model against ``model(x)``.

int8 (``onnx-int8``) is a CPU format (onnxruntime's CPU integer kernels) and is not measured here.

Run: ``PYTHONPATH=. python benchmarks/bench_gpu.py`` on a machine with CUDA (``--images`` to scale; ``--device cpu``
with small sizes runs every part on the CPU, for checking the script itself, not for figures). Without CUDA it
says so and exits with status 0, measuring nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

NO_CUDA = "bench_gpu: no CUDA device here (torch.cuda.is_available() is False): nothing measured."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu (a check of the script only)")
    parser.add_argument("--images", type=int, default=1000, help="Fashion-MNIST images per pass")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10, help="frozen fit epochs")
    parser.add_argument("--skip", nargs="*", default=[], choices=["backbone", "cache", "fit", "probe", "encode"])
    args = parser.parse_args(argv)

    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(NO_CUDA)
        return 0
    device = torch.device(args.device)
    rows: list[tuple[str, str, str]] = []
    parts = {
        "backbone": backbone_engines,
        "cache": cache_pass,
        "fit": frozen_fit,
        "probe": probe_heads,
        "encode": encode_pass,
    }
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        os.environ["FINETUNER_CACHE"] = str(Path(folder) / "cache")
        for name, part in parts.items():
            if name in args.skip:
                continue
            began = time.perf_counter()
            try:
                rows += part(args, device, Path(folder))
            except Exception as error:  # one part failing must not cost the others' figures
                rows.append((name, "failed", f"{type(error).__name__}: {str(error).splitlines()[0][:100]}"))
            print(f"[{name}: {time.perf_counter() - began:.0f} s]", file=sys.stderr)
    print(environment(device))
    print(f"{'measure':70} {'result':24} notes")
    for measure, result, notes in rows:
        print(f"{measure:70} {result:24} {notes}")
    print(f"total {time.perf_counter() - start:.0f} s")
    return 0


def environment(device: Any) -> str:
    import onnxruntime
    import torch

    import finetuner

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    return (
        f"# bench_gpu  {name}  torch {torch.__version__}  onnxruntime {onnxruntime.__version__} "
        f"({', '.join(onnxruntime.get_available_providers())})  finetuner {finetuner.__version__}"
    )


def timed(fn: Callable[[], Any], device: Any) -> float:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def alternated(runs: dict[str, Callable[[], Any]], device: Any, repeats: int) -> dict[str, float]:
    """Median seconds of each run, the runs alternated ``repeats`` times after one warm-up each."""
    for run in runs.values():
        run()
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            seconds[name].append(timed(run, device))
    return {name: statistics.median(values) for name, values in seconds.items()}


def half_dtype(device: Any) -> Any:
    import torch

    if device.type != "cuda":
        return torch.bfloat16
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def fashion(n: int, split: str = "train") -> Any:
    from finetuner.data import load_fashion_mnist

    data = load_fashion_mnist(split)
    return data.subset(range(0, len(data), max(1, len(data) // n))[:n])


def plain_pass(module: Any, items: list, preprocessing: Any, batch_size: int, device: Any) -> None:
    """The reference: ``module(x)`` over the items, a DataLoader loop (same workers and pinning as the cache)."""
    import torch

    from finetuner.data import ItemDataset, make_loader

    loader = make_loader(ItemDataset(items, [0] * len(items), preprocessing, train=False), batch_size)
    with torch.inference_mode():
        for inputs, _ in loader:
            module(inputs.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last))


def backbone_engines(args: Any, device: Any, folder: Path) -> list[tuple[str, str, str]]:
    import torch

    import finetuner
    from finetuner.inference import OnnxFunction, planned_engine
    from finetuner.training.cache import fingerprint_features

    model = finetuner.build_model("efficientnet_lite0", freeze=True, output_dim=128).eval()
    model.to(device, memory_format=torch.channels_last)
    generator = torch.Generator().manual_seed(0)
    count = max(1, min(args.images, 512) // args.batch_size)
    batches = [torch.randn(args.batch_size, 3, 224, 224, generator=generator) for _ in range(count)]
    batches = [b.to(device).contiguous(memory_format=torch.channels_last) for b in batches]
    half = half_dtype(device)

    def loop(fn: Callable[[Any], Any], dtype: Any = None) -> Callable[[], None]:
        def run() -> None:
            with torch.inference_mode(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                for batch in batches:
                    fn(batch)

        return run

    runs = {"fp32": loop(model.features), str(half).removeprefix("torch."): loop(model.features, half)}
    if device.type == "cuda":
        compiled = torch.compile(model.features)
        runs["compile + " + str(half).removeprefix("torch.")] = loop(compiled, half)
    if planned_engine("auto", device) == "onnxruntime":
        engine = OnnxFunction(model.features, fingerprint_features(model.backbone, model.pool), folder / "onnx",
                              device=device)  # fmt: skip
        runs["onnxruntime " + ("CUDA" if device.type == "cuda" else "CPU")] = loop(engine)
    medians = alternated(runs, device, args.repeats)
    images = count * args.batch_size
    rows = [
        (f"backbone pass, {name} (EfficientNet-Lite0, {images} x 224 px)", f"{medians['fp32'] / s:.2f}x fp32",
         f"{images / s:.0f} img/s")
        for name, s in medians.items()
    ]  # fmt: skip
    if "onnxruntime" not in " ".join(runs):
        rows.append(("backbone pass, onnxruntime", "not run", "no CUDA provider in this onnxruntime"))
    return rows


def cache_pass(args: Any, device: Any, folder: Path) -> list[tuple[str, str, str]]:
    import torch

    import finetuner
    from finetuner.core.device import autocast_dtype
    from finetuner.inference import batched_outputs

    data = fashion(args.images, "test")
    model = finetuner.build_model("efficientnet_lite0", freeze=True, output_dim=128).eval()
    model.to(device, memory_format=torch.channels_last)
    dtype = autocast_dtype("auto", device)

    def cached() -> None:
        batched_outputs(model.features, data.items, model.preprocessing, device=device, batch_size=args.batch_size,
                        autocast_dtype=dtype)  # fmt: skip

    def plain() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            plain_pass(model.features, data.items, model.preprocessing, args.batch_size, device)

    medians = alternated({"plain": plain, "cache": cached}, device, args.repeats)
    ratio = medians["plain"] / medians["cache"]
    measure = f"features pass as the cache runs it ({len(data)} images, decoding included)"
    return [(measure, f"{ratio:.2f}x plain loop", f"{len(data) / medians['cache']:.0f} img/s")]


def frozen_fit(args: Any, device: Any, folder: Path) -> list[tuple[str, str, str]]:
    import finetuner
    from finetuner.models import build_backbone

    data = fashion(args.images)
    backbone = build_backbone("efficientnet_lite0")
    module = backbone.module.eval().to(device)
    reference = timed(lambda: plain_pass(module, data.items, backbone.preprocessing, args.batch_size, device), device)
    seconds = {}
    for engine in ("torch", "auto"):
        with tempfile.TemporaryDirectory(dir=folder) as cache:
            seconds[engine] = timed(lambda cache=cache, engine=engine: finetuner.fit(
                "efficientnet_lite0", data, freeze=True, output_dim=128, epochs=args.epochs, cache_dir=cache,
                cache_engine=engine, device=str(device), verbose=False), device)  # fmt: skip
    return [
        (f"frozen fit, {args.epochs} epochs, cold cache, cache_engine={engine} ({len(data)} images)",
         f"{s / reference:.2f}x one pass", f"{s:.1f} s vs pass {reference:.1f} s")
        for engine, s in seconds.items()
    ]  # fmt: skip


def probe_heads(args: Any, device: Any, folder: Path) -> list[tuple[str, str, str]]:
    from finetuner.models import build_backbone
    from finetuner.probing import DEFAULT_HEADS, HeadSpec, Recipe, layer_candidates, probe, train_head, train_heads
    from finetuner.probing.layers import cached_features
    from finetuner.training.cache import FeatureCache

    data = fashion(min(args.images, 1000))
    backbone = build_backbone("efficientnet_lite0")
    module = backbone.module.eval().to(device)
    recipe = Recipe(device=str(device), batch_size=args.batch_size)
    reference = timed(lambda: plain_pass(module, data.items, backbone.preprocessing, args.batch_size, device), device)
    with tempfile.TemporaryDirectory(dir=folder) as cache:
        seconds = timed(lambda: probe(backbone, data, recipe=recipe, cache_dir=cache), device)
        taps, candidates = layer_candidates(backbone, 4)
        found = cached_features(backbone, taps, candidates, {"train": data.items}, FeatureCache(cache), device=device,
                                batch_size=args.batch_size)["train"]  # fmt: skip
    specs = [HeadSpec.parse(h) for h in DEFAULT_HEADS if h != "none"]
    features = [found[c.name] for c in candidates for _ in specs]
    heads = [s for _ in candidates for s in specs]
    labels, classes = data.labels, len(data.classes)

    def one_at_a_time() -> None:
        for rows, spec in zip(features, heads):
            train_head(rows, labels, spec, recipe, num_classes=classes)

    def together() -> None:
        train_heads(features, labels, heads, recipe, num_classes=classes)

    medians = alternated({"one at a time": one_at_a_time, "together": together}, device, 1)
    return [
        (f"probe 4 layers x 4 heads, cold cache ({len(data)} images)", f"{seconds / reference:.2f}x one pass",
         f"{seconds:.1f} s vs pass {reference:.1f} s"),
        (f"probe's {len(heads)} heads: together vs one at a time",
         f"{medians['one at a time'] / medians['together']:.2f}x faster", f"together {medians['together']:.1f} s"),
    ]  # fmt: skip


def encode_pass(args: Any, device: Any, folder: Path) -> list[tuple[str, str, str]]:
    import torch

    import finetuner

    data = fashion(args.images, "test")
    finetuner.build_model("efficientnet_lite0", freeze=True, output_dim=128).save(folder / "model")
    model = finetuner.load(folder / "model").eval().to(device, memory_format=torch.channels_last)
    dtype = half_dtype(device) if device.type == "cuda" else None

    def plain() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            plain_pass(model, data.items, model.preprocessing, args.batch_size, device)

    runs = {
        "model(x)": plain,
        "encode": lambda: model.encode(data.items, args.batch_size, device=device),
        "encode torch": lambda: model.encode(data.items, args.batch_size, device=device, engine="torch"),
    }
    medians = alternated(runs, device, args.repeats)
    return [
        (f"encode, saved frozen model, engine={name.removeprefix('encode').strip() or 'auto'} ({len(data)} images)",
         f"{medians['model(x)'] / medians[name]:.2f}x model(x)", f"{len(data) / medians[name]:.0f} img/s")
        for name in ("encode", "encode torch")
    ]  # fmt: skip


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
