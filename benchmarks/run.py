"""Side-by-side speed benchmarks P1, P1b, P2, P3, P5, P6 (see BENCHMARKS.md; P4 is bench_search.py).

Each figure is a ratio against a plain PyTorch reference run in the same process, on the same data,
interleaved (reference, ours, reference, ours, ...) and summarised by medians, because absolute times on a
shared machine are not stable.

    python benchmarks/run.py            # the full table (about 10-20 minutes on 2 CPU cores)
    python benchmarks/run.py --quick    # smaller sizes, a smoke run
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

import finetuner
from finetuner.data import ImagePreprocessing, ItemDataset, load_fashion_mnist, make_loader


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def side_by_side(reference: Callable[[], object], ours: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median seconds of each, run alternately ``repeats`` times."""
    ref_times, our_times = [], []
    for _ in range(repeats):
        ref_times.append(timed(reference))
        our_times.append(timed(ours))
    return statistics.median(ref_times), statistics.median(our_times)


def plain_forward_pass(module: torch.nn.Module, items, prep: ImagePreprocessing, batch_size: int) -> None:
    """The reference: one pass of ``module`` over the items, a plain DataLoader loop in inference mode."""
    module.eval()
    loader = make_loader(ItemDataset(items, [0] * len(items), prep, train=False), batch_size, num_workers=0)
    with torch.inference_mode():
        for inputs, _ in loader:
            module(inputs.contiguous(memory_format=torch.channels_last))


def users_module() -> torch.nn.Module:
    """A user's own ``nn.Module``: torchvision's ResNet-18 built in the script (random weights), its ``fc`` cut."""
    import torchvision

    net = torchvision.models.resnet18(weights=None)
    net.fc = torch.nn.Identity()
    return net


def bench_frozen_fit(args, rows: list) -> None:
    """P1 / P1b: a frozen-backbone fit for 10 epochs, against one forward pass and against a naive loop; P1 also
    for a user's own ``nn.Module`` (not a registered name)."""
    data = load_fashion_mnist("train").subset(range(0, 2000, 2000 // args.items))
    measured: dict[str, tuple] = {}  # label -> (model, its backbone + pooling, the fit's median seconds)
    for label, source, options in (
        (args.model, args.model, {"pretrained": args.pretrained}),
        ("a user's nn.Module (ResNet-18)", users_module(), {"input_size": (3, 224, 224)}),
    ):
        model = finetuner.build_model(source, freeze=True, output_dim=128, **options)
        prep = model.preprocessing  # the same input size and normalisation as fit uses
        backbone = torch.nn.Sequential(model.backbone, model.pool).to(memory_format=torch.channels_last)

        def ours(source=source, options=options) -> None:
            with tempfile.TemporaryDirectory() as cache:  # a cold cache: features are computed in this run
                finetuner.fit(source, data, freeze=True, output_dim=128, epochs=10, batch_size=64, cache_dir=cache,
                              augment=False, **options)  # fmt: skip

        def reference(backbone=backbone, prep=prep) -> None:
            plain_forward_pass(backbone, data.items, prep, 64)

        ref, our = side_by_side(reference, ours, args.repeats)
        measured[label] = (model, backbone, our)
        rows.append(("P1", f"frozen fit, 10 epochs, {label}", "one plain forward pass", f"{our / ref:.2f}x the time",
                     "<= 0.6x"))  # fmt: skip

    model, backbone, our = measured[args.model]
    prep = model.preprocessing

    head = finetuner.tailor.ProjectionHead(model.feature_dim(), 128)
    loss_fn = finetuner.training.build_loss("TripletMarginLoss")

    def naive() -> None:  # what the usual loops do: the frozen backbone runs again every epoch
        optimizer = torch.optim.Adam(head.parameters(), 1e-3)
        loader = make_loader(ItemDataset(data.items, data.labels, prep, train=False), 64, shuffle=True)
        for _ in range(10):
            for inputs, labels in loader:
                with torch.no_grad():
                    features = backbone(inputs.contiguous(memory_format=torch.channels_last))
                loss = loss_fn(head(features), labels)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()

    naive_time = timed(naive)  # once: it is the slow one
    rows.append(
        (
            "P1b",
            "frozen fit, 10 epochs",
            "naive loop, backbone every epoch",
            f"{naive_time / our:.1f}x faster",
            ">= 5x faster",
        )
    )


def bench_encode(args, rows: list) -> None:
    """P2: `encode` throughput against a raw model(x) loop at the same batch size."""
    data = load_fashion_mnist("test").subset(range(args.items))
    model = finetuner.build_model(args.model, output_dim=128, pretrained=args.pretrained).eval()
    ref, our = side_by_side(
        lambda: plain_forward_pass(model, data.items, model.preprocessing, 64),
        lambda: model.encode(data.items, batch_size=64),
        args.repeats,
    )
    rows.append(("P2", "encode throughput", "raw model(x) loop, same batch", f"{ref / our:.2f}x", ">= 0.95x"))


def bench_full_finetune(args, rows: list) -> None:
    """P3: full fine-tuning steps/s against a hand-written loop: same model (ResNet-18, random weights, 224x224
    inputs with the same preprocessing and augmentation), loss, optimizer, batch sampler and batch size."""
    from finetuner.data import ClassBalancedSampler, LabeledData

    data = load_fashion_mnist("train").subset(range(0, 2000, 2000 // (args.items // 5)))
    data = LabeledData(data.items, data.labels, data.classes)

    def reference() -> None:
        torch.manual_seed(0)
        model = finetuner.build_model("resnet18", output_dim=64, pretrained=False)
        sampler = ClassBalancedSampler(data.labels, 4, batch_size=32)
        dataset = ItemDataset(data.items, data.labels, model.preprocessing, train=True)
        loader = make_loader(dataset, sampler=sampler, num_workers=0)
        optimizer = torch.optim.Adam(model.parameters(), 1e-3)
        loss_fn = finetuner.training.build_loss("TripletMarginLoss")
        model.train()
        for inputs, labels in loader:
            loss = loss_fn(model(inputs), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    def ours() -> None:
        finetuner.fit(
            "resnet18", data, epochs=1, batch_size=32, output_dim=64, pretrained=False, cache=False, num_workers=0
        )

    ref, our = side_by_side(reference, ours, args.repeats)
    rows.append(("P3", "full fine-tune steps/s", "hand-written loop, same batches", f"{ref / our:.2f}x", ">= 0.95x"))


def bench_text_encode(args, rows: list) -> None:
    """P6: MiniLM `encode` throughput against sentence-transformers' own `encode` (same model, texts, batch)."""
    from sentence_transformers import SentenceTransformer

    from finetuner.data import load_data
    from finetuner.models.hf_text import minilm_path

    texts = list(load_data("fortunes").items)
    ours = finetuner.build_model("sentence-transformers/all-MiniLM-L6-v2")
    reference = SentenceTransformer(str(minilm_path()), device="cpu")
    ref, our = side_by_side(
        lambda: reference.encode(texts, batch_size=32),
        lambda: ours.encode(texts, batch_size=32),
        args.repeats,
    )
    rows.append(
        ("P6", "text encode throughput (MiniLM)", "sentence-transformers encode", f"{ref / our:.2f}x", ">= 1.0x")
    )


def bench_startup(rows: list) -> None:
    """P5: `import finetuner` and `finetuner --help`, best of 5 fresh processes."""
    finetuner_bin = str(Path(sys.executable).with_name("finetuner"))
    for label, command in (
        ("import finetuner", [sys.executable, "-c", "import finetuner"]),
        ("finetuner --help", [finetuner_bin, "--help"]),
    ):
        best = min(timed(lambda c=command: subprocess.run(c, check=True, capture_output=True)) for _ in range(5))
        rows.append(("P5", label, "-", f"{best:.2f} s", "<= 1.5 s"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--only", nargs="*", default=["P1", "P2", "P3", "P5", "P6"])
    args = parser.parse_args()
    args.items = 200 if args.quick else 1000
    args.repeats = 1 if args.quick else 3
    args.pretrained = args.model == "efficientnet_lite0"
    os.environ.setdefault("FINETUNER_CACHE", tempfile.mkdtemp())
    rows: list = []
    if "P1" in args.only:
        bench_frozen_fit(args, rows)
    if "P2" in args.only:
        bench_encode(args, rows)
    if "P3" in args.only:
        bench_full_finetune(args, rows)
    if "P5" in args.only:
        bench_startup(rows)
    if "P6" in args.only:
        bench_text_encode(args, rows)
    header = (
        f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, torch {torch.__version__}, finetuner {finetuner.__version__}, "
        f"{args.items} items, model {args.model}, medians of {args.repeats}"
    )
    print(header)
    print("| id | measure | reference | result | goal |\n|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
