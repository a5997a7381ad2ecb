"""Quality benchmark: does tuning make embeddings better, and never silently worse? Prints QUALITY.md's table.

For each data set (`quality_data.py`) and split (same-class, class-disjoint) it reports Recall@1 and MAP@R on the
test part of: the frozen backbone's own features (*before*), finetuner's frozen probe with the recipe below
(*finetuner*), a plain PyTorch head trained with pytorch-metric-learning on the same cached features (*PML*), and for
text sentence-transformers' own fit of the whole encoder (*ST*). The backbone runs once per data set (finetuner's
feature cache); every head then trains on those features. Settings are never chosen on the test part: ``--search``
scores candidate recipes on a validation carve of the training part (held-out items and held-out classes), and the
peers choose their learning rate and epochs on that carve too.

    PYTHONPATH=. python benchmarks/quality.py                 # the table (8 minutes on 2 shared cores, features cached)
    PYTHONPATH=. python benchmarks/quality.py --search        # recipe candidates on validation (9 minutes)
    PYTHONPATH=. python benchmarks/quality.py --refit         # fit's default with refit=False vs refit=True
    PYTHONPATH=. python benchmarks/quality.py --default       # fit as users get it: search=None vs "auto", peers
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import warnings

os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from quality_data import (  # noqa: E402
    DATASETS,
    BenchData,
    class_disjoint_split,
    same_class_split,
    validation_carve,
)
from quality_peers import pml_peer, st_peer  # noqa: E402
from torch import nn  # noqa: E402

import finetuner  # noqa: E402
from finetuner.evaluation import retrieval_metrics  # noqa: E402
from finetuner.models import Backbone  # noqa: E402
from finetuner.tailor import create_head  # noqa: E402
from finetuner.training import Callback  # noqa: E402

OUTPUT_DIM = 128
BACKBONES = {"image": "efficientnet_lite0", "text": "all-MiniLM-L6-v2"}

# finetuner's frozen-probe recipes: explicit fit options (the head built by name with head_options and initialised
# from the training features). "old" is fit's default before this benchmark; "chosen" is what --search picked on the
# validation carves (the largest mean gain on held-out items among the recipes that lose at most 0.02 on held-out
# classes anywhere): the residual head, learning rate 1e-4, 15 epochs, TripletMarginLoss, no miner, constant rate.
RECIPES: dict[str, dict] = {
    "old": {"head": "projection", "learning_rate": 1e-3, "epochs": 10},
    "chosen": {"head": "residual", "learning_rate": 1e-4, "epochs": 15},
}


class VectorPreprocessing:
    """Items that are already feature vectors: what lets `finetuner.fit` train on features computed once."""

    kind = "vector"

    def __init__(self, dim: int):
        self.input_size = (dim,)

    def load(self, item, train: bool) -> torch.Tensor:
        return torch.as_tensor(np.asarray(item, dtype=np.float32))

    def collate(self, samples: list) -> torch.Tensor:
        return torch.stack(samples)

    def to_config(self) -> dict:
        return {"kind": self.kind}

    def save(self, folder) -> None:
        """Nothing to write."""


def feature_backbone(dim: int) -> Backbone:
    """An identity "backbone" over feature vectors: fit's frozen, cached path then trains the head on exactly the
    features the real backbone gave."""
    layer = nn.Linear(dim, dim)
    with torch.no_grad():
        layer.weight.copy_(torch.eye(dim))
        layer.bias.zero_()
    return Backbone(nn.Sequential(layer), VectorPreprocessing(dim), {"source": "custom"}, torch.zeros(2, dim))


def backbone_features(data: BenchData) -> torch.Tensor:
    """The frozen backbone's features of every item, computed once (finetuner's feature cache, on disk)."""
    from finetuner.core.device import resolve_device
    from finetuner.training.cache import FeatureCache, fingerprint_module

    model = finetuner.build_model(BACKBONES[data.kind], freeze=True, output_dim=OUTPUT_DIM).eval()
    fingerprint = fingerprint_module(nn.ModuleDict({"backbone": model.backbone, "pool": model.pool}))
    (features,) = FeatureCache().features(
        model.features, fingerprint, data.items, model.preprocessing, device=resolve_device("auto"), name=data.name
    )
    return features.float()


def scores(vectors, labels: np.ndarray) -> dict[str, float]:
    """Leave-one-out Recall@1 and MAP@R (cosine)."""
    found = retrieval_metrics(np.asarray(vectors, dtype=np.float32), labels, k=(1,))
    return {"recall@1": found["recall@1"], "map@r": found["map@r"]}


def as_items(features: torch.Tensor, labels: np.ndarray, indices: np.ndarray) -> list:
    return [(features[i].numpy(), int(labels[i])) for i in indices]


class HeadProbe(Callback):
    """Recall@1 of the head on cached features of held-out sets after every epoch (``<name>/recall@1``)."""

    def __init__(self, sets: dict[str, tuple[torch.Tensor, np.ndarray]]):
        self.sets = sets

    def on_epoch_end(self, trainer) -> None:
        trainer.model.eval()
        with torch.no_grad():
            for name, (features, labels) in self.sets.items():
                trainer.history[-1][f"{name}/recall@1"] = scores(trainer.model(features), labels)["recall@1"]


def finetuner_fit(
    features, labels, train, evals: dict[str, np.ndarray], recipe: dict, seed: int = 0, test_data=None, **fit_options
):
    """`finetuner.fit` of a frozen probe on cached features: ``(run, per-epoch Recall@1 of each eval set)``.

    ``test_data`` (indices) is scored by fit before and after but never chooses anything; fit takes its own
    validation out of ``train`` (its defaults) unless ``fit_options`` say otherwise; ``evals`` are scored every
    epoch."""
    options = dict(recipe)
    head = create_head(options.pop("head"), features.shape[1], OUTPUT_DIM, **options.pop("head_options", {}))
    probe = HeadProbe({name: (features[idx], labels[idx]) for name, idx in evals.items()})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the class-balanced sampler's size adjustments
        run = finetuner.fit(
            feature_backbone(features.shape[1]),
            as_items(features, labels, train),
            test_data=None if test_data is None else as_items(features, labels, test_data),
            layer_name="0",
            freeze=True,
            head=head,
            output_dim=OUTPUT_DIM,
            num_workers=0,
            seed=seed,
            callbacks=[probe],
            **options,
            **fit_options,
        )
    return run, {name: [r[f"{name}/recall@1"] for r in run.history] for name in evals}


def encode_head(run, features: torch.Tensor) -> np.ndarray:
    return run.model.encode([f.numpy() for f in features], batch_size=1024)


def search(data: BenchData, features: torch.Tensor, seed: int, epochs: int) -> list[dict]:
    """Every candidate recipe on the validation carve of both splits' training parts: Recall@1 gains per epoch."""
    rows = []
    labels = data.labels
    splits = {"same-class": same_class_split(data, seed)[0], "class-disjoint": class_disjoint_split(data, seed)[0]}
    for split, train in splits.items():
        fit_part, held_items, held_classes = validation_carve(train, labels, seed)
        before = {
            "items": scores(features[held_items], labels[held_items])["recall@1"],
            "classes": scores(features[held_classes], labels[held_classes])["recall@1"],
        }
        for name, recipe in CANDIDATES.items():
            recipe = {**recipe, "epochs": recipe.get("epochs", epochs)}
            evals = {"items": held_items, "classes": held_classes}
            everything = {"val_split": 0.0, "val_class_split": 0.0}  # the carve is the validation here
            _, curves = finetuner_fit(features, labels, fit_part, evals, recipe, seed, **everything)
            print(f"{data.name} {split} {name}: items {np.round(np.array(curves['items']) - before['items'], 3)} "
                  f"classes {np.round(np.array(curves['classes']) - before['classes'], 3)}", flush=True)
            for epoch, (items, classes) in enumerate(zip(curves["items"], curves["classes"]), start=1):
                rows.append(
                    {"data": data.name, "split": split, "recipe": name, "epoch": epoch,
                     "items": items - before["items"], "classes": classes - before["classes"]}
                )
    return rows


CANDIDATES: dict[str, dict] = {
    "projection lr1e-3": {"head": "projection", "learning_rate": 1e-3},
    "residual lr1e-3": {"head": "residual", "learning_rate": 1e-3},
    "residual lr3e-4": {"head": "residual", "learning_rate": 3e-4},
    "residual lr1e-4": {"head": "residual", "learning_rate": 1e-4},
    "residual lr1e-4 MS": {
        "head": "residual", "learning_rate": 1e-4, "loss": "MultiSimilarityLoss", "miner": "MultiSimilarityMiner"
    },
    "residual lr3e-4 cosine": {"head": "residual", "learning_rate": 3e-4, "scheduler": "cosine", "warmup_ratio": 0.1},
}


def summarise_search(rows: list[dict]) -> str:
    """Per recipe and epoch: mean and worst Recall@1 gain on held-out items and held-out classes."""
    lines = ["| recipe | epoch | items: mean gain | items: worst | classes: mean gain | classes: worst |",
             "|---|---|---|---|---|---|"]
    keys = sorted({(r["recipe"], r["epoch"]) for r in rows}, key=lambda k: (list(CANDIDATES).index(k[0]), k[1]))
    for recipe, epoch in keys:
        if epoch not in (1, 3, 5, 10, 15, 20, 30):
            continue
        chosen = [r for r in rows if r["recipe"] == recipe and r["epoch"] == epoch]
        items, classes = np.array([r["items"] for r in chosen]), np.array([r["classes"] for r in chosen])
        lines.append(f"| {recipe} | {epoch} | {items.mean():+.3f} | {items.min():+.3f} | {classes.mean():+.3f} | "
                     f"{classes.min():+.3f} |")
    return "\n".join(lines)


def test_splits(data: BenchData, seed: int):
    """``(split name, training rows, test rows)`` of the same-class and the class-disjoint split."""
    yield ("same-class", *same_class_split(data, seed))
    train, test, _ = class_disjoint_split(data, seed)
    yield "class-disjoint", train, test


def table(data: BenchData, features: torch.Tensor, seed: int) -> list[str]:
    """The test-part rows of one data set: before, finetuner (old default and chosen recipe), peers."""
    labels, rows = data.labels, []
    for split, train, test in test_splits(data, seed):
        fit_part, held_items, held_classes = validation_carve(train, labels, seed)
        results = {"before": scores(features[test], labels[test])}
        for name, recipe in RECIPES.items():
            run, _ = finetuner_fit(features, labels, train, {}, recipe, seed, test_data=test)
            results[f"finetuner ({name})"] = scores(encode_head(run, features[test]), labels[test])
        results["PML"] = pml_peer(features, labels, train, test, (fit_part, held_items, held_classes), seed)
        if data.kind == "text":
            results["ST"] = st_peer(data, train, test, (fit_part, held_items, held_classes), seed, scores)
        for name, found in results.items():
            label = f"{name} ({found['setting']})" if "setting" in found else name
            rows.append(f"| {data.name} | {split} | {len(train)} / {len(test)} | {label} | {found['recall@1']:.3f} | "
                        f"{found['map@r']:.3f} |")
            print(rows[-1], flush=True)
    return rows


def refit_table(data: BenchData, features: torch.Tensor, seed: int) -> list[str]:
    """Test-part rows of fit's default recipe returning the validated model (``refit=False``) and the refit one."""
    labels, rows = data.labels, []
    for split, train, test in test_splits(data, seed):
        results = {"before": scores(features[test], labels[test])}
        for refit in (False, True):
            run, _ = finetuner_fit(features, labels, train, {}, RECIPES["chosen"], seed, test_data=test, refit=refit)
            selection = run.metrics["selection"]
            kept = "untuned" if selection.get("untuned") else f"epoch {selection['epoch']}, alpha {selection['alpha']}"
            results[f"refit={refit} ({kept})"] = scores(encode_head(run, features[test]), labels[test])
        for name, found in results.items():
            rows.append(f"| {data.name} | {split} | {name} | {found['recall@1']:.3f} | {found['map@r']:.3f} |")
            print(rows[-1], flush=True)
    return rows


def default_table(data: BenchData, features: torch.Tensor, seed: int, peers: str = "all") -> list[str]:
    """Test-part rows of fit as users get it: ``search=None`` (the recipe as given: the residual head, lr 1e-4, 15
    epochs, refit) and the default ``search="auto"`` (its pick named), then the peers."""
    labels, rows = data.labels, []
    for split, train, test in test_splits(data, seed):
        results = {"before": scores(features[test], labels[test])}
        for search in (None, "auto"):
            began = time.time()
            run, _ = finetuner_fit(features, labels, train, {}, {"head": "residual"}, seed, test_data=test,
                                   search=search)
            found = scores(encode_head(run, features[test]), labels[test])
            searched = run.metrics["selection"].get("search")
            if searched is not None:
                params = searched["params"]
                found["setting"] = (f"lr {params.get('learning_rate')}, {params.get('objective')}, keep "
                                    f"{params.get('keep_neighbourhood')}; {len(searched['trials'])} trials, "
                                    f"{searched['seconds']:.0f} s")
            results[f"fit search={search}"] = found
            print(f"  {split} search={search}: {time.time() - began:.0f} s", flush=True)
        if peers != "none":
            carve = validation_carve(train, labels, seed)
            results["PML"] = pml_peer(features, labels, train, test, carve, seed)
            if data.kind == "text" and peers == "all":
                results["ST"] = st_peer(data, train, test, carve, seed, scores)
        for name, found in results.items():
            label = f"{name} ({found['setting']})" if "setting" in found else name
            rows.append(f"| {data.name} | {split} | {label} | {found['recall@1']:.3f} | {found['map@r']:.3f} |")
            print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated: " + ", ".join(DATASETS))
    parser.add_argument("--search", action="store_true", help="score candidate recipes on validation instead")
    parser.add_argument("--refit", action="store_true", help="fit's default with refit=False vs True, test parts")
    parser.add_argument("--default", action="store_true",
                        help="fit as users get it: search=None vs the default search='auto', and the peers")
    parser.add_argument("--peers", default="all", choices=("all", "pml", "none"),
                        help="with --default: which peers run (ST fine-tunes the whole text encoder: minutes)")
    parser.add_argument("--epochs", type=int, default=15, help="epochs of each candidate in --search")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.getLogger("finetuner").setLevel(logging.WARNING)
    torch.manual_seed(args.seed)
    start, threads = time.time(), torch.get_num_threads()
    rows, found = [], []
    for name in args.datasets.split(","):
        data = DATASETS[name]()
        torch.set_num_threads(threads)
        features = backbone_features(data)
        torch.set_num_threads(1)  # small heads gain nothing from threads; on a shared machine two contend badly
        print(f"# {name}: {len(data.labels)} items, features {tuple(features.shape)}, {time.time() - start:.0f} s",
              flush=True)
        if args.search:
            found += search(data, features, args.seed, args.epochs)
        elif args.refit:
            rows += refit_table(data, features, args.seed)
        elif args.default:
            rows += default_table(data, features, args.seed, peers=args.peers)
        else:
            rows += table(data, features, args.seed)
    if args.search:
        print(summarise_search(found))
    elif args.refit or args.default:
        print("\n| data | split | model | Recall@1 | MAP@R |\n|---|---|---|---|---|")
        print("\n".join(rows))
    else:
        print("\n| data | split | train / test | model | Recall@1 | MAP@R |\n|---|---|---|---|---|---|")
        print("\n".join(rows))
    print(f"\n{time.time() - start:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
