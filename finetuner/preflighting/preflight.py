"""`preflight`: from one cached backbone pass, train fit's head on growing shares of the labels and measure the gain."""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from finetuner import _fit
from finetuner.api import build_model
from finetuner.config import FitConfig
from finetuner.core.device import seed_everything
from finetuner.core.log import configure_logging
from finetuner.models import Backbone
from finetuner.preflighting.report import CurvePoint, PreflightReport, headline_keys, verdict
from finetuner.probing import train_together
from finetuner.training import TrainConfig

logger = logging.getLogger("finetuner")

DEFAULT_SHARES = (0.1, 0.25, 0.5, 1.0)
DEFAULTS = {"freeze": True, "output_dim": 128}  # what preflight measures unless told: the README's frozen 128-d head


def preflight(
    model: str | Path | nn.Module | Backbone,
    train_data: Any,
    eval_data: Any = None,
    *,
    shares: Sequence[float] = DEFAULT_SHARES,
    seeds: int = 3,
    probe: bool = False,
    config: FitConfig | None = None,
    **options: Any,
) -> PreflightReport:
    """Will tuning help? Train fit's head on 10 / 25 / 50 / 100 % of the labels and measure the gain on validation.

    The frozen backbone runs once over the data (`fit`'s feature cache: a later `fit` with the same backbone, layer
    and data reuses it); then, for each share and seed, fit's head (``head``, ``output_dim``, loss, miner, epochs,
    learning rate: `fit`'s options) trains from its start on that share of every training class's items, on the
    cached features, and is scored on `fit`'s validation data (held out of ``train_data`` by ``val_split`` /
    ``val_class_split``, or ``eval_data``): items of the training classes (``seen/``) and held-out classes
    (``new/``), against the untuned backbone's own features. The head of the last epoch is scored (no selection on
    validation, which would make every gain look positive). The same head trained on shuffled labels (once a seed)
    gives the noise floor a gain must clear. The heads of a share's seeds (and the shuffled ones, with the full
    share) train together, in one loop (`finetuner.probing.train_together`), each ending as it would alone.

    Args:
        model: what `fit` takes: a registered name, a timm name, a Hugging Face folder, an ``nn.Module`` (with
            ``input_size``), or a `finetuner.models.Backbone`.
        train_data: labelled data in any form `fit` reads.
        eval_data: labelled validation data; without it, validation is held out of ``train_data`` as `fit` does.
        shares: fractions of each training class's items (in (0, 1], at least 2 items a class), smallest first.
        seeds: how many seeds each share trains with (the spread of the gain is over them).
        probe: also run `finetuner.probe`'s layer x head leaderboard first (the same pass, with hooks on more
            layers; its heads train too, so it costs more).
        config: a `finetuner.config.FitConfig`; ``**options`` are its fields by their flat names, as `fit` takes them
            (default here ``freeze=True, output_dim=128``: a frozen backbone is what one cached pass can measure).

    Returns:
        A `PreflightReport`: ``print(report)`` shows the curve, the cost and the verdict; ``report.to_dict()``,
        ``report.save("preflight.json")``, ``report.plot()``.

    Raises:
        ValueError: bad shares or seeds, pair data, no validation data, a backbone that is not wholly frozen or no
            head, the cache turned off, classification.

    Example:
        >>> report = finetuner.preflight("efficientnet_lite0", "data/train", seeds=3)  # doctest: +SKIP
        >>> print(report.verdict)  # doctest: +SKIP
        Tuning helps on this data: seen/map@r +0.152 ±0.004 with 100% of the labels, new classes not hurt (...); ...
    """
    shares, seed_list = check_shares(shares), check_seeds(seeds)
    config = check_config(FitConfig.from_options(config, **(DEFAULTS | options)))
    config.training.learning_rate = config.training.default_learning_rate(config.model.task)
    configure_logging(config.output.verbose)
    started = time.perf_counter()
    data = _fit.prepare_data(train_data, eval_data, None, config)
    if data.pairs:
        raise ValueError("preflight needs labelled data (item, label): it trains on shares of each class's items.")
    if data.eval is None:
        raise ValueError(
            "preflight needs validation data: pass eval_data, or keep val_split / val_class_split above 0 with at "
            "least 2 items a class."
        )
    board = leaderboard(model, data, config) if probe else None  # first: its one pass also caches fit's layer
    net = build_model(model, config.model, classes=data.classes)
    _fit.apply_data_options(net, config)
    loss, miner = _fit.build_objective(net, data, config.training)
    passed = time.perf_counter()
    plan = _fit.plan_training(net, data, loss, config)  # the one backbone pass (or the cache)
    backbone_seconds = time.perf_counter() - passed
    evaluated = time.perf_counter()
    before = plan.scores(tuned=False)["validation"]
    evaluation_seconds = time.perf_counter() - evaluated
    parts = ["seen/", "new/"] if plan.evaluator.has_guard else [""]
    keys = headline_keys(parts)

    labels = np.asarray(data.train.labels)
    every = np.arange(len(labels))
    runs = [Run(share, seed, share_rows(labels, share, seed)) for share in shares for seed in seed_list]
    runs += [Run(1.0, seed, every, shuffled=True) for seed in seed_list]
    metrics, seconds = train_runs(plan, data, loss, miner, config.training, runs)
    curve = []
    for share in shares:
        picked = [(run, found) for run, found in zip(runs, metrics) if run.share == share and not run.shuffled]
        point = CurvePoint.from_runs(share, len(picked[0][0].rows), [found for _, found in picked], before, keys)
        logger.info("preflight %s of the labels (%d items): gain %s", f"{share:.0%}", point.items,
                    " ".join(f"{k} {point.gain[k]:+.4f}" for k in keys))  # fmt: skip
        curve.append(point)
    null_runs = [found for run, found in zip(runs, metrics) if run.shuffled]
    shuffled = CurvePoint.from_runs(1.0, len(labels), null_runs, before, keys)

    epochs = config.training.epochs
    head_epoch = seconds[-1] / epochs  # a shuffled run's: all training items (its share of the joint loop)
    refit = epochs * head_epoch * len(data.eval) / len(data.train) if config.evaluation.refit and data.source else 0.0
    timing = {
        "backbone": backbone_seconds,
        "head_epoch": head_epoch,
        "evaluation": evaluation_seconds,
        "epochs": float(epochs),
        "fit_estimate": backbone_seconds + epochs * (head_epoch + evaluation_seconds) + refit,
        "total": time.perf_counter() - started,
    }
    tolerance = config.evaluation.guard_tolerance
    report = PreflightReport(
        model=str(model) if isinstance(model, (str, Path)) else type(model).__name__,
        data=data.names["train"],
        parts=parts,
        selection_key=plan.evaluator.selection_key,
        guard_key=plan.evaluator.guard_key,
        before={key: before[key] for key in keys},
        curve=curve,
        seeds=seed_list,
        held_out_classes=list(data.held_out_classes),
        timing=timing,
        shuffled=shuffled,
        leaderboard=board,
        verdict=verdict(
            curve, plan.evaluator.selection_key, plan.evaluator.guard_key, guard_tolerance=tolerance, shuffled=shuffled
        ),
    )
    logger.info("%s", report.verdict)
    return report


def check_shares(shares: Sequence[float]) -> list[float]:
    """The shares sorted, each in (0, 1], without repeats; a ``ValueError`` that names the bad value otherwise.

    Example:
        >>> check_shares([1.0, 0.5])
        [0.5, 1.0]
    """
    if isinstance(shares, (str, bytes)) or not isinstance(shares, Sequence) or not shares:
        raise ValueError(f"shares must be a non-empty list of fractions such as (0.1, 0.25, 0.5, 1.0), got {shares!r}.")
    bad = [s for s in shares if isinstance(s, bool) or not isinstance(s, (int, float)) or not 0 < s <= 1]
    if bad:
        raise ValueError(f"shares must be fractions in (0, 1] (1.0: every label), got {bad} in {list(shares)}.")
    if len(set(shares)) != len(shares):
        raise ValueError(f"shares has repeats: {list(shares)}; give each fraction once.")
    return sorted(float(s) for s in shares)


def check_seeds(seeds: int) -> list[int]:
    """``seeds`` seeds, 0 to ``seeds - 1``; a ``ValueError`` unless it is a whole number of at least 1.

    Example:
        >>> check_seeds(3)
        [0, 1, 2]
    """
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds must be a whole number of at least 1 (3 gives a spread), got {seeds!r}.")
    return list(range(seeds))


def check_config(config: FitConfig) -> FitConfig:
    """Refuse settings one cached pass cannot measure: a backbone not wholly frozen, no head, no cache."""
    chosen = config.model
    if chosen.task != "embedding":
        raise ValueError("preflight measures embeddings (retrieval on held-out classes); task must be 'embedding'.")
    if chosen.freeze is not True:
        raise ValueError(
            f"preflight trains a head on a frozen backbone's cached features: freeze must be True, got "
            f"{chosen.freeze!r} (partial fine-tuning needs a full fit)."
        )
    if not isinstance(chosen.output_dim, int) or chosen.layer_name == "auto":
        raise ValueError(
            f"preflight needs a head of a given size and layer: output_dim=128 (got {chosen.output_dim!r}), layer_name "
            f"a name or None (got {chosen.layer_name!r}); probe=True ranks layers and heads."
        )
    if not config.cache.cache:
        raise ValueError("preflight trains on cached features: leave cache=True.")
    return config


def share_rows(labels: np.ndarray, share: float, seed: int) -> np.ndarray:
    """Sorted rows of a seeded ``share`` of each class's items (at least 2 a class, or all it has).

    Example:
        >>> share_rows(np.array([0, 0, 0, 0, 1, 1, 1, 1]), 0.5, seed=0).tolist()  # doctest: +SKIP
        [1, 2, 4, 7]
    """
    rng = np.random.default_rng(seed)
    picked = []
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        count = min(len(rows), max(2, round(share * len(rows))))
        picked.append(rng.choice(rows, count, replace=False))
    return np.sort(np.concatenate(picked))


@dataclass(frozen=True)
class Run:
    """One head to train: on the training items at ``rows`` (a ``share`` of each class's), batches seeded by
    ``seed``, labels shuffled (by the same seed) if ``shuffled``."""

    share: float
    seed: int
    rows: np.ndarray
    shuffled: bool = False


def train_runs(
    plan: Any, data: Any, loss: nn.Module, miner: nn.Module | None, training: TrainConfig, runs: Sequence[Run]
) -> tuple[list[dict[str, float]], list[float]]:
    """Train fit's head from its start for every run on the cached training features and score it on validation
    (`TrainingPlan.metrics`). Runs with as many batches an epoch (the seeds of a share, and the shuffled runs
    with the full share) train together, in one loop (`finetuner.probing.train_together`): each ends as it would
    trained alone.

    Returns:
        Each run's validation metrics and training seconds (its share of the loop it trained in).
    """
    head, features = plan.trained, plan.source.train_features["items"][0]
    start = copy.deepcopy(head)
    sources = []
    for run in runs:
        subset = data.train.subset(run.rows.tolist())
        if run.shuffled:
            shuffled = np.random.default_rng(run.seed).permutation(subset.labels).tolist()
            subset = dataclasses.replace(subset, labels=shuffled)
        seeded = dataclasses.replace(training, seed=run.seed)
        sampler = _fit.sources.make_batch_sampler(subset, loss, seeded, sharded=False)
        sources.append(_fit.sources.tensor_batches({"items": [features[run.rows]]}, subset, sampler))
    groups: dict[int, list[int]] = {}  # by batches an epoch
    for number, source in enumerate(sources):
        groups.setdefault(len(source), []).append(number)
    metrics: list[dict[str, float]] = [{} for _ in runs]
    seconds = [0.0 for _ in runs]
    for members in groups.values():
        heads = [copy.deepcopy(start) for _ in members]
        seed_everything(training.seed)
        began = time.perf_counter()
        train_together(
            heads, [copy.deepcopy(loss) for _ in members], [sources[i] for i in members], training,
            miners=[copy.deepcopy(miner) for _ in members], description=f"preflight {len(members)} heads",
        )  # fmt: skip
        share = (time.perf_counter() - began) / len(members)
        for number, trained in zip(members, heads):
            seconds[number] = share
            head.load_state_dict(trained.state_dict())
            metrics[number] = plan.metrics("validation")
    head.load_state_dict(start.state_dict())
    return metrics, seconds


def leaderboard(model: Any, data: Any, config: FitConfig) -> list[dict[str, Any]]:
    """`finetuner.probe` on the validation rows `fit` made, as plain rows (layer, head, dim, score, metrics)."""
    from finetuner.probing import probe

    held_out = data.source is not None
    board = probe(
        model,
        data.source if held_out else data.train,
        None if held_out else data.eval,
        config=config,
        holdout=data.holdout,
    )
    return [
        {"layer": r.layer, "layer_name": r.layer_name, "head": r.head, "output_dim": r.output_dim, "score": r.score,
         "metrics": r.metrics}
        for r in board
    ]  # fmt: skip
