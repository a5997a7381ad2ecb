"""P11: the engine of frozen features, onnxruntime against PyTorch, side by side in one process.

1. The cached features pass (``batched_outputs`` over raw Fashion-MNIST images: decoding, preprocessing and the
   backbone, as `FeatureCache` runs it) with ``model.features`` in PyTorch (eval, ``inference_mode``,
   ``channels_last``) and with `OnnxFunction` (graph already exported: each pass loads it and checks the first batch
   against PyTorch, as a later pass of a fit does), alternated, medians of ``--repeats``; for EfficientNet-Lite0
   (packaged ImageNet weights, 224 px) and for a user's own small ``nn.Module`` (28 px). The export (tracing) is
   timed once, apart.
2. With ``--fit``: a frozen fit (``efficientnet_lite0``, a Fashion-MNIST slice, ``freeze=True``, ``output_dim=128``,
   a few epochs) with a cold cache, ``engine="torch"`` and ``"onnxruntime"`` alternated. `fit` builds its
   `FeatureCache` with the default engine (``"auto"``) until `_fit.py` passes ``config.cache.cache_engine`` on; this
   script binds the engine of that class for each run.
3. With ``--encode``: ``encode`` of a saved frozen-backbone model (``efficientnet_lite0``, ``freeze=True``,
   ``output_dim=128``, saved and loaded back) against a plain PyTorch ``model(x)`` loop over the same items
   (DataLoader with the same preprocessing and batch size, eval, ``inference_mode``, ``channels_last``), alternated.
   The first ``encode`` (which traces the graph into the finetuner cache) is timed apart; later ones read it back.

Run: ``PYTHONPATH=. python benchmarks/bench_engine.py [--fit] [--encode]`` (a few minutes on 2 CPU cores; ``--fit``
and ``--encode`` add more).
"""

from __future__ import annotations

import argparse
import datetime
import functools
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime
import torch
from torch import nn

import finetuner
from finetuner.data import ImagePreprocessing, load_fashion_mnist
from finetuner.inference import OnnxFunction, batched_outputs
from finetuner.training.cache import fingerprint_module

CPU = torch.device("cpu")


class SmallNet(nn.Module):
    """A user's own module: three conv blocks with BatchNorm, global pooling (28×28 inputs, 64-d features)."""

    def __init__(self) -> None:
        super().__init__()
        blocks, width = [], 3
        for out in (16, 32, 64):
            blocks += [nn.Conv2d(width, out, 3, padding=1), nn.BatchNorm2d(out), nn.ReLU(), nn.MaxPool2d(2)]
            width = out
        self.body = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).mean(dim=(2, 3))


def timed(fn, *args, **kwargs) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def features_pass(name: str, module: nn.Module, fn, preprocessing, items, folder: Path, batch_size: int, repeats: int):
    """PyTorch and onnxruntime passes over ``items``, alternated; the export timed once before."""
    options = {"device": CPU, "batch_size": batch_size, "num_workers": 0}
    fingerprint = fingerprint_module(module)
    export_s, _ = timed(batched_outputs, OnnxFunction(fn, fingerprint, folder, device=CPU), items[:2], preprocessing,
                        **options)  # fmt: skip
    seconds: dict[str, list[float]] = {"torch": [], "onnxruntime": []}
    outputs = {}
    for _ in range(repeats):
        elapsed, outputs["torch"] = timed(batched_outputs, fn, items, preprocessing, **options)
        seconds["torch"].append(elapsed)
        run = OnnxFunction(fn, fingerprint, folder, device=CPU)
        elapsed, outputs["onnxruntime"] = timed(batched_outputs, run, items, preprocessing, **options)
        assert run.engine == "onnxruntime", f"{name}: the parity check refused onnxruntime"
        seconds["onnxruntime"].append(elapsed)
    median = {engine: statistics.median(values) for engine, values in seconds.items()}
    return {
        "name": name,
        "export_s": export_s,
        "median_s": median,
        "ratio": median["torch"] / median["onnxruntime"],
        "max_abs_diff": float(np.abs(outputs["torch"] - outputs["onnxruntime"]).max()),
        "runs": {engine: [round(v, 2) for v in values] for engine, values in seconds.items()},
    }


def frozen_fits(images: int, epochs: int, repeats: int) -> dict:
    """Cold-cache frozen fits with each engine, alternated: seconds per engine (medians) and their ratio."""
    import finetuner._fit as fit_steps
    from finetuner.training.cache import FeatureCache

    data = load_fashion_mnist("train")
    data = data.subset(range(min(images, len(data.items))))
    seconds: dict[str, list[float]] = {"torch": [], "onnxruntime": []}
    original = fit_steps.FeatureCache
    try:
        for _ in range(repeats):
            for engine in seconds:
                fit_steps.FeatureCache = functools.partial(FeatureCache, engine=engine)
                with tempfile.TemporaryDirectory() as cache_dir:
                    elapsed, _ = timed(finetuner.fit, "efficientnet_lite0", data, freeze=True, output_dim=128,
                                       epochs=epochs, cache_dir=cache_dir, verbose=False)  # fmt: skip
                seconds[engine].append(elapsed)
    finally:
        fit_steps.FeatureCache = original
    median = {engine: statistics.median(values) for engine, values in seconds.items()}
    return {"median_s": median, "ratio": median["torch"] / median["onnxruntime"], "runs": seconds}


def plain_model_pass(model: nn.Module, items, batch_size: int) -> np.ndarray:
    """The reference of ``encode``: ``model(x)`` over the items, a plain DataLoader loop in inference mode."""
    from finetuner.data import ItemDataset, make_loader

    dataset = ItemDataset(items, [0] * len(items), model.preprocessing, train=False)
    outputs = []
    with torch.inference_mode():
        for inputs, _ in make_loader(dataset, batch_size, num_workers=0):
            outputs.append(model(inputs.contiguous(memory_format=torch.channels_last)))
    return torch.cat(outputs).numpy()


def encode_passes(items, batch_size: int, repeats: int) -> dict:
    """``encode`` of a saved frozen-backbone model against ``model(x)`` in PyTorch, alternated."""
    with tempfile.TemporaryDirectory() as folder:
        os.environ["FINETUNER_CACHE"] = str(Path(folder) / "cache")  # the traced graph goes here
        model = finetuner.build_model("efficientnet_lite0", freeze=True, output_dim=128)
        model.save(Path(folder) / "model")
        loaded = finetuner.load(Path(folder) / "model").eval()
        first_s, _ = timed(loaded.encode, items, batch_size, num_workers=0)
        seconds: dict[str, list[float]] = {"model(x)": [], "encode": []}
        for _ in range(repeats):
            elapsed, expected = timed(plain_model_pass, loaded, items, batch_size)
            seconds["model(x)"].append(elapsed)
            elapsed, got = timed(loaded.encode, items, batch_size, num_workers=0, normalize=False)
            seconds["encode"].append(elapsed)
    median = {name: statistics.median(values) for name, values in seconds.items()}
    return {
        "first_s": first_s,
        "median_s": median,
        "ratio": median["model(x)"] / median["encode"],
        "max_abs_diff": float(np.abs(got - expected).max()),
        "runs": {name: [round(v, 2) for v in values] for name, values in seconds.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fit", action="store_true", help="also time cold-cache frozen fits")
    parser.add_argument("--fit-images", type=int, default=1000)
    parser.add_argument("--fit-epochs", type=int, default=3)
    parser.add_argument("--encode", action="store_true", help="also time encode of a saved frozen model")
    parser.add_argument("--skip-features", action="store_true", help="leave out the features passes (part 1)")
    args = parser.parse_args()

    data = load_fashion_mnist("test")
    items = data.items[: args.images]
    results = []
    if not args.skip_features:
        model = finetuner.build_model("efficientnet_lite0", freeze=True, output_dim=128)  # packaged ImageNet weights
        model.eval().to(memory_format=torch.channels_last)
        own = SmallNet().eval().requires_grad_(False)
        small = ImagePreprocessing(input_size=(3, 28, 28), crop_pct=1.0, augment=None)
        with tempfile.TemporaryDirectory() as folder:
            results.append(features_pass("efficientnet_lite0", model, model.features, model.preprocessing, items,
                                         Path(folder), args.batch_size, args.repeats))  # fmt: skip
            results.append(features_pass("own SmallNet (28 px)", own, own, small, items, Path(folder),
                                         args.batch_size, args.repeats))  # fmt: skip

    print(f"# P11 {datetime.date.today()}  {platform.processor() or platform.machine()}  {os.cpu_count()} CPUs")
    print(
        f"finetuner {finetuner.__version__}  torch {torch.__version__} ({torch.get_num_threads()} threads)  "
        f"onnxruntime {onnxruntime.__version__}  {len(items)} Fashion-MNIST test images, batch {args.batch_size}, "
        f"{args.repeats} repeats"
    )
    for r in results:
        print(
            f"{r['name']}: torch {r['median_s']['torch']:.2f} s, onnxruntime {r['median_s']['onnxruntime']:.2f} s, "
            f"ratio torch/onnxruntime {r['ratio']:.2f}x; export {r['export_s']:.2f} s; "
            f"max |diff| {r['max_abs_diff']:.1e} (runs: {r['runs']})"
        )
    if args.encode:
        r = encode_passes(items, args.batch_size, args.repeats)
        print(
            f"encode of a saved frozen efficientnet_lite0 (head 128): model(x) {r['median_s']['model(x)']:.2f} s, "
            f"encode {r['median_s']['encode']:.2f} s, throughput ratio {r['ratio']:.2f}x; first encode (traces the "
            f"graph) {r['first_s']:.2f} s; max |diff| {r['max_abs_diff']:.1e} (runs: {r['runs']})"
        )
    if args.fit:
        fits = frozen_fits(args.fit_images, args.fit_epochs, args.repeats)
        print(
            f"frozen fit, efficientnet_lite0, {args.fit_images} images, {args.fit_epochs} epochs, cold cache: "
            f"torch {fits['median_s']['torch']:.1f} s, onnxruntime {fits['median_s']['onnxruntime']:.1f} s, "
            f"ratio {fits['ratio']:.2f}x (runs: {fits['runs']})"
        )


if __name__ == "__main__":
    main()
