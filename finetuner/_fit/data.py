"""Fit's data: load what the loss needs (the kind parsed once), hold out validation, build the objective."""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import nn

from finetuner.config import FitConfig
from finetuner.data import (
    DataError,
    DataKind,
    HoldoutRows,
    LabeledData,
    PairData,
    hold_out,
    hold_out_indices,
    load_data,
)
from finetuner.model import EmbeddingModel
from finetuner.training import build_loss, build_miner
from finetuner.training.config import TrainConfig
from finetuner.training.losses import compose_loss, needs_two_classes
from finetuner.training.pair_losses import CorpusRankingLoss, PairLoss, find_pair_loss

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
    holdout: HoldoutRows | None = None  # ... at these rows
    names: dict[str, str] = dataclasses.field(default_factory=dict)  # "train" / "eval" / "test": what the user gave

    @property
    def rows(self) -> dict[str, np.ndarray]:
        """``source``'s rows of ``train`` and ``eval`` (empty when nothing was held out of it)."""
        if self.holdout is None:
            return {}
        return {"train": self.holdout.train, "eval": np.sort(np.concatenate(self.holdout[1:]))}

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
    data = load_and_hold_out(train_data, eval_data, test_data, config)
    given = {"train": train_data, "eval": eval_data, "test": test_data}
    data.names = {part: source_name(value) for part, value in given.items() if value is not None}
    return data


def source_name(source: Any) -> str:
    """How the report and the model card name data: a path or set name as given, else the kind of object."""
    return str(source) if isinstance(source, (str, os.PathLike)) else f"a {type(source).__name__}"


def load_and_hold_out(train_data: Any, eval_data: Any, test_data: Any, config: FitConfig) -> FitData:
    kind = data_kind(config)  # parsed once, here
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
    holdout = HoldoutRows(rows, held_items, held_classes)
    return FitData(train.subset(rows.tolist()), train.subset(validation.tolist()), held_out, test, train, holdout)


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


def check_data(model: EmbeddingModel, data: FitData) -> None:
    """Refuse data the model would read wrongly, before anything runs: each preprocessing that can tell
    (``check_items``: a text model given image files or empty texts, an image model given texts or missing files)
    looks at every column of the training, validation and test data."""
    check = getattr(model.preprocessing, "check_items", None)
    if check is None:  # kinds that take anything they can load (image-text pairs, vectors)
        return
    for part, records in (("training", data.train), ("validation", data.eval), ("test", data.test)):
        if isinstance(records, LabeledData):
            check(records.items, f"the {part} data")
        elif isinstance(records, PairData):
            for column in ("queries", "documents", "negatives"):
                if getattr(records, column) is not None:
                    check(getattr(records, column), f"the {part} data's {column}")


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
    elif data.pairs and model.adapter == "query":
        name = "CorpusRankingLoss"  # documents stay fixed: each query ranks among every training document
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
    if model.adapter != "query" and any(isinstance(part, CorpusRankingLoss) for part in loss.modules()):
        raise ValueError(
            "CorpusRankingLoss ranks queries among fixed documents: it trains a query-side adapter "
            "(adapter='query'). Where documents are mapped too, use MultipleNegativesRankingLoss."
        )
    if not data.pairs and needs_two_classes(loss):
        from finetuner.data import check_at_least_two_classes

        check_at_least_two_classes(data.train)
    return loss, build_miner(training.miner, **training.miner_options)


def columns(data: LabeledData | PairData) -> dict[str, list]:
    """The item columns of ``data`` that the model encodes."""
    if isinstance(data, PairData):
        found = {"queries": data.queries, "documents": data.documents}
        return found | ({"negatives": data.negatives} if data.negatives is not None else {})
    return {"items": data.items}
