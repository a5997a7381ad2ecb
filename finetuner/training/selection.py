"""`ModelSelection`: return the best validated candidate, never one that silently loses on new classes."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import torch

from finetuner.training import distributed
from finetuner.training.callbacks import Callback
from finetuner.training.state import interpolate_into, trained_state

if TYPE_CHECKING:  # pragma: no cover
    from finetuner.training.trainer import Trainer

logger = logging.getLogger("finetuner")

DEFAULT_ALPHAS = (0.75, 0.5, 0.25, 0.0)


class ModelSelection(Callback):
    """Keeps the best candidate by ``selection_key`` (the untrained start, "epoch 0", is a candidate too) among
    those that pass the guard: ``guard_key`` may not fall more than ``tolerance`` below its value in
    ``reference`` (the untuned model's metrics). When no epoch passes, the weights are interpolated between the
    start and the best epoch (WiSE-FT), with the mixing factor chosen on validation from ``alphas``.

    The outcome is in ``summary``: the chosen ``epoch`` and ``alpha``, the ``reason``, and every ``candidate``.

    Example:
        >>> selection = ModelSelection("seen/map@r", "new/map@r", reference=before, tolerance=0.01)  # doctest: +SKIP
        >>> Trainer(..., evaluate=evaluate, callbacks=[EvaluationCallback(), selection]).fit()  # doctest: +SKIP
    """

    needs = ("evaluate",)

    def __init__(
        self,
        selection_key: str,
        guard_key: str | None = None,
        *,
        reference: dict[str, float] | None = None,
        tolerance: float | None = 0.01,
        alphas: tuple[float, ...] = DEFAULT_ALPHAS,
        prefix: str = "eval",
    ):
        self.selection_key, self.guard_key, self.prefix = selection_key, guard_key, prefix
        self.floor = None
        if guard_key is not None and tolerance is not None and reference and guard_key in reference:
            self.floor = reference[guard_key] - tolerance
        self.alphas = alphas
        self.candidates: list[dict[str, Any]] = []
        self.summary: dict[str, Any] = {}
        self._start: dict[str, torch.Tensor] = {}
        self._best: tuple[float, dict[str, torch.Tensor]] | None = None  # best passing candidate
        self._best_any: tuple[float, dict[str, torch.Tensor]] | None = None  # best candidate, guard or not

    def passes(self, metrics: dict[str, float]) -> bool:
        return self.floor is None or metrics.get(self.guard_key, float("inf")) >= self.floor

    def on_fit_start(self, trainer: Trainer) -> None:
        if self._start:  # resumed: the start and the candidates so far come from the checkpoint
            return
        self._start = _cpu_state(trainer.model)
        self._consider(trainer.epoch, _evaluate(trainer), trainer)

    def state_dict(self) -> dict[str, Any]:
        return {
            "start": self._start,
            "best": self._best,
            "best_any": self._best_any,
            "candidates": self.candidates,
            "summary": self.summary,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._start, self._best, self._best_any = state["start"], state["best"], state["best_any"]
        self.candidates, self.summary = list(state["candidates"]), dict(state["summary"])

    def on_epoch_end(self, trainer: Trainer) -> None:
        start = f"{self.prefix}/"
        metrics = {k[len(start) :]: v for k, v in trainer.history[-1].items() if k.startswith(start)}
        if self.selection_key in metrics:
            self._consider(trainer.epoch + 1, metrics, trainer)

    def _consider(self, epoch: int, metrics: dict[str, float], trainer: Trainer) -> None:
        candidate = self._record(epoch, 1.0, metrics)
        state = None
        if self._best_any is None or candidate["score"] > self._best_any[0]:
            state = _cpu_state(trainer.model)
            self._best_any = (candidate["score"], state)
        if candidate["passed"] and (self._best is None or candidate["score"] > self._best[0]):
            self._best = (candidate["score"], state if state is not None else _cpu_state(trainer.model))
            self.summary = {"epoch": epoch, "alpha": 1.0}

    def _record(self, epoch: int | None, alpha: float, metrics: dict[str, float]) -> dict[str, Any]:
        guard = metrics.get(self.guard_key) if self.guard_key else None
        candidate = {
            "epoch": epoch,
            "alpha": alpha,
            "score": metrics[self.selection_key],
            "guard": guard,
            "passed": self.passes(metrics),
        }
        self.candidates.append(candidate)
        return candidate

    def on_fit_end(self, trainer: Trainer) -> None:
        if self._best is not None:
            trainer.model.load_state_dict(self._best[1], strict=False)  # a trained_state: frozen weights left out
            self.summary["reason"] = self._reason("best validated candidate")
            return
        end = self._best_any[1]
        chosen: tuple[float, float] | None = None  # (score, alpha)
        for alpha in self.alphas:
            interpolate_into(trainer.model, self._start, end, alpha)
            candidate = self._record(None, alpha, _evaluate(trainer))
            if candidate["passed"] and (chosen is None or candidate["score"] > chosen[0]):
                chosen = (candidate["score"], alpha)
        if chosen is None:  # not even the start passes: keep what loses least on the guarded classes
            chosen = (0.0, max(self.candidates[-len(self.alphas) :], key=lambda c: c["guard"])["alpha"])
            reason = "no candidate kept the new-class metric within the tolerance; kept the mix that loses least"
            logger.warning("model selection: %s (alpha=%.2f)", reason, chosen[1])
        else:
            reason = "every epoch lost on new classes: WiSE-FT mix of the start and the best epoch"
        interpolate_into(trainer.model, self._start, end, chosen[1])
        self.summary = {"epoch": None, "alpha": chosen[1], "reason": self._reason(reason)}

    def _reason(self, text: str) -> str:
        guard = f", guard {self.guard_key} >= {self.floor:.4f}" if self.floor is not None else ""
        return f"{text} by {self.selection_key}{guard}"

    def result(self) -> dict[str, Any]:
        """``summary`` plus the candidates, JSON-ready."""
        return {
            **self.summary,
            "selection_key": self.selection_key,
            "guard_key": self.guard_key,
            "guard_floor": self.floor,
            "candidates": self.candidates,
        }


def _evaluate(trainer: Trainer) -> dict[str, float]:
    """The trainer's evaluation on rank 0, given to every rank so all make the same choice."""
    return distributed.broadcast_object(trainer.evaluate() if distributed.is_main_process() else None)


def _cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().to("cpu", copy=True) for name, tensor in trained_state(model).items()}
