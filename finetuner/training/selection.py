"""`ModelSelection`: return the best validated candidate, never one that silently loses on new classes."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from finetuner.training import distributed
from finetuner.training.callbacks import Callback
from finetuner.training.state import interpolate_into, trained_state

if TYPE_CHECKING:  # pragma: no cover
    from finetuner.training.trainer import Trainer

logger = logging.getLogger("finetuner")

DEFAULT_ALPHAS = (0.75, 0.5, 0.25, 0.0)


@dataclass
class UntunedCandidate:
    """The untuned backbone as a candidate when the model's start is not it (a head of random weights, or of
    another width than the features): its validation ``metrics`` scored as such, a ``label`` for the log, and
    ``install``, which makes the model that (after the start's weights are restored).

    Example:
        >>> UntunedCandidate("the backbone's features", {"seen/map@r": 0.5}, install=lambda: None)  # doctest: +SKIP
    """

    label: str
    metrics: dict[str, float]
    install: Callable[[], None]


class ModelSelection(Callback):
    """Keeps the best candidate by ``selection_key`` (the untrained start, "epoch 0", is a candidate too) among
    those that pass the guard: ``guard_key`` may not fall more than ``tolerance`` below its value in
    ``reference`` (the untuned model's metrics). When no epoch passes, the weights are interpolated between the
    start and the best epoch (WiSE-FT), with the mixing factor chosen on validation from ``alphas``.

    ``also_guard``: more metrics (of the held-out classes) that may not fall more than ``tolerance`` below their
    ``reference`` either; a candidate passes when every guarded metric does.

    With ``untuned`` (an `UntunedCandidate`: the backbone's own features, PCA-reduced to the head's width), no
    trained candidate is returned unless it passes the guard and scores above the untuned backbone; otherwise
    the untuned backbone is, and the reason says so (never silently worse).

    The outcome is in ``summary``: the chosen ``epoch`` and ``alpha`` (both None for the untuned backbone, with
    ``untuned`` True), the ``reason``, and every ``candidate``.

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
        untuned: UntunedCandidate | None = None,
        also_guard: tuple[str, ...] = (),
    ):
        self.selection_key, self.guard_key, self.prefix = selection_key, guard_key, prefix
        self.floor = None
        if guard_key is not None and tolerance is not None and reference and guard_key in reference:
            self.floor = reference[guard_key] - tolerance
        # more metrics of the held-out classes held to the same tolerance (e.g. new/recall@1 beside new/map@r)
        self.floors = {}
        if self.floor is not None:
            self.floors = {key: reference[key] - tolerance for key in also_guard if key in reference}
        self.alphas, self.untuned = alphas, untuned
        self.candidates: list[dict[str, Any]] = []
        self.summary: dict[str, Any] = {}
        self._start: dict[str, torch.Tensor] = {}
        self._best: tuple[float, dict[str, torch.Tensor]] | None = None  # best passing candidate
        self._best_any: tuple[float, dict[str, torch.Tensor]] | None = None  # best candidate, guard or not

    def passes(self, metrics: dict[str, float]) -> bool:
        if self.floor is None:
            return True
        floors = {self.guard_key: self.floor, **self.floors}
        return all(metrics.get(key, float("inf")) >= floor for key, floor in floors.items())

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
        if self.selection_key not in metrics:  # another evaluation wrote the prefix (a user's EvaluationCallback
            metrics = _evaluate(trainer)  # on data of their own): every epoch is still judged on validation
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

    def _record(self, epoch: int | None, alpha: float | None, metrics: dict[str, float]) -> dict[str, Any]:
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
        else:
            self._mix(trainer)
        if self.untuned is not None:
            self._record(None, None, self.untuned.metrics)["untuned"] = True
        if self.untuned is not None and self._keep_untuned():
            trainer.model.load_state_dict(self._start, strict=False)  # an unfrozen backbone back to its weights
            self.untuned.install()
            self.summary = {"epoch": None, "alpha": None, "untuned": True, "reason": self._untuned_reason()}
            logger.warning("model selection: %s", self.summary["reason"])

    def _mix(self, trainer: Trainer) -> None:
        """No epoch passed the guard: WiSE-FT mixes of the start and the best epoch, scored on validation."""
        end = self._best_any[1]
        chosen: tuple[float, float] | None = None  # (score, alpha)
        for alpha in self.alphas:
            interpolate_into(trainer.model, self._start, end, alpha)
            candidate = self._record(None, alpha, _evaluate(trainer))
            if candidate["passed"] and (chosen is None or candidate["score"] > chosen[0]):
                chosen = (candidate["score"], alpha)
        if chosen is None:  # not even the start passes: keep what loses least on the guarded classes
            least = max(self.candidates[-len(self.alphas) :], key=lambda c: c["guard"])
            chosen = (least["score"], least["alpha"])
            reason = "no candidate kept the new-class metric within the tolerance; kept the mix that loses least"
            if self.untuned is None:
                logger.warning("model selection: %s (alpha=%.2f)", reason, chosen[1])
        else:
            reason = "every epoch lost on new classes: WiSE-FT mix of the start and the best epoch"
        interpolate_into(trainer.model, self._start, end, chosen[1])
        self.summary = {"epoch": None, "alpha": chosen[1], "reason": self._reason(reason)}

    def _keep_untuned(self) -> bool:
        """The untuned backbone beats what training chose: that failed the guard, or scores no higher."""
        chosen = (self.summary["epoch"], self.summary["alpha"])
        kept = [c for c in self.candidates if (c["epoch"], c["alpha"]) == chosen][-1]
        untuned = next(c for c in self.candidates if c.get("untuned"))
        return not kept["passed"] or untuned["score"] > kept["score"]

    def _untuned_reason(self) -> str:
        trained = [c for c in self.candidates if not c.get("untuned")]
        passing = [c for c in trained if c["passed"]]
        untuned = next(c for c in self.candidates if c.get("untuned"))
        if passing:
            best = max(passing, key=lambda c: c["score"])
            why = (
                f"no trained candidate beat the untuned backbone ({self.untuned.label}): best "
                f"{self.selection_key} {best['score']:.4f} vs {untuned['score']:.4f}"
            )
        else:
            why = f"every trained candidate lost on new classes; returned the untuned backbone ({self.untuned.label})"
        return self._reason(why)

    @property
    def start(self) -> dict[str, torch.Tensor]:
        """The trained weights as they were before the first step (CPU copies): what a refit starts from."""
        return self._start

    def trained_epochs(self) -> tuple[int, float] | None:
        """``(epochs, alpha)`` of the kept trained candidate (a mix: the best epoch's, with its factor); None when
        the untrained start or the untuned backbone was kept."""
        if self.summary.get("untuned") or self.summary.get("epoch") == 0:
            return None
        if self.summary.get("epoch") is not None:
            return self.summary["epoch"], 1.0
        best = max((c for c in self.candidates if c["epoch"] is not None), key=lambda c: c["score"])
        return (best["epoch"], self.summary["alpha"]) if best["epoch"] and self.summary["alpha"] else None

    def _reason(self, text: str) -> str:
        guard = f", guard {self.guard_key} >= {self.floor:.4f}" if self.floor is not None else ""
        guard += "".join(f", {key} >= {floor:.4f}" for key, floor in self.floors.items())
        return f"{text} by {self.selection_key}{guard}"

    def result(self) -> dict[str, Any]:
        """``summary`` plus the candidates, JSON-ready."""
        return {
            **self.summary,
            "selection_key": self.selection_key,
            "guard_key": self.guard_key,
            "guard_floor": self.floor,
            "guard_floors": dict(self.floors),
            "candidates": self.candidates,
        }


def _evaluate(trainer: Trainer) -> dict[str, float]:
    """The trainer's evaluation on rank 0, given to every rank so all make the same choice."""
    return distributed.broadcast_object(trainer.evaluate() if distributed.is_main_process() else None)


def _cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().to("cpu", copy=True) for name, tensor in trained_state(model).items()}
