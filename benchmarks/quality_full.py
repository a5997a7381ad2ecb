"""Full fine-tuning measured (issue #21, item 7): the unfrozen recipe on real text, seen and unseen classes.

`finetuner.fit("all-MiniLM-L6-v2", ..., freeze=False)` trains the whole encoder with the residual head. The
recipes below differ only in the backbone's learning rate; each is scored on fit's own validation
(carved from the training part: held-out items and held-out classes, what chooses) and, for the record only, on
the test part of the same-class and the class-disjoint split of ``quality_data``'s data set (never used to choose).

    PYTHONPATH=. python benchmarks/quality_full.py [--data fortunes] [--epochs 5] [--splits class-disjoint]
        [--recipes 0 1]    # about 10 minutes a row on 2 quiet CPU cores, half an hour on loaded ones
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings

os.environ.setdefault("TQDM_DISABLE", "1")

from quality import test_splits  # noqa: E402
from quality_data import DATASETS  # noqa: E402

import finetuner  # noqa: E402
from finetuner.data import LabeledData  # noqa: E402

# the head's rate is fit's default (1e-4); the backbone's is what changes (a constant rate: fit has no scheduler
# by default, so a warm-up would not apply)
RECIPES: dict[str, dict] = {
    "same rate (backbone 1e-4)": {"backbone_learning_rate": 1e-4},
    "backbone 1e-5 (a tenth: the default)": {},
    "backbone 2e-5": {"backbone_learning_rate": 2e-5},
}
MODEL = "all-MiniLM-L6-v2"


def row(name: str, split: str, recipe: str, run, seconds: float) -> str:
    validation, test = run.metrics, run.metrics["test"]

    def pair(part: dict, key: str) -> str:
        before, after = part["before"].get(key), part["after"].get(key)
        return "" if before is None else f"{before:.3f} → {after:.3f}"

    chosen = (run.metrics.get("selection") or {}).get("reason", "")
    return (f"| {name} | {split} | {recipe} | {pair(validation, 'seen/map@r')} | {pair(validation, 'new/map@r')} | "
            f"{pair(test, 'recall@1')} | {pair(test, 'map@r')} | {seconds:.0f} s | {chosen[:60]} |")


def part(data, rows) -> LabeledData:
    return LabeledData([data.items[i] for i in rows], [int(data.labels[i]) for i in rows], data.classes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="fortunes", choices=[n for n, f in DATASETS.items()])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--splits", nargs="*", default=["same-class", "class-disjoint"])
    parser.add_argument("--recipes", nargs="*", type=int, help="indices into RECIPES (default: all)")
    args = parser.parse_args()
    recipes = list(RECIPES.items())
    recipes = [recipes[i] for i in args.recipes] if args.recipes else recipes
    data = DATASETS[args.data]()
    print("| data | split | recipe | validation seen/map@r | validation new/map@r | test recall@1 | test map@r | time "
          "| kept |\n|---|---|---|---|---|---|---|---|---|", flush=True)
    for split, train, test in test_splits(data, args.seed):
        if split not in args.splits:
            continue
        for recipe, options in recipes:
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                run = finetuner.fit(
                    MODEL,
                    part(data, train),
                    test_data=part(data, test),
                    freeze=False,
                    output_dim=128,
                    epochs=args.epochs,
                    seed=args.seed,
                    cache_dir=tempfile.mkdtemp(),
                    verbose=False,
                    **options,
                )
            print(row(data.name, split, recipe, run, time.perf_counter() - start), flush=True)


if __name__ == "__main__":
    main()
