"""Fit's training plan: the evaluators of the scored sets, the `FeatureSource` that serves the run, the head's
data-dependent start and the selection callback."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from finetuner._fit.data import FitData
from finetuner._fit.sources import FeatureSource, choose_source
from finetuner.config import EvalConfig, FitConfig
from finetuner.evaluation import ValidationEvaluator
from finetuner.model import EmbeddingModel
from finetuner.tailor import Head
from finetuner.training.batches import BatchSource
from finetuner.training.selection import ModelSelection


@dataclass
class TrainingPlan:
    """What trains on which batches (the `FeatureSource` says), and how the current and the untuned model are
    scored on each scored set (``validation``, ``test``)."""

    model: EmbeddingModel
    source: FeatureSource
    evaluators: dict[str, ValidationEvaluator]

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
    plan = TrainingPlan(model, choose_source(model, data, loss, config, evaluators), evaluators)
    initialize_head(plan)
    return plan


def initialize_head(plan: TrainingPlan, sample_size: int = 4096) -> None:
    """Give the head a data-dependent start (`Head.initialize`) from the backbone's features of a seeded sample of
    training items."""
    head = plan.model.head
    if head is None or type(head).initialize is Head.initialize:  # nothing to do: spare the forward pass
        return
    sample = plan.source.training_sample(sample_size)
    head.initialize(sample.float().to(next(head.parameters()).device))


def model_selection(
    plan: TrainingPlan, untuned: dict[str, float] | None, evaluation: EvalConfig
) -> ModelSelection | None:
    """The callback that returns the best validated candidate (None without validation data or when turned off)."""
    if plan.evaluator is None or not evaluation.select_best:
        return None
    return ModelSelection(
        plan.evaluator.selection_key,
        plan.evaluator.guard_key,
        reference=untuned,
        tolerance=evaluation.guard_tolerance,
    )
