"""The steps of `finetuner.fit`: prepare data, choose the training path (cached features or raw items), evaluate,
write outputs. `api.fit` calls them in order."""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from finetuner.config import EvalConfig, FitConfig, OutputConfig
from finetuner.core.device import autocast_dtype, resolve_device
from finetuner.core.files import atomic_file
from finetuner.data import DataError, DataKind, LabeledData, PairData, hold_out, hold_out_indices, load_data
from finetuner.evaluation import ValidationEvaluator
from finetuner.export import ModelCardData
from finetuner.model import EmbeddingModel
from finetuner.models import get_entry
from finetuner.run import Run
from finetuner.tailor import Head
from finetuner.training import build_loss, build_miner, distributed
from finetuner.training.batches import LoaderBatches, PairTensorBatches, ShuffledBatchSampler, TensorBatches
from finetuner.training.cache import FeatureCache, fingerprint_features
from finetuner.training.config import TrainConfig
from finetuner.training.losses import compose_loss, needs_two_classes
from finetuner.training.pair_losses import PairLoss, find_pair_loss
from finetuner.training.selection import ModelSelection

logger = logging.getLogger("finetuner")


@dataclass
class FitData:
    """Training data and the evaluation data that scores it (None: no evaluation), with the classes held out of
    training when the evaluation data was taken from the training data."""

    train: LabeledData | PairData
    eval: LabeledData | PairData | None
    held_out_classes: list[str] = dataclasses.field(default_factory=list)
    test: LabeledData | PairData | None = None
    source: LabeledData | None = None  # the loaded training data when train and eval were taken from it ...
    rows: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # ... at these rows ("train", "eval")

    def scored_sets(self) -> dict[str, LabeledData | PairData]:
        """The sets scored before and after training: ``validation`` (selection) and ``test`` (never a choice)."""
        return {name: data for name, data in (("validation", self.eval), ("test", self.test)) if data is not None}

    @property
    def pairs(self) -> bool:
        return isinstance(self.train, PairData)

    @property
    def classes(self) -> list[str] | None:
        return None if self.pairs else list(self.train.classes)

    @property
    def trained_classes(self) -> list[str] | None:
        """The classes training items have (held-out classes keep their name in ``classes`` but have no item)."""
        return None if self.pairs else sorted({self.train.classes[label] for label in self.train.labels})


def prepare_data(train_data: Any, eval_data: Any, test_data: Any, config: FitConfig) -> FitData:
    """Load the training, evaluation and test data (the kind the loss needs); without ``eval_data``, hold out
    validation data from the training data: items of the training classes and, for embeddings, whole classes."""
    kind = data_kind(config)
    columns = config.data.columns
    train = load_data(train_data, kind=kind, columns=columns)
    if config.model.task == "classification" and isinstance(train, PairData):
        raise ValueError("task='classification' needs labelled data (item, label), not (query, document) pairs.")
    eval_kind = DataKind.PAIRS if kind.is_pairs else kind  # evaluation ranks documents: no scores needed
    test = load_data(test_data, kind=eval_kind, columns=columns) if test_data is not None else None
    if eval_data is not None:
        return FitData(train, load_data(eval_data, kind=eval_kind, columns=columns), test=test)
    classes = config.data.val_class_split if config.model.task == "embedding" else 0.0
    try:
        if isinstance(train, PairData):
            split = hold_out(train, config.data.val_split, classes, seed=config.training.seed)
            return FitData(split.train, split.validation, test=test)
        seed = config.training.seed
        rows, held_items, held_classes = hold_out_indices(train, config.data.val_split, classes, seed=seed)
    except DataError as error:
        logger.warning("no validation data: %s", error)
        return FitData(train, None, test=test)
    validation = np.sort(np.concatenate([held_items, held_classes]))
    if not len(validation):
        logger.warning("no validation data (val_split=0, val_class_split=0): the last epoch is returned unchecked")
        return FitData(train, None, test=test)
    held_out = sorted({train.classes[train.labels[i]] for i in held_classes})
    parts = {"train": rows, "eval": validation}
    return FitData(train.subset(rows.tolist()), train.subset(validation.tolist()), held_out, test, train, parts)


def choose_layer_and_head(model: Any, data: FitData, config: FitConfig) -> tuple[FitConfig, dict[str, Any] | None]:
    """``layer_name="auto"`` / ``output_dim="auto"``: probe the candidates on the same validation split `fit` uses
    and return the config with the winner filled in, plus the leaderboard (None when nothing is automatic)."""
    chosen = config.model
    auto_layer, auto_dim = chosen.layer_name == "auto", chosen.output_dim == "auto"
    if not (auto_layer or auto_dim):
        return config, None
    from finetuner.probe import Recipe, probe

    if data.pairs or chosen.task != "embedding":
        raise ValueError("layer_name='auto' and output_dim='auto' need labelled data for an embedding: pass them.")
    head = chosen.head if isinstance(chosen.head, str) else "projection"
    if auto_dim:
        heads = [f"{head}:128", f"{head}:256"] + ([] if chosen.freeze is True else ["none"])
    else:
        heads = [f"{head}:{chosen.output_dim}" if chosen.output_dim else "none"]
    training = config.training
    recipe = Recipe.from_training(training)
    board = probe(
        model,
        data.source if data.source is not None else data.train,
        None if data.source is not None else data.eval,  # held out here: probe holds out the same split
        layers="auto" if auto_layer else (1 if chosen.layer_name is None else [chosen.layer_name]),
        heads=heads,
        recipe=recipe,
        items_fraction=config.data.val_split,
        classes_fraction=config.data.val_class_split,
        cache_dir=config.cache.cache_dir,
        num_workers=training.num_workers,
        pretrained=chosen.pretrained,
        input_size=chosen.input_size,
        example_input=chosen.example_input,
        model_options=chosen.model_options,
    )
    best = board.best.fit_options()
    logger.info("probe: chose %s + %s (%s)\n%s", board.best.layer, board.best.head, board.best.output_dim, board)
    model_config = dataclasses.replace(
        chosen, layer_name=best["layer_name"], output_dim=best["output_dim"], head=best.get("head", chosen.head)
    )
    rows = [
        {**r.fit_options(), "layer": r.layer, "head": r.head, "output_dim": r.output_dim, "score": r.score,
         "metrics": r.metrics}
        for r in board
    ]
    summary = {"primary_metric": board.primary_metric, "chosen": rows[0], "rows": rows}
    return dataclasses.replace(config, model=model_config), summary


def data_kind(config: FitConfig) -> DataKind:
    """The kind of data training needs: labels for classification and metric losses, pairs for a pair loss
    (scored pairs when it uses scores), else what the user said (``auto`` infers)."""
    kind = DataKind(config.data.kind)
    loss = config.training.loss
    if config.model.task == "classification" or loss is None or kind is not DataKind.AUTO:
        return DataKind.LABELED if config.model.task == "classification" else kind
    pair_loss = loss if isinstance(loss, PairLoss) else find_pair_loss(loss) if isinstance(loss, str) else None
    if pair_loss is None:
        return DataKind.LABELED
    return DataKind.SCORED_PAIRS if pair_loss.uses_scores else DataKind.PAIRS


def apply_data_options(model: EmbeddingModel, config: FitConfig) -> None:
    """``augment=False`` trains on the evaluation transform."""
    if not config.data.augment and getattr(model.preprocessing, "augment", None) is not None:
        model.preprocessing = dataclasses.replace(model.preprocessing, augment=None)


def build_objective(model: EmbeddingModel, data: FitData, training: TrainConfig) -> tuple[nn.Module, Any]:
    """The loss (the task's default unless named) and the optional miner."""
    if training.loss is not None:
        name = training.loss
    elif model.task == "classification":
        name = "CrossEntropyLoss"
    elif data.pairs:
        name = model.backend.default_pair_loss
    else:
        name = "TripletMarginLoss"
    embedding_dim = model.embedding_dim()
    loss = build_loss(
        name, num_classes=None if data.pairs else len(data.train.classes), embedding_dim=embedding_dim,
        **training.loss_options,
    )
    loss = compose_loss(
        loss,
        matryoshka_dims=training.matryoshka_dims,
        mini_batch_size=training.mini_batch_size,
        embedding_dim=embedding_dim,
    )
    if not data.pairs and needs_two_classes(loss):
        from finetuner.data import check_at_least_two_classes

        check_at_least_two_classes(data.train)
    return loss, build_miner(training.miner, **training.miner_options)


def backbone_is_frozen(model: EmbeddingModel) -> bool:
    """True when no backbone parameter trains, so its features can be computed once and cached."""
    return not any(p.requires_grad for p in model.backbone.parameters())


def columns(data: LabeledData | PairData) -> dict[str, list]:
    """The item columns of ``data`` that the model encodes."""
    if isinstance(data, PairData):
        found = {"queries": data.queries, "documents": data.documents}
        return found | ({"negatives": data.negatives} if data.negatives is not None else {})
    return {"items": data.items}


@dataclass
class TrainingPlan:
    """What trains (the head on cached features, or the whole model on raw items), on which batches, and how the
    current and the untuned model are scored on each scored set (``validation``, ``test``)."""

    model: EmbeddingModel
    trained: nn.Module
    batches: Any
    evaluators: dict[str, ValidationEvaluator]
    train_features: dict[str, list[torch.Tensor]] | None = None
    set_features: dict[str, dict[str, torch.Tensor]] | None = None  # per scored set, per column
    batch_size: int = 64
    distractor_labels: np.ndarray | None = None  # training labels, when validation shares their class numbering

    @property
    def evaluator(self) -> ValidationEvaluator | None:
        """The validation set's evaluator: what selection and the per-epoch evaluation use."""
        return self.evaluators.get("validation")

    def metrics(self, which: str = "validation") -> dict[str, float]:
        """Metrics of the model as it is now: the head on cached features when available."""
        if self.set_features is not None:
            outputs = {k: head_outputs(self.model, v) for k, v in self.set_features[which].items()}
            return self.evaluators[which].from_outputs(outputs, self._distractors(which, tuned=True))
        return self.evaluators[which](lambda items: self.model.evaluation_outputs(items, self.batch_size))

    def _distractors(self, which: str, tuned: bool) -> tuple[np.ndarray, np.ndarray] | None:
        """The training items as extra old-class items for held-out-class queries of validation data held out of
        the same data set (same class numbering), with cached features; None otherwise."""
        if which != "validation" or self.distractor_labels is None or self.train_features is None:
            return None
        features = self.train_features["items"][0]
        outputs = head_outputs(self.model, features) if tuned else features.float().numpy()
        return outputs, self.distractor_labels

    def untuned_metrics(self, which: str = "validation") -> dict[str, float]:
        """Metrics before training. Embeddings: the backbone's own features at the chosen layer (what the
        pretrained model gives without tuning). Classifiers: the freshly initialised head (about chance)."""
        if self.model.task == "classification":
            return self.metrics(which)
        if self.set_features is not None:
            outputs = {k: v.float().numpy() for k, v in self.set_features[which].items()}
            return self.evaluators[which].from_outputs(outputs, self._distractors(which, tuned=False))
        return self.evaluators[which](lambda items: self.model.outputs(self.model.features, items, self.batch_size))


def plan_training(model: EmbeddingModel, data: FitData, loss: nn.Module, config: FitConfig) -> TrainingPlan:
    """Cached features when the backbone is frozen, raw items through DataLoader workers otherwise; both follow one
    seeded batch sampler, so they see identical batches. Under torchrun, the processes share the work of caching
    and then each trains the head on all batches (the single-process result); raw items are split across them."""
    training = config.training
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
    plan = TrainingPlan(model, model, None, evaluators, batch_size=training.batch_size)
    if data.source is not None and model.task == "embedding":  # validation held out of the training data
        plan.distractor_labels = np.asarray(data.train.labels)
    cached = config.cache.cache and model.head is not None and backbone_is_frozen(model)
    sampler = make_batch_sampler(data.train, loss, training, sharded=not cached)
    if cached:
        cache = FeatureCache(
            config.cache.cache_dir, max_memory_bytes=config.cache.cache_max_memory, dtype=config.cache.cache_dtype
        )
        plan.train_features, plan.set_features = cache_features(model, data, cache, config)
        plan.trained, plan.batches = model.head, tensor_batches(plan.train_features, data.train, sampler)
    else:
        plan.batches = item_batches(model, data.train, sampler, training)
    initialize_head(plan, data)
    return plan


def initialize_head(plan: TrainingPlan, data: FitData, sample_size: int = 4096) -> None:
    """Give the head a data-dependent start (`Head.initialize`) from the training features: the cached ones, or
    the backbone's features of a seeded sample of training items."""
    head = plan.model.head
    if head is None or type(head).initialize is Head.initialize:  # nothing to do: spare the forward pass
        return
    if plan.train_features is not None:
        # rows of the columns' features taken as if concatenated, without concatenating them (they may be mapped)
        parts = [views[0] for views in plan.train_features.values()]
        generator = torch.Generator().manual_seed(0)
        rows = torch.randperm(sum(len(part) for part in parts), generator=generator)[:sample_size]
        offsets = torch.tensor([0] + [len(part) for part in parts]).cumsum(0)
        which = torch.searchsorted(offsets, rows, right=True) - 1
        sample = torch.empty(len(rows), parts[0].shape[1], dtype=parts[0].dtype)
        for number, part in enumerate(parts):
            picked = which == number
            sample[picked] = part[rows[picked] - offsets[number]]
    else:
        items = [item for column in columns(data.train).values() for item in column]
        rng = np.random.default_rng(0)
        picked = [items[i] for i in np.sort(rng.permutation(len(items))[:sample_size])]
        sample = torch.from_numpy(plan.model.outputs(plan.model.features, picked, plan.batch_size))
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
    epoch, alpha = selection.get("epoch"), selection.get("alpha")
    kept = f"epoch {epoch}" if epoch is not None else f"a mix of the start and the best epoch (alpha={alpha})"
    lines.append(f"  kept {kept}: {selection.get('reason', '')}")
    return "model selection\n" + "\n".join(lines)


def make_batch_sampler(data: LabeledData | PairData, loss: nn.Module, config: TrainConfig, *, sharded: bool = True):
    """Class-balanced batches for metric losses, shuffled batches otherwise; split across DDP ranks when
    ``sharded`` (else every rank gets every batch)."""
    ranks = (distributed.world_size(), distributed.rank()) if sharded else (1, 0)
    shard = {"num_replicas": ranks[0], "rank": ranks[1], "seed": config.seed}
    if isinstance(data, LabeledData) and needs_two_classes(loss):
        from finetuner.data import ClassBalancedSampler

        return ClassBalancedSampler(data.labels, config.num_items_per_class, config.batch_size, **shard)
    return ShuffledBatchSampler(len(data), config.batch_size, **shard)


def item_batches(model: EmbeddingModel, data: LabeledData | PairData, sampler: Any, config: TrainConfig):
    """Batches decoded from the raw items by DataLoader workers, with training augmentation."""
    from finetuner.data.datasets import ItemDataset, PairDataset

    if isinstance(data, PairData):
        dataset = PairDataset(
            data.queries, data.documents, model.preprocessing, train=True, scores=data.scores, negatives=data.negatives
        )
    else:
        dataset = ItemDataset(data.items, data.labels, model.preprocessing, train=True)
    return LoaderBatches(dataset, sampler, num_workers=config.num_workers)


def cache_features(
    model: EmbeddingModel, data: FitData, cache: FeatureCache, config: FitConfig
) -> tuple[dict[str, list[torch.Tensor]], dict[str, dict[str, torch.Tensor]]]:
    """Run the frozen backbone once over every column of the training views and of the scored sets (augmented
    views only for labelled training items): ``(train features per column and view, features per scored set and
    column)``."""
    training = config.training
    device = resolve_device(training.device)
    model.to(device, memory_format=torch.channels_last).eval()
    options = {
        "device": device,
        "batch_size": training.batch_size,
        "num_workers": training.num_workers,
        "autocast_dtype": autocast_dtype(training.precision, device),
    }
    fingerprint = fingerprint_features(model.backbone, model.pool)  # once

    def run(items: list, name: str, count: int) -> list[torch.Tensor]:
        return cache.features(
            model.features, fingerprint, items, model.preprocessing, views=count, name=name, **options
        )

    views = config.cache.cache_views
    # Training and validation items held out of one data set: one pass over it (one cache entry, which `probe`
    # shares), sliced by rows; augmented training views are their own entry.
    source = run(data.source.items, "train items", 1)[0] if data.source is not None else None
    train = {
        column: [source[data.rows["train"]]]
        if source is not None and views == 1
        else run(items, f"train {column}", views if column == "items" else 1)
        for column, items in columns(data.train).items()
    }
    scored = {
        name: {"items": source[data.rows["eval"]]}
        if source is not None and name == "validation"
        else {column: run(items, f"{name} {column}", 1)[0] for column, items in columns(part).items()}
        for name, part in data.scored_sets().items()
    }
    return train, scored


def tensor_batches(features: dict[str, list[torch.Tensor]], train: LabeledData | PairData, sampler: Any):
    """Batches indexed out of the cached training features."""
    if isinstance(train, PairData):
        return PairTensorBatches({k: v[0] for k, v in features.items()}, train.scores, sampler)
    return TensorBatches(features["items"], torch.as_tensor(train.labels), sampler)


def head_outputs(model: EmbeddingModel, features: torch.Tensor, batch_size: int = 4096) -> np.ndarray:
    """The head applied to cached features (eval mode), in chunks; the features themselves without a head."""
    if model.head is None:
        return features.float().numpy()
    model.head.eval()
    device = next(model.head.parameters()).device
    with torch.inference_mode():
        chunks = [model.head(chunk.float().to(device)).float().cpu() for chunk in features.split(batch_size)]
    return torch.cat(chunks).numpy()


def retrieval_examples(plan: TrainingPlan, data: FitData, *, queries: int = 4, k: int = 5) -> list[dict[str, Any]]:
    """A few evaluation queries with their top-k neighbours (leave-one-out), for the HTML report."""
    eval_data, model = data.eval, plan.model
    if eval_data is None or data.pairs or model.task != "embedding":
        return []
    cached = plan.set_features["validation"]["items"] if plan.set_features is not None else None
    vectors = head_outputs(model, cached) if cached is not None else model.encode(eval_data.items)
    vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    rng = np.random.default_rng(0)
    picks = rng.choice(len(eval_data), size=min(queries, len(eval_data)), replace=False)
    examples = []
    for query in picks:
        scores = vectors @ vectors[query]
        scores[query] = -np.inf
        top = np.argsort(-scores, kind="stable")[:k]
        examples.append(
            {
                "query": eval_data.items[query],
                "query_label": eval_data.classes[eval_data.labels[query]],
                "results": [eval_data.items[i] for i in top],
                "result_labels": [eval_data.classes[eval_data.labels[i]] for i in top],
                "relevant": [eval_data.labels[i] == eval_data.labels[query] for i in top],
            }
        )
    return examples


def card_data(
    model: Any, loss: nn.Module, miner: Any, config: FitConfig, data: FitData, metrics: dict[str, Any]
) -> ModelCardData:
    """What the saved model's card says about this run: the base model, freezing, loss, settings, data and the
    metrics (on test data when given, else on validation data)."""

    def summary(part: LabeledData | PairData | None) -> dict[str, Any]:
        if part is None:
            return {}
        if isinstance(part, PairData):
            return {"items": len(part), "kind": "pairs"}
        return {"items": len(part), "classes": len({part.classes[label] for label in part.labels}), "kind": "labeled"}

    training = config.training
    scored = metrics.get("test") or {k: metrics[k] for k in ("before", "after") if k in metrics}
    evaluation = summary(data.test if "test" in metrics else data.eval)
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
        training={k: getattr(training, k) for k in ("epochs", "batch_size", "learning_rate", "optimizer", "scheduler")},
        train_data=summary(data.train),
        eval_data=evaluation,
        metrics=scored,
    )


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
