"""Experiment trackers: TensorBoard, MLflow and Weights & Biases behind one `Tracker` callback, all offline.

A tracker gets the run's config once, then every record the trainer logs (`Trainer.log`): the training loss and
learning rate every ``logging_steps`` optimizer steps, evaluations every ``eval_steps``, and each epoch's record
(``epoch/loss`` and the ``eval/`` metrics, the numbers of ``run.history``), each at its global optimizer step.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finetuner.training import distributed
from finetuner.training.callbacks import Callback

if TYPE_CHECKING:  # pragma: no cover
    from finetuner.training.trainer import Trainer


class Tracker(Callback):
    """Base class: `start` with the config, `log_metrics` per trainer record, `finish` at the end (rank 0 only).

    Args:
        config: the settings to record as parameters (nested dicts are flattened to ``section.name``); None: the
            trainer's `TrainConfig`.

    Example:
        >>> class PrintTracker(Tracker):
        ...     def log_metrics(self, values, step):
        ...         print(step, values)
        >>> finetuner.fit(..., callbacks=[PrintTracker()])  # doctest: +SKIP
    """

    #: the module `start` imports, and the package that installs it (checked by `check_installed`).
    requires: tuple[str, str] | None = None

    def __init__(self, config: Mapping[str, Any] | None = None):
        self.config = config

    @classmethod
    def check_installed(cls) -> None:
        """Raise an ImportError naming the ``pip install`` that is missing (before any training)."""
        import importlib.util

        if cls.requires is not None and importlib.util.find_spec(cls.requires[0]) is None:
            raise ImportError(f"{cls.__name__} needs {cls.requires[0]}: pip install {cls.requires[1]}")

    def check(self, trainer: Trainer) -> None:
        super().check(trainer)
        self.check_installed()

    def start(self, params: dict[str, Any]) -> None:
        """Open the run and record ``params`` (flat names, JSON values)."""

    def log_metrics(self, values: dict[str, float], step: int) -> None:
        """Record ``values`` at optimizer step ``step``."""

    def finish(self) -> None:
        """Close the run (flush files)."""

    def on_fit_start(self, trainer: Trainer) -> None:
        if distributed.is_main_process():
            self.start(flatten(self.config if self.config is not None else trainer.config.to_dict()))

    def on_log(self, trainer: Trainer, record: dict[str, Any]) -> None:
        if distributed.is_main_process():
            values = {k: float(v) for k, v in record.items() if k != "step" and isinstance(v, (int, float))}
            self.log_metrics(values, record["step"])

    def on_fit_end(self, trainer: Trainer) -> None:
        if distributed.is_main_process():
            self.finish()


class TensorBoardTracker(Tracker):
    """TensorBoard event files in ``folder`` (``tensorboard --logdir folder``); the config as a text summary.

    Example:
        >>> finetuner.fit(..., callbacks=[TensorBoardTracker("out/logs/tensorboard")])  # doctest: +SKIP
    """

    requires = ("tensorboard", "tensorboard")

    def __init__(self, folder: str | Path, config: Mapping[str, Any] | None = None):
        super().__init__(config)
        self.folder = Path(folder)
        self.writer = None

    def start(self, params: dict[str, Any]) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(self.folder))
        table = "\n".join(f"| {k} | {v} |" for k, v in params.items())
        self.writer.add_text("config", f"| setting | value |\n|---|---|\n{table}")

    def log_metrics(self, values: dict[str, float], step: int) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)

    def finish(self) -> None:
        self.writer.close()


class MLflowTracker(Tracker):
    """An MLflow run: the config as parameters, every record as metrics.

    Args:
        tracking_uri: where runs go; None: ``MLFLOW_TRACKING_URI`` when set, else a local file store in
            ``folder`` (read it with ``mlflow ui --backend-store-uri file://<folder>``).
        folder: the local store used without a tracking URI.
        experiment: the MLflow experiment name.
        run_name: the run's name (None: MLflow picks one).

    Example:
        >>> finetuner.fit(..., callbacks=[MLflowTracker(folder="out/logs/mlruns")])  # doctest: +SKIP
    """

    requires = ("mlflow", "mlflow-skinny")

    def __init__(
        self,
        tracking_uri: str | None = None,
        *,
        folder: str | Path = "mlruns",
        experiment: str = "finetuner",
        run_name: str | None = None,
        config: Mapping[str, Any] | None = None,
    ):
        super().__init__(config)
        self.tracking_uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or Path(folder).resolve().as_uri()
        self.experiment, self.run_name = experiment, run_name
        self.client, self.run_id = None, None

    def start(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        if self.tracking_uri.startswith("file:"):
            # MLflow 3 asks file stores to opt in; a local, offline store is what this tracker is for.
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(self.tracking_uri)
        found = self.client.get_experiment_by_name(self.experiment)
        experiment_id = found.experiment_id if found else self.client.create_experiment(self.experiment)
        self.run_id = self.client.create_run(experiment_id, run_name=self.run_name).info.run_id
        # MLflow caps parameter values at 6000 characters.
        self.client.log_batch(self.run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])

    def log_metrics(self, values: dict[str, float], step: int) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(mlflow_name(k), v, now, step) for k, v in values.items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def finish(self) -> None:
        self.client.set_terminated(self.run_id)


class WandbTracker(Tracker):
    """A Weights & Biases run, offline by default (files under ``folder``; ``wandb sync`` uploads them later).

    Args:
        folder: where W&B writes its ``wandb/`` folder.
        project: the W&B project.
        mode: ``offline`` (default), ``online`` or ``disabled``; the ``WANDB_MODE`` variable wins when set.

    Example:
        >>> finetuner.fit(..., callbacks=[WandbTracker("out/logs", project="shoes")])  # doctest: +SKIP
    """

    requires = ("wandb", "wandb")

    def __init__(
        self,
        folder: str | Path = ".",
        *,
        project: str = "finetuner",
        mode: str = "offline",
        config: Mapping[str, Any] | None = None,
    ):
        super().__init__(config)
        self.folder, self.project = Path(folder), project
        self.mode = os.environ.get("WANDB_MODE", mode)
        self.run = None

    def start(self, params: dict[str, Any]) -> None:
        import wandb

        self.folder.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(project=self.project, dir=str(self.folder), mode=self.mode, config=params)

    def log_metrics(self, values: dict[str, float], step: int) -> None:
        self.run.log(values, step=step)

    def finish(self) -> None:
        self.run.finish()


TRACKERS = {"tensorboard": TensorBoardTracker, "mlflow": MLflowTracker, "wandb": WandbTracker}


def check_tracker_names(names: str | Iterable[str] | None) -> tuple[str, ...]:
    """``report_to`` as a tuple of known tracker names (a single name or a comma list is accepted).

    Example:
        >>> check_tracker_names("tensorboard,mlflow")
        ('tensorboard', 'mlflow')
    """
    if names is None:
        return ()
    if isinstance(names, str):
        names = [name.strip() for name in names.split(",") if name.strip()]
    names = tuple(names)
    unknown = [name for name in names if name not in TRACKERS]
    if unknown:
        raise ValueError(f"Unknown tracker {unknown[0]!r} in report_to: choose from {', '.join(TRACKERS)}.")
    return names


def build_trackers(names: Iterable[str], folder: str | Path, config: Mapping[str, Any] | None = None) -> list[Tracker]:
    """The trackers named in ``report_to``, writing under ``folder`` (``tensorboard/``, ``mlruns/``, ``wandb/``).
    A tracker whose package is missing raises an ImportError naming the ``pip install``, before any training.

    Example:
        >>> [type(t).__name__ for t in build_trackers(["tensorboard"], "out/logs")]
        ['TensorBoardTracker']
    """
    folder = Path(folder)
    built: list[Tracker] = []
    for name in check_tracker_names(names):
        if name == "tensorboard":
            built.append(TensorBoardTracker(folder / "tensorboard", config))
        elif name == "mlflow":
            built.append(MLflowTracker(folder=folder / "mlruns", config=config))
        else:
            built.append(WandbTracker(folder, config=config))
    for tracker in built:
        tracker.check_installed()
    return built


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as ``{"section.name": value}``.

    Example:
        >>> flatten({"training": {"epochs": 3}, "seed": 0})
        {'training.epochs': 3, 'seed': 0}
    """
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def mlflow_name(key: str) -> str:
    """A metric name MLflow accepts (letters, digits, ``_-. /:``): ``eval/map@r`` -> ``eval/map_at_r``.

    Example:
        >>> mlflow_name("eval/recall@10")
        'eval/recall_at_10'
    """
    return re.sub(r"[^\w\-. /:]", "_", key.replace("@", "_at_"))
