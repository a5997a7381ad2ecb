"""Fit's training plan: the evaluators of the scored sets, the `FeatureSource` that serves the run, the head's
data-dependent start and the selection callback."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from finetuner._fit.data import FitData
from finetuner._fit.sources import CachedFeatures, FeatureSource, choose_source, make_batch_sampler, tensor_batches
from finetuner.config import EvalConfig, FitConfig
from finetuner.evaluation import ValidationEvaluator, class_change_summary, describe_class_changes
from finetuner.model import EmbeddingModel
from finetuner.tailor import Head, LinearHead
from finetuner.training import Callback, EvaluationCallback, TrainingCheckpoint, distributed
from finetuner.training.batches import BatchSource
from finetuner.training.selection import ModelSelection, UntunedCandidate

logger = logging.getLogger("finetuner")


@dataclass
class TrainingPlan:
    """What trains on which batches (the `FeatureSource` says), and how the current and the untuned model are
    scored on each scored set (``validation``, ``test``)."""

    model: EmbeddingModel
    source: FeatureSource
    evaluators: dict[str, ValidationEvaluator]
    source_seconds: float = 0.0  # what building the source took (the backbone's pass, for cached features)
    _sample: torch.Tensor | None = None

    @property
    def trained(self) -> nn.Module:
        return self.source.trained

    @property
    def batches(self) -> BatchSource:
        return self.source.batches

    @property
    def evaluator(self) -> ValidationEvaluator | None:
        """The validation set's evaluator: what selection and the per-epoch evaluation use."""
        return self.evaluators.get("validation")

    def metrics(self, which: str = "validation") -> dict[str, float]:
        """Metrics of the model as it is now."""
        return self.source.score(which, tuned=True)

    def scores(self, *, tuned: bool, sets: Sequence[str] | None = None) -> dict[str, dict[str, float]]:
        """``{scored set: metrics}`` of the model as it is now (``tuned``) or untuned, on every scored set or on
        ``sets``, computed on rank 0 and given to every rank (so code after `fit` behaves the same on each), and
        logged."""
        found = {}
        for which in self.evaluators if sets is None else [s for s in sets if s in self.evaluators]:
            compute = self.metrics if tuned else self.untuned_metrics
            metrics = distributed.broadcast_object(compute(which) if distributed.is_main_process() else None)
            logger.info("%s, %s: %s", which, "tuned" if tuned else "untuned", summary(metrics))
            found[which] = metrics
        return found

    def training_sample(self, size: int = 4096) -> torch.Tensor:
        """The backbone's features (float32) of a seeded sample of training items, computed once."""
        if self._sample is None:
            self._sample = self.source.training_sample(size).float()
        return self._sample

    def untuned_metrics(self, which: str = "validation") -> dict[str, float]:
        """Metrics before training. Embeddings: the backbone's own features at the chosen layer (what the
        pretrained model gives without tuning). Classifiers: the freshly initialised head (about chance)."""
        return self.source.score(which, tuned=self.model.task == "classification")


def plan_training(model: EmbeddingModel, data: FitData, loss: nn.Module, config: FitConfig) -> TrainingPlan:
    """The evaluators, the source of this run (`choose_source`: cached features for a frozen backbone with a head,
    else raw items; both follow one seeded batch sampler, so they see identical batches) and the head's start."""
    evaluators = {
        name: ValidationEvaluator(
            scored,
            data.trained_classes,
            task=model.task,
            classes=model.classes,
            k=config.evaluation.k,
            max_queries=config.evaluation.max_queries,
        )
        for name, scored in data.scored_sets().items()
    }
    began = time.perf_counter()
    source = choose_source(model, data, loss, config, evaluators)
    plan = TrainingPlan(model, source, evaluators, source_seconds=time.perf_counter() - began)
    initialize_head(plan)
    return plan


def initialize_head(plan: TrainingPlan) -> None:
    """Give the head a data-dependent start (`Head.initialize`) from the backbone's features of a seeded sample of
    training items."""
    head = plan.model.head
    if head is None or type(head).initialize is Head.initialize:  # nothing to do: spare the forward pass
        return
    head.initialize(plan.training_sample().to(next(head.parameters()).device))


def model_selection(
    plan: TrainingPlan, untuned: dict[str, float] | None, evaluation: EvalConfig, *, with_untuned: bool = True
) -> ModelSelection | None:
    """The callback that returns the best validated candidate (None without validation data or when turned off);
    with an embedding head, the untuned backbone (`untuned_candidate`) is one of them unless ``with_untuned`` is
    False (the recipe search's trials compare trained candidates only)."""
    if plan.evaluator is None or not evaluation.select_best:
        return None
    return ModelSelection(
        plan.evaluator.selection_key,
        plan.evaluator.guard_key,
        reference=untuned,
        tolerance=evaluation.guard_tolerance,
        untuned=untuned_candidate(plan) if with_untuned else None,
        also_guard=tuple(f"new/{name}" for name in evaluation.also_guard),
    )


def untuned_candidate(plan: TrainingPlan) -> UntunedCandidate | None:
    """The untuned backbone at the head's width (`LinearHead.untuned`: its features, PCA-reduced when the head is
    narrower), scored on validation as such; None without an embedding head (the start is the backbone then)."""
    model = plan.model
    if model.head is None or model.task != "embedding":
        return None
    sample = plan.training_sample()
    features, width = sample.shape[1], _output_width(model.head, sample)
    head = LinearHead.untuned(sample, width)
    label = "its own features" if width >= features else f"its {features}-d features reduced by PCA to {width}"
    metrics = distributed.broadcast_object(
        plan.source.score_untuned("validation", head) if distributed.is_main_process() else None
    )
    logger.info("validation, untuned backbone at the head's width (%s): %s", label, summary(metrics))

    def install() -> None:
        model.head = head.to(next(model.parameters()).device)

    return UntunedCandidate(label, metrics, install)


def refit(
    plan: TrainingPlan, data: FitData, loss: nn.Module, miner: Any, config: FitConfig, selection: ModelSelection | None
) -> dict[str, Any] | None:
    """Train the head again from its start on the training and validation items together, for the epochs (and
    with the WiSE-FT factor) validation chose; what was done goes to ``run.metrics["selection"]["refit"]``.

    Only where that is the same run with more data: a frozen backbone's cached features, labelled validation held
    out of the training data (same classes), a trained epoch or mix kept. Returns None (and says why) otherwise.
    """
    from finetuner.data import LabeledData
    from finetuner.training import Trainer
    from finetuner.training.state import interpolate_into, trained_state

    if selection is None or not config.evaluation.refit:
        return None
    chosen = selection.trained_epochs()
    if chosen is None:
        return None
    source = plan.source
    if not isinstance(source, CachedFeatures) or data.source is None or not isinstance(data.train, LabeledData):
        logger.info("refit: not done (it needs a frozen backbone and validation held out of labelled training data)")
        return None
    epochs, alpha = chosen
    together = LabeledData(
        list(data.train.items) + list(data.eval.items), data.train.labels + data.eval.labels, data.train.classes
    )
    features = torch.cat([source.train_features["items"][0], source.set_features["validation"]["items"]])
    sampler = make_batch_sampler(together, loss, config.training, sharded=False)
    head = plan.trained
    head.load_state_dict(selection.start, strict=False)
    training = dataclasses.replace(config.training, epochs=epochs)
    Trainer(head, loss, tensor_batches({"items": [features]}, together, sampler), training, miner=miner).fit()
    if alpha < 1.0:
        end = {k: v.detach().to("cpu", copy=True) for k, v in trained_state(head).items()}
        interpolate_into(head, selection.start, end, alpha)
    head.eval()
    done = {"epochs": epochs, "alpha": alpha, "items": len(together)}
    logger.info(
        "refit: trained the head again from its start for %d epoch(s)%s on the %d training and validation items "
        "together; the validation figures above are the validated model's",
        epochs, f" (WiSE-FT alpha={alpha})" if alpha < 1.0 else "", len(together),
    )
    return done


def _output_width(head: nn.Module, sample: torch.Tensor) -> int:
    training = head.training
    head.eval()
    with torch.no_grad():
        width = head(sample[:2].to(next(head.parameters()).device)).shape[-1]
    head.train(training)
    return width


def fit_callbacks(
    user: Sequence[Callback], plan: TrainingPlan, config: FitConfig, selection: Callback | None
) -> list[Callback]:
    """The user's callbacks with what fit adds: per-epoch evaluation, selection right after it, checkpoints under
    ``output_dir``, the trackers of ``report_to``."""
    from finetuner.training.trackers import build_trackers

    callbacks = list(user)
    output_dir = config.output.output_dir
    if plan.evaluator is not None and not any(isinstance(c, EvaluationCallback) for c in callbacks):
        callbacks.insert(0, EvaluationCallback(every_steps=config.evaluation.eval_steps))
    if selection is not None:
        callbacks.insert(1, selection)  # right after the evaluation it reads, before checkpoints
    if output_dir is not None and not any(isinstance(c, TrainingCheckpoint) for c in callbacks):
        callbacks.append(TrainingCheckpoint(Path(output_dir) / "checkpoints", keep=config.output.save_total_limit))
    logs = Path(output_dir) / "logs" if output_dir is not None else Path("logs")
    return callbacks + build_trackers(config.output.report_to, logs, config.to_dict())


def run_metrics(
    before: dict[str, dict[str, float]],
    after: dict[str, dict[str, float]],
    selection: ModelSelection | None,
    probed: dict[str, Any] | None,
    data: FitData,
) -> dict[str, Any]:
    """`Run.metrics`: ``before`` / ``after`` on validation, ``test`` (before / after), ``selection``, ``probe``."""
    metrics: dict[str, Any] = {}
    if "validation" in after:
        metrics["before"], metrics["after"] = before["validation"], after["validation"]
    if "test" in after:
        metrics["test"] = {"before": before["test"], "after": after["test"]}
    where, scored = ("test data", metrics["test"]) if "test" in metrics else ("validation data", metrics)
    changes = class_change_summary(scored["before"], scored["after"], data=where) if "after" in scored else None
    if changes is not None:  # what got better and what got worse, per class
        metrics["class_changes"] = changes
        logger.info("%s", describe_class_changes(changes))
    if selection is not None:
        metrics["selection"] = selection.result()
        logger.info("%s", selection_summary(metrics, data))
    if probed is not None:
        metrics["probe"] = probed
    return metrics


def selection_summary(metrics: dict[str, Any], data: FitData) -> str:
    """One log paragraph: before -> after on the whole validation set, on held-out items of the training classes
    and on held-out classes, and which candidate was kept and why."""
    before, after, selection = metrics["before"], metrics["after"], metrics["selection"]
    lines = []
    for prefix, name in (("", "validation"), ("seen/", "items of training classes"), ("new/", "held-out classes")):
        keys = [k for k in ("recall@1", "map@r", "accuracy", "mrr") if prefix + k in after]
        if keys:
            shown = ", ".join(f"{k} {before[prefix + k]:.4f} -> {after[prefix + k]:.4f}" for k in keys)
            lines.append(f"  {name}: {shown}")
    if data.held_out_classes:
        lines.append(f"  held-out classes: {', '.join(data.held_out_classes)}")
    if any(key.startswith("new/") for key in after):
        lines.append(
            "  (each part's queries are scored on their own, held-out classes also against the training items when "
            "features are cached, so the whole-set figure need not lie between the parts)"
        )
    epoch, alpha = selection.get("epoch"), selection.get("alpha")
    kept = f"epoch {epoch}" if epoch is not None else f"a mix of the start and the best epoch (alpha={alpha})"
    kept = "the untuned backbone" if selection.get("untuned") else kept
    lines.append(f"  kept {kept}: {selection.get('reason', '')}")
    return "model selection\n" + "\n".join(lines)


def summary(metrics: dict[str, float]) -> str:
    """The headline metrics in one log line."""
    keys = [k for k in ("recall@1", "map@r", "accuracy", "mrr") if k in metrics]
    return " ".join(f"{k}={metrics[k]:.4f}" for k in keys)
