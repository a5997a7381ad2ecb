"""Fit's recipe search on the feature cache (``search="auto"``): with a frozen backbone a head trains in seconds on
the cached features, so a few seeded trials (learning rate, loss and miner, `NeighbourhoodLoss` weight) run on
fit's own validation before the real training, each judged as fit judges a run (`ModelSelection`: the best epoch
on the training classes among those the guard on held-out classes lets through), inside a time budget about the
cost of the backbone's pass. Settings the user gave are kept; the given recipe is the first trial, so the search
never returns a recipe that validates below it."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from finetuner._fit.data import FitData, build_objective
from finetuner._fit.plan import TrainingPlan, model_selection
from finetuner._fit.sources import CachedFeatures
from finetuner.config import FitConfig
from finetuner.training import EvaluationCallback, Trainer
from finetuner.training.config import EMBEDDING_LEARNING_RATE, TrainConfig
from finetuner.training.losses import needs_two_classes
from finetuner.training.neighbourhood import NeighbourhoodLoss
from finetuner.training.state import trained_state

logger = logging.getLogger("finetuner")

LEARNING_RATES = (1e-4, 3e-4, 1e-3)
OBJECTIVES: dict[str, dict[str, Any]] = {  # loss and miner settings by a short name
    "triplet": {"loss": None, "miner": None, "loss_options": {}, "miner_options": {}},
    "triplet-semihard": {
        "loss": "TripletMarginLoss",
        "miner": "TripletMarginMiner",
        "loss_options": {"margin": 0.2},
        "miner_options": {"margin": 0.2, "type_of_triplets": "semihard"},
    },
    "multi-similarity": {
        "loss": "MultiSimilarityLoss", "miner": "MultiSimilarityMiner", "loss_options": {}, "miner_options": {}
    },
}
NEIGHBOURHOOD_WEIGHTS = (0.0, 1.0, 3.0, 10.0)
MIN_BUDGET_SECONDS = 30.0


def objective(
    net: nn.Module, data: FitData, training: TrainConfig, plan: TrainingPlan, built: tuple[nn.Module, Any] | None = None
) -> tuple[nn.Module, Any]:
    """The loss and miner of ``training`` (``built``: those already built for it), the loss wrapped in
    `NeighbourhoodLoss` when ``keep_neighbourhood`` is set and the head trains on cached frozen features (whose
    batches are the head's input), centred on the training features' mean."""
    loss, miner = built if built is not None else build_objective(net, data, training)
    weight = training.keep_neighbourhood
    if weight > 0 and isinstance(plan.source, CachedFeatures) and not data.pairs and needs_two_classes(loss):
        loss = NeighbourhoodLoss(loss, weight, center=plan.training_sample().mean(0))
    return loss, miner


def searchable(plan: TrainingPlan, data: FitData, config: FitConfig) -> bool:
    """The search runs for an embedding head on cached frozen features of labelled data, with validation that
    has held-out classes to guard and selection on."""
    evaluation = config.evaluation
    return (
        evaluation.search == "auto"
        and evaluation.select_best
        and isinstance(plan.source, CachedFeatures)
        and not data.pairs
        and plan.model.task == "embedding"
        and plan.evaluator is not None
        and plan.evaluator.guard_key is not None
    )


def search_space(training: TrainConfig) -> dict[str, tuple]:
    """The settings the search varies: those the user left at their defaults."""
    space: dict[str, tuple] = {}
    if training.learning_rate in (None, EMBEDDING_LEARNING_RATE):
        space["learning_rate"] = LEARNING_RATES
    if training.loss is None and training.miner is None:
        space["objective"] = tuple(OBJECTIVES)
    if training.keep_neighbourhood == 0:
        space["keep_neighbourhood"] = NEIGHBOURHOOD_WEIGHTS
    return space


def with_params(training: TrainConfig, params: dict[str, Any]) -> TrainConfig:
    """``training`` with a trial's settings."""
    values = {k: v for k, v in params.items() if k != "objective"}
    if "objective" in params:
        values.update(OBJECTIVES[params["objective"]])
    return dataclasses.replace(training, **values)


def choose_recipe(
    plan: TrainingPlan,
    net: nn.Module,
    data: FitData,
    objective_built: tuple[nn.Module, Any],
    config: FitConfig,
    untuned: dict[str, float] | None,
) -> tuple[FitConfig, nn.Module, Any, dict[str, Any] | None]:
    """``(config, loss, miner, search summary)``: the config with the searched recipe's settings (unchanged without
    a search), its loss and miner (``objective_built``, the given recipe's, without a search) and what the search
    did (None when it did not run), for ``run.metrics["selection"]["search"]``."""
    space = search_space(config.training) if searchable(plan, data, config) else {}
    if not space:
        return (config, *objective(net, data, config.training, plan, objective_built), None)
    import optuna

    evaluation = config.evaluation
    budget = evaluation.search_budget or max(MIN_BUDGET_SECONDS, plan.source_seconds)
    start = {k: v.detach().to("cpu", copy=True) for k, v in trained_state(plan.trained).items()}
    sampler = optuna.samplers.TPESampler(seed=config.training.seed, n_startup_trials=min(6, evaluation.search_trials))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.enqueue_trial({name: choices[0] if name != "learning_rate" else EMBEDDING_LEARNING_RATE
                         for name, choices in space.items()})
    trials: list[dict[str, Any]] = []
    began = time.perf_counter()
    logger.info("recipe search on the cached features: %s, at most %d trial(s) in %.0f s",
                ", ".join(space), evaluation.search_trials, budget)
    distributions = {name: optuna.distributions.CategoricalDistribution(choices) for name, choices in space.items()}
    asked = 0
    while (len(trials) < evaluation.search_trials and asked < 4 * evaluation.search_trials
           and (not trials or time.perf_counter() - began < budget)):
        trial, asked = study.ask(distributions), asked + 1
        seen = next((t for t in trials if t["params"] == trial.params), None)
        if seen is not None:  # the sampler repeats itself on a small grid: tell it the known result
            study.tell(trial, seen["score"] if seen["score"] is not None else float("-inf"))
            continue
        found = run_trial(plan, net, data, config, with_params(config.training, trial.params), untuned, start)
        found = {"number": len(trials), "params": dict(trial.params), **found}
        study.tell(trial, found["score"] if found["score"] is not None else float("-inf"))
        trials.append(found)
        logger.info("search trial %d %s: %s", found["number"], _show(found["params"]), _verdict(found))
    plan.trained.load_state_dict(start, strict=False)
    passing = [t for t in trials if t["score"] is not None]
    best = max(passing, key=lambda t: t["score"]) if passing else trials[0]
    training = with_params(config.training, best["params"])
    seconds = time.perf_counter() - began
    logger.info("recipe search: kept trial %d %s (%d trial(s), %.1f s)", best["number"], _show(best["params"]),
                len(trials), seconds)
    summary = {"chosen": best["number"], "params": best["params"], "seconds": seconds, "budget_seconds": budget,
               "selection_key": plan.evaluator.selection_key, "trials": trials}
    return (dataclasses.replace(config, training=training), *objective(net, data, training, plan), summary)


def run_trial(
    plan: TrainingPlan,
    net: nn.Module,
    data: FitData,
    config: FitConfig,
    training: TrainConfig,
    untuned: dict[str, float] | None,
    start: dict[str, torch.Tensor],
) -> dict[str, Any]:
    """Train the head from its start with ``training`` and judge it as fit would: the score of the candidate
    selection keeps (None when only the untrained start passes the guard), its epoch and metrics."""
    loss, miner = objective(net, data, training, plan)
    plan.trained.load_state_dict(start, strict=False)
    selection = model_selection(plan, untuned, config.evaluation, with_untuned=False)
    began = time.perf_counter()
    with _quiet():
        Trainer(plan.trained, loss, plan.batches, training, miner=miner, evaluate=plan.metrics,
                callbacks=[EvaluationCallback(), selection], description="search").fit()
    kept = selection.trained_epochs()
    epoch = selection.summary.get("epoch")
    score = None
    if kept is not None and selection.summary.get("alpha") == 1.0:
        score = next(c["score"] for c in selection.candidates if c["epoch"] == epoch and c["alpha"] == 1.0)
    candidate = next((c for c in selection.candidates if c["epoch"] == epoch and c["alpha"] == 1.0), None)
    return {"score": score, "epoch": epoch, "guard": candidate["guard"] if candidate else None,
            "seconds": time.perf_counter() - began}


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Trials log one line each, not their epochs."""
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _show(params: dict[str, Any]) -> str:
    return "(" + ", ".join(f"{k}={v}" for k, v in params.items()) + ")"


def _verdict(trial: dict[str, Any]) -> str:
    if trial["score"] is None:
        return f"no trained epoch passed the guard ({trial['seconds']:.1f} s)"
    return f"epoch {trial['epoch']}, score {trial['score']:.4f}, guard {trial['guard']:.4f} ({trial['seconds']:.1f} s)"
