"""The `Tracker` callback every experiment tracker subclasses, and `TRACKERS`: the trackers ``report_to`` names,
one module each in this folder, registered with ``@register_tracker(name)``.

A tracker gets the run's config once, then every record the trainer logs (`Trainer.log`): the training loss and
learning rate every ``logging_steps`` optimizer steps, evaluations every ``eval_steps``, and each epoch's record
(``epoch/loss`` and the ``eval/`` metrics, the numbers of ``run.history``), each at its global optimizer step; with
an evaluation, also the start's ``eval/`` metrics at step 0 and the returned model's as ``kept/<metric>`` at the end.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from finetuner.core.registry import Registry
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
    def for_run(cls, folder: Path, config: Mapping[str, Any] | None) -> Tracker:
        """The tracker ``report_to`` builds, writing under the run's log ``folder`` (override for other arguments)."""
        return cls(config=config)

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
            if trainer.evaluate is not None and trainer.global_step == 0:  # the start, under the epochs' names
                self.log_metrics(_floats(trainer.evaluate(), "eval/"), 0)

    def on_log(self, trainer: Trainer, record: dict[str, Any]) -> None:
        if distributed.is_main_process():
            values = {k: float(v) for k, v in record.items() if k != "step" and isinstance(v, (int, float))}
            self.log_metrics(values, record["step"])

    def on_fit_end(self, trainer: Trainer) -> None:
        if distributed.is_main_process():
            if trainer.evaluate is not None:  # the model fit returns (model selection has run: it comes first)
                self.log_metrics(_floats(trainer.evaluate(), "kept/"), trainer.global_step)
            self.finish()


def _floats(metrics: Mapping[str, Any], prefix: str) -> dict[str, float]:
    return {prefix + k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}


# report_to name -> Tracker subclass; the modules of this folder are imported on the first lookup
TRACKERS: Registry[type[Tracker]] = Registry("tracker", "finetuner.training.trackers", base=Tracker)
T = TypeVar("T", bound=type[Tracker])


def register_tracker(name: str) -> Callable[[T], T]:
    """Class decorator: ``report_to=name`` builds the tracker with ``cls.for_run(folder, config)``.

    Example:
        >>> @register_tracker("print")
        ... class PrintTracker(Tracker):
        ...     def log_metrics(self, values, step):
        ...         print(step, values)  # doctest: +SKIP
    """
    return TRACKERS.register(name)


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
    built = [TRACKERS.get(name).for_run(Path(folder), config) for name in check_tracker_names(names)]
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
