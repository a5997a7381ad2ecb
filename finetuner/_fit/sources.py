"""Where fit's model inputs come from: one `FeatureSource` per kind, asked by the plan instead of branching.

`QueryAdapterFeatures` (cached features; the head maps the queries only, documents keep their features),
`CachedFeatures` (a frozen backbone's features, computed once; the head trains on them) and `RawItems` (the whole
model trains on decoded, augmented items). A new kind (cached intermediate activations, vectors the user gives) is
one more subclass in `SOURCES`, ahead of `RawItems`; nothing in `fit` changes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from finetuner._fit.data import FitData, columns
from finetuner.config import FitConfig
from finetuner.core.device import autocast_dtype, resolve_device
from finetuner.data import ClassBalancedSampler, LabeledData, PairData, ShuffledBatchSampler
from finetuner.evaluation import ValidationEvaluator
from finetuner.model import EmbeddingModel
from finetuner.tailor.heads import LinearHead
from finetuner.training import distributed
from finetuner.training.batches import BatchSource, LoaderBatches, PairTensorBatches, TensorBatches
from finetuner.training.cache import FeatureCache, fingerprint_features
from finetuner.training.config import TrainConfig
from finetuner.training.losses import needs_two_classes
from finetuner.training.pair_losses import CorpusRankingLoss


class FeatureSource(ABC):
    """What trains, on which batches, and how the model is scored on a scored set (``validation``, ``test``) and
    what the head's data-dependent start sees.

    Subclasses set ``trained`` and ``batches`` in ``__init__`` and say in `applies` when they serve a run.
    """

    kind: ClassVar[str]
    trained: nn.Module
    batches: BatchSource

    def __init__(
        self, model: EmbeddingModel, data: FitData, evaluators: dict[str, ValidationEvaluator], batch_size: int
    ):
        self.model, self.data, self.evaluators, self.batch_size = model, data, evaluators, batch_size

    @classmethod
    @abstractmethod
    def applies(cls, model: EmbeddingModel, config: FitConfig) -> bool:
        """Whether this kind serves a run of ``model`` under ``config``."""

    @abstractmethod
    def score(self, which: str, *, tuned: bool) -> dict[str, float]:
        """Metrics on the scored set ``which``: of the model as it is now (``tuned``), else of the backbone's own
        features at the cut."""

    @abstractmethod
    def score_untuned(self, which: str, head: nn.Module) -> dict[str, float]:
        """Metrics on ``which`` of the backbone's own features (as they were before training) through ``head``."""

    @abstractmethod
    def training_sample(self, size: int) -> torch.Tensor:
        """Backbone features of a seeded sample of at most ``size`` training items (for `Head.initialize`)."""

    @abstractmethod
    def validation_vectors(self, *, tuned: bool = True) -> np.ndarray | None:
        """The model's outputs for the validation items, in order (report examples); ``tuned=False``: the untuned
        model's, or None where they are no longer at hand."""


class CachedFeatures(FeatureSource):
    """A frozen backbone's features, computed once over every column of the training views and the scored sets
    (under torchrun each rank computes its share of the shards); the head trains on them, on all batches on every
    rank, which is the single-process run."""

    kind = "cached features"

    def __init__(self, model, data, evaluators, loss: nn.Module, config: FitConfig):
        super().__init__(model, data, evaluators, config.training.batch_size)
        cache = FeatureCache(
            config.cache.cache_dir,
            max_memory_bytes=config.cache.cache_max_memory,
            dtype=config.cache.cache_dtype,
            engine=config.cache.cache_engine,
        )
        self.train_features, self.set_features = cache_features(model, data, cache, config)
        sampler = make_batch_sampler(data.train, loss, config.training, sharded=False)
        self.trained, self.batches = model.head, tensor_batches(self.train_features, data.train, sampler)
        # validation held out of the training data shares its class numbering: training items are distractors
        held_out = data.source is not None and model.task == "embedding"
        self.distractor_labels = np.asarray(data.train.labels) if held_out else None

    @classmethod
    def applies(cls, model: EmbeddingModel, config: FitConfig) -> bool:
        return config.cache.cache and model.head is not None and backbone_is_frozen(model)

    def score(self, which: str, *, tuned: bool) -> dict[str, float]:
        outputs = {k: self._outputs(v, tuned) for k, v in self.set_features[which].items()}
        return self.evaluators[which].from_outputs(outputs, self._distractors(which, tuned))

    def score_untuned(self, which: str, head: nn.Module) -> dict[str, float]:
        outputs = {k: apply_head(head, v) for k, v in self.set_features[which].items()}
        return self.evaluators[which].from_outputs(outputs, self._distractors(which, head))

    def _outputs(self, features: torch.Tensor, tuned: bool) -> np.ndarray:
        return head_outputs(self.model, features) if tuned else features.float().numpy()

    def _distractors(self, which: str, tuned: bool | nn.Module) -> tuple[np.ndarray, np.ndarray] | None:
        """The training items as extra old-class items for held-out-class queries of validation data held out of
        the same data set (same class numbering); None otherwise. ``tuned`` may be a head to apply instead."""
        if which != "validation" or self.distractor_labels is None:
            return None
        features = self.train_features["items"][0]
        outputs = apply_head(tuned, features) if isinstance(tuned, nn.Module) else self._outputs(features, tuned)
        return outputs, self.distractor_labels

    def training_sample(self, size: int) -> torch.Tensor:
        # rows of the columns' features taken as if concatenated, without concatenating them (they may be mapped)
        parts = [views[0] for views in self.train_features.values()]
        generator = torch.Generator().manual_seed(0)
        rows = torch.randperm(sum(len(part) for part in parts), generator=generator)[:size]
        offsets = torch.tensor([0] + [len(part) for part in parts]).cumsum(0)
        which = torch.searchsorted(offsets, rows, right=True) - 1
        sample = torch.empty(len(rows), parts[0].shape[1], dtype=parts[0].dtype)
        for number, part in enumerate(parts):
            picked = which == number
            sample[picked] = part[rows[picked] - offsets[number]]
        return sample

    def validation_vectors(self, *, tuned: bool = True) -> np.ndarray | None:
        features = self.set_features["validation"]["items"]
        return head_outputs(self.model, features) if tuned else features.float().numpy()


UNMAPPED = "unmapped"  # the key of a batch column that `QueryOnly` passes through as it is


class QueryOnly(nn.Module):
    """What a query-side adapter trains: the head on query features; a column given as ``{"unmapped": features}``
    (documents, hard negatives) passes through unchanged, so the pair loss compares mapped queries with the
    documents' own features.

    Example:
        >>> side = QueryOnly(nn.Linear(4, 4))
        >>> bool((side({"unmapped": torch.ones(2, 4)}) == 1).all())
        True
    """

    def __init__(self, head: nn.Module):
        super().__init__()
        self.head = head

    def forward(self, inputs: torch.Tensor | dict[str, torch.Tensor]) -> torch.Tensor:
        return inputs[UNMAPPED] if isinstance(inputs, dict) else self.head(inputs)


class UnmappedDocuments(BatchSource):
    """Pair batches of cached features whose documents and hard negatives are marked `UNMAPPED` for `QueryOnly`."""

    def __init__(self, batches: BatchSource):
        self.batches, self.batch_sampler = batches, getattr(batches, "batch_sampler", None)

    def __len__(self) -> int:
        return len(self.batches)

    def epoch(self, epoch: int):
        for queries, documents, scores, negatives in self.batches.epoch(epoch):
            marked = None if negatives is None else {UNMAPPED: negatives}
            yield queries, {UNMAPPED: documents}, scores, marked


class QueryAdapterFeatures(CachedFeatures):
    """``adapter="query"``: cached features of pairs; the head learns a map for the queries only and documents
    keep the backbone's features (those of an existing index), in training and in every score. A
    `CorpusRankingLoss` (the default here) gets the training documents as its corpus."""

    kind = "query adapter"

    def __init__(self, model, data, evaluators, loss: nn.Module, config: FitConfig):
        if not isinstance(data.train, PairData):
            raise ValueError(
                "adapter='query' maps queries apart from documents, so it needs (query, document) pairs: pass "
                "VectorPairs / pair data, or leave adapter='both' for labelled items."
            )
        super().__init__(model, data, evaluators, loss, config)
        width = model.feature_dim()
        if model.embedding_dim() != width:
            raise ValueError(
                f"adapter='query' maps queries into the documents' {width}-d space, but the head gives "
                f"{model.embedding_dim()} dimensions: set output_dim={width}."
            )
        start_as_identity(model.head)
        self.trained, self.batches = QueryOnly(model.head), UnmappedDocuments(self.batches)
        for part in loss.modules():  # the training documents: fixed, so every query ranks among all of them
            if isinstance(part, CorpusRankingLoss):
                part.use_documents(self.train_features["documents"][0])

    @classmethod
    def applies(cls, model: EmbeddingModel, config: FitConfig) -> bool:
        if model.spec.get("adapter") != "query":
            return False
        if not (config.cache.cache and model.head is not None and backbone_is_frozen(model)):
            raise ValueError(
                "adapter='query' trains a head on the queries' cached features: it needs a frozen backbone "
                "(freeze=True), a head (output_dim=<the feature width>) and cache=True."
            )
        return True

    def score(self, which: str, *, tuned: bool) -> dict[str, float]:
        outputs = {
            column: self._outputs(features, tuned and column == "queries")
            for column, features in self.set_features[which].items()
        }
        return self.evaluators[which].from_outputs(outputs, None)


def start_as_identity(head: nn.Module) -> None:
    """Make a square head start as the identity, so a query-side adapter starts where the raw vectors are (the
    selection's epoch 0): a residual head keeps the features' origin (documents are not centred either), a linear
    head gets the unit matrix."""
    if getattr(head, "center", False):
        head.center = False  # `Head.initialize` then sets its linear path to the identity
    if isinstance(head, LinearHead) and head.in_features == head.out_features:
        with torch.no_grad():
            head.linear.weight.copy_(torch.eye(head.in_features))
            head.linear.bias.zero_()


class RawItems(FeatureSource):
    """Decoded, augmented items through DataLoader workers; the whole model trains (under torchrun each rank on
    its share of the batches)."""

    kind = "raw items"

    def __init__(self, model, data, evaluators, loss: nn.Module, config: FitConfig):
        super().__init__(model, data, evaluators, config.training.batch_size)
        sampler = make_batch_sampler(data.train, loss, config.training, sharded=True)
        self.trained, self.batches = model, item_batches(model, data.train, sampler, config.training)

    @classmethod
    def applies(cls, model: EmbeddingModel, config: FitConfig) -> bool:
        return True

    def score(self, which: str, *, tuned: bool) -> dict[str, float]:
        model, size = self.model, self.batch_size
        if tuned:
            return self.evaluators[which](lambda items: model.evaluation_outputs(items, size))
        return self.evaluators[which](lambda items: model.outputs(model.features, items, size))

    def score_untuned(self, which: str, head: nn.Module) -> dict[str, float]:
        model, size = self.model, self.batch_size
        return self.evaluators[which](
            lambda items: apply_head(head, torch.from_numpy(model.outputs(model.features, items, size)))
        )

    def training_sample(self, size: int) -> torch.Tensor:
        items = [item for column in columns(self.data.train).values() for item in column]
        rng = np.random.default_rng(0)
        picked = [items[i] for i in np.sort(rng.permutation(len(items))[:size])]
        return torch.from_numpy(self.model.outputs(self.model.features, picked, self.batch_size))

    def validation_vectors(self, *, tuned: bool = True) -> np.ndarray | None:
        return self.model.encode(self.data.eval.items) if tuned else None  # the untuned backbone has trained since


# the first that applies serves the run
SOURCES: list[type[FeatureSource]] = [QueryAdapterFeatures, CachedFeatures, RawItems]


def choose_source(
    model: EmbeddingModel, data: FitData, loss: nn.Module, config: FitConfig, evaluators: dict[str, ValidationEvaluator]
) -> FeatureSource:
    """The first kind in `SOURCES` that applies to this run, built (cached features are computed here)."""
    kind = next(kind for kind in SOURCES if kind.applies(model, config))
    return kind(model, data, evaluators, loss, config)


def backbone_is_frozen(model: EmbeddingModel) -> bool:
    """True when no backbone parameter trains, so its features can be computed once and cached."""
    return not any(p.requires_grad for p in model.backbone.parameters())


def make_batch_sampler(data: LabeledData | PairData, loss: nn.Module, config: TrainConfig, *, sharded: bool = True):
    """Class-balanced batches for metric losses, shuffled batches otherwise; split across DDP ranks when
    ``sharded`` (else every rank gets every batch)."""
    ranks = (distributed.world_size(), distributed.rank()) if sharded else (1, 0)
    shard = {"num_replicas": ranks[0], "rank": ranks[1], "seed": config.seed}
    if isinstance(data, LabeledData) and needs_two_classes(loss):
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
    return apply_head(model.head, features, batch_size)


def apply_head(head: nn.Module, features: torch.Tensor, batch_size: int = 4096) -> np.ndarray:
    """``head`` (eval mode) applied to ``features`` in chunks, on the head's device."""
    head.eval()
    device = next(head.parameters()).device
    with torch.inference_mode():
        chunks = [head(chunk.float().to(device)).float().cpu() for chunk in features.split(batch_size)]
    return torch.cat(chunks).numpy()
