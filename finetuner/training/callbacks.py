"""Callbacks: evaluation, best-model and training checkpoints, early stopping, WiSE-FT."""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from finetuner.training import distributed
from finetuner.training.state import interpolate_into, trained_state

if TYPE_CHECKING:  # pragma: no cover
    from finetuner.training.trainer import Trainer

logger = logging.getLogger("finetuner")


class Callback:
    """Hooks called by the `Trainer`; override the ones you need."""

    #: `Trainer` constructor arguments this callback calls (checked before the first epoch).
    needs: tuple[str, ...] = ()

    def check(self, trainer: Trainer) -> None:
        """Raise a clear error when the trainer lacks something this callback calls."""
        for name in self.needs:
            if getattr(trainer, name) is None:
                raise ValueError(
                    f"{type(self).__name__} needs the trainer's {name}: build Trainer(..., {name}=...) "
                    "(finetuner.fit passes it)."
                )

    def on_fit_start(self, trainer: Trainer) -> None:
        """Before the first epoch."""

    def on_step_end(self, trainer: Trainer) -> None:
        """After each optimizer step (``trainer.global_step`` counts them; with gradient accumulation, one step
        covers ``gradient_accumulation_steps`` batches)."""

    def on_epoch_end(self, trainer: Trainer) -> None:
        """After each epoch; ``trainer.history[-1]`` is this epoch's record and may be extended."""

    def on_log(self, trainer: Trainer, record: dict[str, Any]) -> None:
        """A record of `Trainer.log`: ``{"step": global step, name: number, ...}`` (trackers write it)."""

    def on_fit_end(self, trainer: Trainer) -> None:
        """After the last epoch (or an early stop)."""

    def state_dict(self) -> dict[str, Any] | None:
        """What a resumed run needs to continue exactly (tensors, numbers, strings, lists, dicts); None: nothing."""
        return None

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned (called before ``on_fit_start`` of a resumed run)."""

    def checkpoint_folders(self) -> list[Path]:
        """Folders that hold this callback's resumable checkpoints, written so far (a divergence error names
        them); default: none."""
        return []


class EvaluationCallback(Callback):
    """Evaluates retrieval metrics every ``every`` epochs and adds them to the history as ``eval/<metric>``;
    with ``every_steps``, also every that many optimizer steps, logged (`Trainer.log`) but not in the history.

    With ``query_data`` (and optionally ``index_data``) it encodes those with the model being trained;
    without, it uses the evaluation that `finetuner.fit` set up from ``eval_data``.

    Example:
        >>> callback = EvaluationCallback(query_data="data/query", index_data="data/index")
        >>> finetuner.fit(..., callbacks=[callback])  # doctest: +SKIP
    """

    def __init__(
        self,
        query_data: Any = None,
        index_data: Any = None,
        *,
        every: int = 1,
        every_steps: int | None = None,
        prefix: str = "eval",
        **metric_options: Any,
    ):
        self.every, self.every_steps, self.prefix = every, every_steps, prefix
        self.evaluator = None
        if query_data is not None:
            from finetuner.evaluation import Evaluator

            self.evaluator = Evaluator(query_data, index_data, **metric_options)
        self.needs = ("evaluate",) if self.evaluator is None else ("encode",)

    def compute(self, trainer: Trainer) -> dict[str, float]:
        """The metrics of the model now: computed on rank 0 and given to every rank, so monitors agree."""
        if not distributed.is_main_process():
            return distributed.broadcast_object(None)
        metrics = trainer.evaluate() if self.evaluator is None else self.evaluator(trainer.encode)
        return distributed.broadcast_object(metrics)

    def on_step_end(self, trainer: Trainer) -> None:
        step = trainer.global_step
        # the last step of an epoch is evaluated by on_epoch_end
        if self.every_steps and step % self.every_steps == 0 and step % trainer.steps_per_epoch:
            trainer.log({f"{self.prefix}/{k}": v for k, v in self.compute(trainer).items()})

    def on_epoch_end(self, trainer: Trainer) -> None:
        if (trainer.epoch + 1) % self.every and trainer.epoch + 1 != trainer.config.epochs:
            return
        metrics = self.compute(trainer)
        trainer.metrics = metrics
        trainer.history[-1].update({f"{self.prefix}/{k}": v for k, v in metrics.items()})


class _Monitor(Callback):
    """Shared logic: read ``monitor`` from the latest history record and tell improvements."""

    def __init__(self, monitor: str, mode: str):
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}.")
        self.monitor, self.mode = monitor, mode
        self.best: float | None = None

    def improved(self, trainer: Trainer, min_delta: float = 0.0) -> bool:
        record = trainer.history[-1]
        if self.monitor not in record:
            known = ", ".join(sorted(record))
            raise ValueError(
                f"Cannot monitor {self.monitor!r}: the history has {known}. Add an EvaluationCallback "
                "(or eval_data) for eval/ metrics, or monitor 'loss'."
            )
        value = record[self.monitor]
        better = self.best is None or (
            value > self.best + min_delta if self.mode == "max" else value < self.best - min_delta
        )
        if better:
            self.best = value
        return better


class BestModelCheckpoint(_Monitor):
    """Saves the whole model to ``folder`` whenever ``monitor`` improves (rank 0 only)."""

    needs = ("save_model",)

    def __init__(self, folder: str | Path, monitor: str = "eval/map@r", mode: str = "max"):
        super().__init__(monitor, mode)
        self.folder = Path(folder)

    def on_epoch_end(self, trainer: Trainer) -> None:
        if distributed.is_main_process() and self.improved(trainer):
            trainer.save_model(self.folder)
            logger.info("best %s=%.4f: saved the model to %s", self.monitor, self.best, self.folder)


class EarlyStopping(_Monitor):
    """Stops training when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs."""

    def __init__(self, monitor: str = "eval/map@r", mode: str = "max", patience: int = 2, min_delta: float = 0.0):
        super().__init__(monitor, mode)
        self.patience, self.min_delta, self.bad_epochs = patience, min_delta, 0

    def on_epoch_end(self, trainer: Trainer) -> None:
        self.bad_epochs = 0 if self.improved(trainer, self.min_delta) else self.bad_epochs + 1
        if self.bad_epochs >= self.patience:
            logger.info("early stop: %s did not improve for %d epochs", self.monitor, self.patience)
            trainer.should_stop = True


class TrainingCheckpoint(Callback):
    """Writes a resumable checkpoint every ``every`` epochs to ``folder`` (atomic; keeps the last ``keep``).

    Resume with ``finetuner.fit(..., resume_from=folder)``.
    """

    def __init__(self, folder: str | Path, every: int = 1, keep: int = 2):
        if isinstance(keep, bool) or keep < 1:
            raise ValueError(f"keep must be at least 1 checkpoint (save_total_limit), got {keep!r}.")
        self.folder, self.every, self.keep = Path(folder), every, keep

    def on_epoch_end(self, trainer: Trainer) -> None:
        if distributed.is_main_process() and (trainer.epoch + 1) % self.every == 0:
            from finetuner.training.checkpoint import save_checkpoint

            state = trainer.state_dict()
            state["epoch"] = trainer.epoch + 1  # the epoch to start from when resuming
            save_checkpoint(self.folder, state, keep=self.keep)

    def checkpoint_folders(self) -> list[Path]:
        return [self.folder] if self.folder.exists() else []


class WiSEFTCallback(Callback):
    """WiSE-FT (Wortsman et al., 2022): at the end, weights = (1 - alpha) * start + alpha * tuned.

    Only floating-point tensors that training changed are interpolated (frozen ones stay bit-identical).

    Example:
        >>> finetuner.fit(..., callbacks=[WiSEFTCallback(alpha=0.5)])  # doctest: +SKIP
    """

    def __init__(self, alpha: float = 0.5):
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}.")
        self.alpha = alpha
        self.start: dict[str, torch.Tensor] = {}

    def on_fit_start(self, trainer: Trainer) -> None:
        self.start = copy.deepcopy(trained_state(trainer.model))

    def on_fit_end(self, trainer: Trainer) -> None:
        interpolate_into(trainer.model, self.start, trained_state(trainer.model), self.alpha)
