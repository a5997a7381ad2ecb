"""`sweep`: tune the head's training settings with Optuna on one layer's cached features."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from torch import nn

from finetuner.config import FitConfig
from finetuner.models import Backbone
from finetuner.probing._prepare import Prepared, prepare, settings
from finetuner.probing.recipe import HeadSpec, Recipe, score, train_head, validation_metrics
from finetuner.training import Callback

DEFAULT_SPACE: dict[str, Any] = {
    "learning_rate": (1e-4, 1e-2),
    "loss": ["TripletMarginLoss", "MultiSimilarityLoss", "NTXentLoss"],
    "miner": [None, "MultiSimilarityMiner"],
    "output_dim": [64, 128, 256],
    "epochs": (2, 8),
}
HEAD_SETTINGS = ("head", "output_dim")


@dataclass
class SweepTrial:
    """One trial: its settings, validation metrics (of its last epoch), score, state and time."""

    number: int
    params: dict[str, Any]
    metrics: dict[str, dict[str, float]]
    score: float
    state: str  # "complete" or "pruned"
    seconds: float


@dataclass
class SweepResult:
    """What `sweep` found.

    Attributes:
        layer: the layer swept (its name in the backbone).
        layer_name: `fit`'s ``layer_name`` for it (None: the default embedding layer).
        trials: every trial in order; ``best`` is the completed one with the highest score.
        primary_metric: the metric scores average over the validation splits.
        study: the Optuna study, for its plots and analysis.
    """

    layer: str
    layer_name: str | None
    trials: list[SweepTrial]
    primary_metric: str
    study: Any

    @property
    def best(self) -> SweepTrial:
        complete = [t for t in self.trials if t.state == "complete"]
        if not complete:
            raise ValueError("No trial completed: run more trials or loosen the pruning (pruner_warmup_epochs).")
        return max(complete, key=lambda t: t.score)

    def fit_options(self) -> dict[str, Any]:
        """The `fit` arguments of the best trial: a frozen backbone cut at the layer, the head and its recipe.

        Example:
            >>> finetuner.fit(model, data, **result.fit_options())  # doctest: +SKIP
        """
        return {"layer_name": self.layer_name, "freeze": True, **self.best.params}

    def __str__(self) -> str:
        names = list(dict.fromkeys(name for t in self.trials for name in t.params))
        header = ["#", "state", f"score ({self.primary_metric})", "s", *names]
        rows = [
            [str(t.number), t.state, f"{t.score:.4f}", f"{t.seconds:.2f}"] + [_show(t.params.get(n)) for n in names]
            for t in self.trials
        ]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows]]
        best = f"best: trial {self.best.number}, score {self.best.score:.4f}" if self.trials else "no trials"
        return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:], best])


def sweep(
    model: str | Path | nn.Module | Backbone,
    train_data: Any,
    eval_data: Any = None,
    *,
    layer: str | None = None,
    head: str = "projection",
    n_trials: int = 20,
    space: Mapping[str, Any] | None = None,
    recipe: Recipe | None = None,
    seed: int = 0,
    primary_metric: str = "map@r",
    pruner_warmup_epochs: int = 1,
    config: FitConfig | None = None,
    **options: Any,
) -> SweepResult:
    """Tune a head's training settings with Optuna on one layer's cached features (one forward pass, cached).

    Each trial trains a fresh head on the cached features with the recipe plus the trial's settings and reports
    the validation score after every epoch; a seeded ``TPESampler`` picks the settings and a ``MedianPruner`` stops
    trials that fall behind the median of earlier ones at the same epoch. Everything runs in this process on
    tensors, and the same seed gives the same trials.

    Args:
        model, train_data, eval_data: as in `probe` (the same validation splits).
        layer: the layer to cut at (a name from `finetuner.display`; a transformer block for text encoders); None:
            the backbone's default embedding layer.
        head: ``"linear"`` or ``"projection"`` (or tune it: ``space={"head": ["linear", "projection"], ...}``).
        n_trials: number of trials.
        space: settings to tune; a list is a set of choices, a ``(low, high)`` tuple a range (floats on a log scale,
            ints as integers). Keys: ``head``, ``output_dim`` and any `Recipe` field (``learning_rate``, ``loss``,
            ``miner``, ``epochs``, ``batch_size``, ...). Default: `DEFAULT_SPACE`.
        recipe: the settings not tuned.
        seed: seeds the sampler and every trial's training.
        pruner_warmup_epochs: epochs a trial always runs before it may be pruned.
        config, **options: the settings shared with `fit` and `probe` (``val_split``, ``cache_dir``,
            ``input_size``, ...; see `probe`).

    Returns:
        A `SweepResult`: ``best.params``, ``fit_options()`` and every trial.

    Example:
        >>> result = finetuner.sweep("efficientnet_lite0", "fashion-mnist", n_trials=20)  # doctest: +SKIP
        >>> print(result)  # doctest: +SKIP
        >>> finetuner.fit("efficientnet_lite0", "fashion-mnist", **result.fit_options())  # doctest: +SKIP
    """
    import optuna

    space = dict(DEFAULT_SPACE if space is None else space)
    _check_space(space)
    if n_trials < 1:
        raise ValueError(f"n_trials must be at least 1, got {n_trials}.")
    config = settings(config, options)
    recipe = (recipe or Recipe.from_training(config.training)).replace(seed=seed)
    layers = 1 if layer is None else [layer]
    prepared = prepare(model, train_data, eval_data, layers=layers, recipe=recipe, config=config)
    candidate = prepared.candidates[-1]
    trials: list[SweepTrial] = []

    def objective(trial: optuna.Trial) -> float:
        params = {name: _suggest(trial, name, spec) for name, spec in space.items()}
        start = time.perf_counter()
        report = _Report(trial, prepared, candidate.name, primary_metric)
        spec = HeadSpec.parse(f"{params.get('head', head)}:{params.get('output_dim', 128)}")
        trial_recipe = recipe.replace(**{k: v for k, v in params.items() if k not in HEAD_SETTINGS})
        features = prepared.train[candidate.name]
        train_head(
            features, prepared.train_labels, spec, trial_recipe, num_classes=prepared.num_classes, callbacks=[report]
        )
        state = "pruned" if report.pruned else "complete"
        full = {"head": spec.kind, "output_dim": spec.output_dim, **params}
        trials.append(SweepTrial(trial.number, full, report.metrics, report.score, state, time.perf_counter() - start))
        if report.pruned:
            raise optuna.TrialPruned()
        return report.score

    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=pruner_warmup_epochs),
    )
    study.optimize(objective, n_trials=n_trials)
    return SweepResult(candidate.name, candidate.layer_name, trials, primary_metric, study)


class _Report(Callback):
    """Scores the head on validation after each epoch, reports it to the trial, and stops a pruned trial."""

    def __init__(self, trial: Any, prepared: Prepared, layer: str, primary_metric: str):
        self.trial, self.validation, self.primary_metric = trial, prepared.split_features(layer), primary_metric
        self.metrics: dict[str, dict[str, float]] = {}
        self.score, self.pruned = float("nan"), False

    def on_epoch_end(self, trainer: Any) -> None:
        self.metrics = validation_metrics(trainer.model, self.validation)
        trainer.model.train()
        self.score = score(self.metrics, self.primary_metric)
        self.trial.report(self.score, trainer.epoch + 1)
        if self.trial.should_prune():
            self.pruned = trainer.should_stop = True


def _check_space(space: Mapping[str, Any]) -> None:
    known = {f.name for f in fields(Recipe)} - {"seed", "device", "precision"} | set(HEAD_SETTINGS)
    unknown = sorted(set(space) - known)
    if unknown:
        raise ValueError(f"Unknown sweep settings {unknown}; tune any of {sorted(known)}.")
    for name, spec in space.items():
        is_range = isinstance(spec, tuple) and len(spec) == 2 and all(isinstance(v, int | float) for v in spec)
        if not is_range and not (isinstance(spec, list) and spec):
            raise ValueError(
                f"space[{name!r}] = {spec!r}: use a non-empty list of choices or a (low, high) tuple of numbers."
            )


def _suggest(trial: Any, name: str, spec: list | tuple) -> Any:
    if isinstance(spec, list):
        return trial.suggest_categorical(name, spec)
    low, high = spec
    if isinstance(low, int) and isinstance(high, int):
        return trial.suggest_int(name, low, high)
    return trial.suggest_float(name, float(low), float(high), log=True)


def _show(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
