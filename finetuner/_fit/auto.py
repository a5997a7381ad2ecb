"""``layer_name="auto"`` / ``output_dim="auto"``: probe the candidates before the model is built."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from torch import nn

from finetuner._fit.data import FitData
from finetuner.config import FitConfig
from finetuner.models import Backbone, build_backbone

logger = logging.getLogger("finetuner")


def choose_layer_and_head(
    model: str | Path | nn.Module, data: FitData, config: FitConfig
) -> tuple[FitConfig, dict[str, Any] | None, str | Path | nn.Module | Backbone]:
    """``layer_name="auto"`` / ``output_dim="auto"``: probe the candidates on the validation split `fit` made (the
    same rows, not held out again) and return the config with the winner filled in, the leaderboard (None when
    nothing is automatic) and the model to build: the backbone the probe built, so it is built once."""
    chosen = config.model
    auto_layer, auto_dim = chosen.layer_name == "auto", chosen.output_dim == "auto"
    if not (auto_layer or auto_dim):
        return config, None, model
    from finetuner.probing import probe

    if data.pairs or chosen.task != "embedding":
        raise ValueError("layer_name='auto' and output_dim='auto' need labelled data for an embedding: pass them.")
    head = chosen.head if isinstance(chosen.head, str) else "projection"
    if auto_dim:
        heads = [f"{head}:128", f"{head}:256"] + ([] if chosen.freeze is True else ["none"])
    else:
        heads = [f"{head}:{chosen.output_dim}" if chosen.output_dim else "none"]
    backbone = build_backbone(
        model,
        pretrained=chosen.pretrained,
        input_size=chosen.input_size,
        example_input=chosen.example_input,
        **chosen.model_options,
    )
    board = probe(
        backbone,
        data.source if data.source is not None else data.train,
        None if data.source is not None else data.eval,
        layers="auto" if auto_layer else (1 if chosen.layer_name is None else [chosen.layer_name]),
        heads=heads,
        config=config,
        holdout=data.holdout,
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
    return dataclasses.replace(config, model=model_config), summary, backbone
