"""What `probe` and `sweep` share: the backbone, the candidate layers, the cached features, the validation splits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from finetuner.config import FitConfig
from finetuner.core.device import autocast_dtype, resolve_device
from finetuner.data import HoldoutRows, LabeledData, PairData, check_at_least_two_classes, hold_out_indices, load_data
from finetuner.models import Backbone, build_backbone
from finetuner.probing.layers import DEFAULT_LAYER_COUNT, Candidate, cached_features, layer_candidates
from finetuner.probing.recipe import Recipe
from finetuner.training.cache import FeatureCache


@dataclass
class Prepared:
    """Cached features of every candidate layer, split for training and validation.

    Attributes:
        candidates: the layers, in the order they run.
        train: layer name -> training features ``(N, D)``.
        train_labels: their labels.
        num_classes: size of the class list (what losses with class weights need).
        validation: split name (``eval``; or ``items`` and ``classes``) -> (layer name -> features, labels).
    """

    candidates: list[Candidate]
    train: dict[str, torch.Tensor]
    train_labels: np.ndarray
    num_classes: int
    validation: dict[str, tuple[dict[str, torch.Tensor], np.ndarray]]

    def split_features(self, layer: str) -> dict[str, tuple[torch.Tensor, np.ndarray]]:
        """The validation splits of one layer: ``{split: (features, labels)}``."""
        return {name: (features[layer], labels) for name, (features, labels) in self.validation.items()}


def settings(config: FitConfig | None, options: dict[str, Any]) -> FitConfig:
    """The `FitConfig` `probe` and `sweep` read, from ``config`` and fit's flat option names (``val_split``,
    ``val_class_split``, ``cache_dir``, ``num_workers``, ``pretrained``, ``input_size``, ``model_options``, ...)."""
    return FitConfig.from_options(config, **options)


def prepare(
    model: str | Path | nn.Module | Backbone,
    train_data: Any,
    eval_data: Any,
    *,
    layers: str | int | Sequence[str],
    recipe: Recipe,
    config: FitConfig,
    holdout: HoldoutRows | None = None,
) -> Prepared:
    """Build the backbone, pick the layers, run the backbone once over the data (or read the cache) and split.

    Without ``eval_data``, validation holds out ``config.data.val_split`` of the training classes' items, and whole
    classes (``val_class_split``, at least one, two always left for training) when there are 4 classes or more:
    `finetuner.data.hold_out_indices`, the split `fit` makes (or ``holdout``, the one it made already).
    """
    if layers == "auto":
        layers = DEFAULT_LAYER_COUNT
    train = _labeled(load_data(train_data), "train_data")
    evaluation = _labeled(load_data(eval_data), "eval_data") if eval_data is not None else None
    check_at_least_two_classes(train)
    chosen = config.model
    backbone = build_backbone(
        model,
        pretrained=chosen.pretrained,
        input_size=chosen.input_size,
        example_input=chosen.example_input,
        **chosen.model_options,
    )
    module, candidates = layer_candidates(backbone, layers)
    device = resolve_device(recipe.device)
    lists = {"train": train.items} | ({"eval": evaluation.items} if evaluation is not None else {})
    features = cached_features(
        backbone,
        module,
        candidates,
        lists,
        FeatureCache(config.cache.cache_dir, engine=config.cache.cache_engine),
        device=device,
        batch_size=recipe.batch_size,
        num_workers=config.training.num_workers,
        autocast_dtype=autocast_dtype(recipe.precision, device),
    )
    labels = np.asarray(train.labels)
    if evaluation is not None:
        train_rows, train_labels = features["train"], labels
        validation = {"eval": (features["eval"], np.asarray(evaluation.labels))}
    else:
        if holdout is None:
            holdout = hold_out_indices(train, config.data.val_split, config.data.val_class_split, seed=recipe.seed)
        parts = {"items": holdout.items} | ({"classes": holdout.classes} if len(holdout.classes) else {})
        validation = {
            name: ({layer: rows[index] for layer, rows in features["train"].items()}, labels[index])
            for name, index in parts.items()
        }
        train_rows = {layer: rows[holdout.train] for layer, rows in features["train"].items()}
        train_labels = labels[holdout.train]
    for name, (_, split_labels) in validation.items():
        if np.bincount(split_labels).max() < 2:
            raise ValueError(
                f"The validation split {name!r} ({len(split_labels)} items) holds no class twice, so retrieval cannot "
                "be scored on it: pass eval_data with more items per class, more data, or a larger val_split."
            )
    return Prepared(candidates, train_rows, train_labels, len(train.classes), validation)


def _labeled(data: LabeledData | PairData, argument: str) -> LabeledData:
    if isinstance(data, PairData):
        raise ValueError(
            f"probe needs labelled {argument} (item, label): it ranks layers and heads by retrieval of same-class "
            "items, which (query, document) pairs do not define."
        )
    return data
