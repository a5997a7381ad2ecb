"""What fit leaves behind: the selection log paragraph, report examples, the model card's data, the files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from finetuner._fit.data import FitData
from finetuner._fit.plan import TrainingPlan
from finetuner.card import example_items
from finetuner.config import FitConfig, OutputConfig
from finetuner.core.files import atomic_file
from finetuner.data import LabeledData, PairData, VectorRows
from finetuner.export import ModelCardData
from finetuner.models import get_entry
from finetuner.run import Run
from finetuner.training import distributed


def retrieval_examples(plan: TrainingPlan, data: FitData, *, queries: int = 4, k: int = 5) -> list[dict[str, Any]]:
    """A few validation queries with their top-k neighbours (leave-one-out) after training and, where the untuned
    vectors are at hand (cached features), before it, for the HTML report."""
    eval_data, model = data.eval, plan.model
    if eval_data is None or data.pairs or model.task != "embedding":
        return []
    rng = np.random.default_rng(0)
    picks = rng.choice(len(eval_data), size=min(queries, len(eval_data)), replace=False)
    # given vectors are shown by their row in the user's array (a vector is no picture)
    shown = eval_data.items.row_name if isinstance(eval_data.items, VectorRows) else eval_data.items.__getitem__
    examples = [
        {"query": shown(query), "query_label": eval_data.classes[eval_data.labels[query]]} for query in picks
    ]
    for suffix, tuned in (("", True), ("_before", False)):
        vectors = plan.source.validation_vectors(tuned=tuned)
        if vectors is None:
            continue
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        for example, query in zip(examples, picks):
            scores = vectors @ vectors[query]
            scores[query] = -np.inf
            top = np.argsort(-scores, kind="stable")[:k]
            example["results" + suffix] = [shown(i) for i in top]
            example["result_labels" + suffix] = [eval_data.classes[eval_data.labels[i]] for i in top]
            example["relevant" + suffix] = [eval_data.labels[i] == eval_data.labels[query] for i in top]
    return examples


def card_data(
    model: Any, loss: nn.Module, miner: Any, config: FitConfig, data: FitData, metrics: dict[str, Any]
) -> ModelCardData:
    """What the saved model's card says about this run: the base model, freezing, loss, settings, data and the
    metrics (on test data when given, else on validation data)."""

    def summary(part: LabeledData | PairData | None, name: str | None) -> dict[str, Any]:
        if part is None:
            return {}
        named = {"source": name} if name else {}
        if isinstance(part, PairData):
            return {**named, "items": len(part), "kind": "pairs"}
        classes = len({part.classes[label] for label in part.labels})
        return {**named, "items": len(part), "classes": classes, "kind": "labeled"}

    training = config.training
    scored = metrics.get("test") or {k: metrics[k] for k in ("before", "after") if k in metrics}
    scored_part = "test" if "test" in metrics else "eval"
    evaluation = summary(data.test if "test" in metrics else data.eval, data.names.get(scored_part))
    if evaluation:
        evaluation["scored_as"] = "test data" if "test" in metrics else "validation data"
    if data.held_out_classes and "test" not in metrics:
        evaluation["held_out_classes"] = list(data.held_out_classes)
    return ModelCardData(
        base_model=str(model) if isinstance(model, (str, Path)) else type(model).__name__,
        weights=_weights_source(model, config),
        frozen=config.model.freeze if config.model.freeze else None,
        lora=config.model.lora if isinstance(config.model.lora, dict) else None,
        loss=type(loss).__name__,
        loss_options=dict(training.loss_options),
        miner=type(miner).__name__ if miner is not None else None,
        training=training_summary(training, metrics),
        train_data=summary(data.train, data.names.get("train")),
        eval_data=evaluation,
        metrics=scored,
        example_items=example_items(data.train.queries if isinstance(data.train, PairData) else data.train.items),
    )


def training_summary(training: Any, metrics: dict[str, Any]) -> dict[str, Any]:
    """The card's training settings; with a recipe search, how the recipe was chosen."""
    names = ("epochs", "batch_size", "learning_rate", "optimizer", "scheduler", "keep_neighbourhood")
    found = {k: getattr(training, k) for k in names}
    searched = metrics.get("selection", {}).get("search")
    if searched is not None:
        found["recipe"] = f"chosen on validation among {len(searched['trials'])} searched trials"
    return found


def _weights_source(model: Any, config: FitConfig) -> str | None:
    """Where the pretrained weights came from, in words: a file given as ``weights``, a registered entry's source."""
    if not config.model.pretrained:
        return "none (random initialisation)"
    if "weights" in config.model.model_options:
        return str(config.model.model_options["weights"])
    entry = get_entry(model) if isinstance(model, str) else None
    return entry.weights if entry is not None else None


def write_outputs(run: Run, output: OutputConfig) -> None:
    """``output_dir/model``, ``output_dir/report``, ``metrics.json`` (`Run.metrics`) and ``fit_config.json`` (the
    settings: ``finetuner fit ... --config output_dir/fit_config.json`` runs them again), on rank 0 only."""
    if output.output_dir is None or not distributed.is_main_process():
        return
    folder = Path(output.output_dir)
    run.save(folder / "model")
    run.report(folder / "report")
    for name, content in (("metrics.json", run.metrics), ("fit_config.json", run.config)):
        with atomic_file(folder / name) as path:
            path.write_text(json.dumps(content, indent=2, default=str))
