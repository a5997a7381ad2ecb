"""Pieces of `finetuner.fit`: batch sources (cached or not), evaluation before/after, report examples."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from finetuner.data import LabeledData, PairData
from finetuner.model import EmbeddingModel
from finetuner.training import distributed
from finetuner.training.batches import LoaderBatches, PairTensorBatches, ShuffledBatchSampler, TensorBatches
from finetuner.training.cache import FeatureCache, fingerprint_features
from finetuner.training.config import TrainConfig
from finetuner.training.losses import needs_two_classes

logger = logging.getLogger("finetuner")


def backbone_is_frozen(model: EmbeddingModel) -> bool:
    """True when no backbone parameter trains, so its features can be computed once and cached."""
    return not any(p.requires_grad for p in model.backbone.parameters())


def make_batch_sampler(data: LabeledData | PairData, loss: nn.Module, config: TrainConfig):
    """Class-balanced batches for metric losses, shuffled batches otherwise; sharded across DDP ranks."""
    shard = {"num_replicas": distributed.world_size(), "rank": distributed.rank(), "seed": config.seed}
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


@dataclass
class CachedFeatures:
    """Backbone features per data column (``items`` for labelled data; ``queries``, ``documents`` and
    ``negatives`` for pairs): one tensor per cached view for training, one tensor for evaluation."""

    train: dict[str, list[torch.Tensor]]
    eval: dict[str, torch.Tensor] | None


def columns(data: LabeledData | PairData) -> dict[str, list]:
    """The item columns of ``data`` that the model encodes."""
    if isinstance(data, PairData):
        found = {"queries": data.queries, "documents": data.documents}
        return found | ({"negatives": data.negatives} if data.negatives is not None else {})
    return {"items": data.items}


def cache_features(
    model: EmbeddingModel,
    train: LabeledData | PairData,
    eval_data: LabeledData | PairData | None,
    cache: FeatureCache,
    *,
    views: int,
    config: TrainConfig,
    device: torch.device,
) -> CachedFeatures:
    """Run the frozen backbone once over every column of the training views and of the evaluation data
    (augmented views only for labelled items)."""
    from finetuner.core.device import autocast_dtype

    model.to(device, memory_format=torch.channels_last).eval()
    options = {
        "device": device,
        "batch_size": config.batch_size,
        "num_workers": config.num_workers,
        "autocast_dtype": autocast_dtype(config.precision, device),
    }
    fingerprint = fingerprint_features(model.backbone, model.pool)  # once

    def run(items: list, name: str, count: int) -> list[torch.Tensor]:
        return cache.features(
            model.features, fingerprint, items, model.preprocessing, views=count, name=name, **options
        )

    train_features = {
        column: run(items, f"train {column}", views if column == "items" else 1)
        for column, items in columns(train).items()
    }
    eval_features = None
    if eval_data is not None:
        eval_features = {column: run(items, f"eval {column}", 1)[0] for column, items in columns(eval_data).items()}
    return CachedFeatures(train_features, eval_features)


def tensor_batches(features: CachedFeatures, train: LabeledData | PairData, sampler: Any):
    """Batches indexed out of the cached training features."""
    if isinstance(train, PairData):
        return PairTensorBatches({k: v[0] for k, v in features.train.items()}, train.scores, sampler)
    return TensorBatches(features.train["items"], torch.as_tensor(train.labels), sampler)


def head_outputs(model: EmbeddingModel, features: torch.Tensor, batch_size: int = 4096) -> np.ndarray:
    """The head applied to cached features (eval mode), in chunks; the features themselves without a head."""
    if model.head is None:
        return features.float().numpy()
    model.head.eval()
    device = next(model.head.parameters()).device
    with torch.inference_mode():
        chunks = [model.head(chunk.float().to(device)).float().cpu() for chunk in features.split(batch_size)]
    return torch.cat(chunks).numpy()


def _metrics(
    encode: Callable[[Any], np.ndarray],
    cached: dict[str, np.ndarray] | None,
    eval_data: LabeledData | PairData,
    task: str,
    metric_kwargs: dict[str, Any],
) -> dict[str, float]:
    """Metrics of one way of turning items into outputs: ``encode(items)``, or rows computed beforehand per
    column (``cached``)."""
    from finetuner.evaluation import classification_metrics, pair_metrics, retrieval_metrics

    def outputs(column: str) -> np.ndarray:
        return cached[column] if cached is not None else encode(columns(eval_data)[column])

    if isinstance(eval_data, PairData):  # query i's relevant document is document i
        queries, documents = outputs("queries"), outputs("documents")
        return pair_metrics(queries, documents, np.arange(len(documents)), k=metric_kwargs.get("k", (1, 5, 10)))
    if task == "classification":
        return classification_metrics(outputs("items"), eval_data.labels)
    return retrieval_metrics(outputs("items"), eval_data.labels, **metric_kwargs)


def evaluation_function(
    model: EmbeddingModel,
    eval_data: LabeledData | PairData,
    eval_features: dict[str, torch.Tensor] | None,
    *,
    batch_size: int,
    metric_kwargs: dict[str, Any],
) -> Callable[[], dict[str, float]]:
    """A function that evaluates the current model on ``eval_data``: the head on cached features when available;
    embeddings for retrieval metrics, logits for classification."""

    def encode(items: Any) -> np.ndarray:
        return model.outputs(model, items, batch_size)  # embeddings, or a classifier's logits

    def evaluate() -> dict[str, float]:
        cached = {k: head_outputs(model, v) for k, v in eval_features.items()} if eval_features is not None else None
        return _metrics(encode, cached, eval_data, model.task, metric_kwargs)

    return evaluate


def baseline_metrics(
    model: EmbeddingModel,
    eval_data: LabeledData | PairData,
    eval_features: dict[str, torch.Tensor] | None,
    *,
    batch_size: int,
    metric_kwargs: dict[str, Any],
) -> dict[str, float]:
    """Metrics before training. Embeddings: the backbone's own features at the chosen layer (what the
    pretrained model gives without any tuning). Classifiers: the freshly initialised head (about chance)."""
    if model.task == "classification":
        return evaluation_function(
            model, eval_data, eval_features, batch_size=batch_size, metric_kwargs=metric_kwargs
        )()

    def encode(items: Any) -> np.ndarray:
        return model.outputs(model.features, items, batch_size)

    cached = {k: v.float().numpy() for k, v in eval_features.items()} if eval_features is not None else None
    return _metrics(encode, cached, eval_data, model.task, metric_kwargs)


def retrieval_examples(
    model: EmbeddingModel,
    eval_data: LabeledData,
    eval_features: dict[str, torch.Tensor] | None,
    *,
    queries: int = 4,
    k: int = 5,
) -> list[dict[str, Any]]:
    """A few evaluation queries with their top-k neighbours (leave-one-out), for the HTML report."""
    cached = eval_features["items"] if eval_features is not None else None
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
