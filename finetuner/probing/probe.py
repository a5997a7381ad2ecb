"""`probe`: run a frozen backbone once, then rank (layer, head) pairs trained on the cached features."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from finetuner.config import FitConfig
from finetuner.data import HoldoutRows
from finetuner.models import Backbone
from finetuner.probing._prepare import prepare, settings
from finetuner.probing.leaderboard import Leaderboard, LeaderboardRow
from finetuner.probing.recipe import HeadSpec, Recipe, score, train_heads, validation_metrics

logger = logging.getLogger("finetuner")

DEFAULT_HEADS = ("none", "linear:128", "residual:128", "residual:256")


def probe(
    model: str | Path | nn.Module | Backbone,
    train_data: Any,
    eval_data: Any = None,
    *,
    layers: str | int | Sequence[str] = "auto",
    heads: Sequence[str] = DEFAULT_HEADS,
    recipe: Recipe | None = None,
    primary_metric: str = "map@r",
    config: FitConfig | None = None,
    holdout: HoldoutRows | None = None,
    **options: Any,
) -> Leaderboard:
    """Find the best layer and head for your data in about one forward pass of the frozen backbone.

    The backbone runs once over the data with hooks on every candidate layer; each layer's pooled features are
    cached on disk under the key `fit` uses for a frozen backbone cut at that layer (so a following
    ``fit(..., **board.best.fit_options())`` on the same data reuses them). Each head then trains on the cached
    features with the short ``recipe`` and is scored by retrieval on held-out data.

    Args:
        model: a registered name, a timm name, a Hugging Face text folder, an ``nn.Module`` (with ``input_size``),
            or a `Backbone`.
        train_data: labelled data in any form `finetuner.data.load_data` reads.
        eval_data: labelled validation data. Without it, validation is held out of ``train_data`` as `fit` holds
            it out: ``val_split`` of the training classes' items, and ``val_class_split`` of the classes (at least
            1) when there are 4 classes or more.
        layers: ``"auto"`` (the default embedding layer and the 3 stages before it; the last 4 blocks of a text
            encoder), a number of such layers, or layer names (`finetuner.display` lists them).
        heads: ``"none"`` (the features as they are), ``"linear:<size>"``, ``"projection:<size>"``.
        recipe: how each head trains (loss, miner, epochs, learning rate, ...; also device and seed); default: the
            training settings of ``config`` with 5 epochs (`Recipe.from_training`).
        primary_metric: the retrieval metric rows are ranked by, averaged over the validation splits.
        config: a `finetuner.config.FitConfig`: the settings `probe` shares with `fit` (``val_split``,
            ``val_class_split``, ``cache_dir``, ``num_workers``, ``pretrained``, ``input_size``,
            ``example_input``, ``model_options``, the training settings of the default recipe).
        holdout: the rows of ``train_data`` already held out for validation (`finetuner.data.hold_out_indices`).
        **options: `config` fields by their flat names, as `fit` takes them.

    Returns:
        A `Leaderboard`: one row per (layer, head), best first; ``print(board)`` shows the table.

    Raises:
        ValueError: pair data, fewer than 2 classes, an unknown head or layer, a non-metric loss.

    Example:
        >>> board = finetuner.probe("efficientnet_lite0", "fashion-mnist", heads=["linear:128"])  # doctest: +SKIP
        >>> print(board)  # doctest: +SKIP
        >>> finetuner.fit("efficientnet_lite0", "fashion-mnist", **board.best.fit_options())  # doctest: +SKIP
    """
    specs = [HeadSpec.parse(head) for head in heads]
    if not specs:
        raise ValueError("heads is empty: give at least one, e.g. heads=['none', 'projection:128'].")
    config = settings(config, options)
    recipe = recipe or Recipe.from_training(config.training)
    prepared = prepare(
        model, train_data, eval_data, layers=layers, recipe=recipe, config=config, holdout=holdout
    )
    pairs = [(candidate, spec) for candidate in prepared.candidates for spec in specs]
    trained = [(c, s) for c, s in pairs if s.kind != "none"]
    start = time.perf_counter()
    heads = train_heads(
        [prepared.train[c.name] for c, _ in trained],
        prepared.train_labels,
        [s for _, s in trained],
        recipe,
        num_classes=prepared.num_classes,
    ) if trained else []
    share = (time.perf_counter() - start) / max(1, len(trained))  # the heads train together: each its share
    found = {(c.name, s): head for (c, s), head in zip(trained, heads)}
    rows = []
    for candidate, spec in pairs:
        head = found.get((candidate.name, spec))
        metrics = validation_metrics(head, prepared.split_features(candidate.name))
        row = LeaderboardRow(
            layer=candidate.name,
            layer_name=candidate.layer_name,
            head=spec.kind,
            output_dim=spec.output_dim or candidate.dim,
            metrics=metrics,
            score=score(metrics, primary_metric),
            train_seconds=share if head is not None else 0.0,
        )
        logger.info("probe %s + %s:%d -> %.4f", row.layer, row.head, row.output_dim, row.score)
        rows.append(row)
    return Leaderboard(rows, primary_metric, layers=[c.name for c in prepared.candidates])
