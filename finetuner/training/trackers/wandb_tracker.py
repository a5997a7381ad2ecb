"""A Weights & Biases run, offline by default (``report_to="wandb"``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from finetuner.training.trackers.base import Tracker, register_tracker


@register_tracker("wandb")
class WandbTracker(Tracker):
    """A Weights & Biases run, offline by default (files under ``folder``; ``wandb sync`` uploads them later).

    Args:
        folder: where W&B writes its ``wandb/`` folder.
        project: the W&B project.
        mode: ``offline`` (default), ``online`` or ``disabled``; the ``WANDB_MODE`` variable wins when set.

    Example:
        >>> finetuner.fit(..., callbacks=[WandbTracker("out/logs", project="shoes")])  # doctest: +SKIP
    """

    requires = ("wandb", "wandb")

    def __init__(
        self,
        folder: str | Path = ".",
        *,
        project: str = "finetuner",
        mode: str = "offline",
        config: Mapping[str, Any] | None = None,
    ):
        super().__init__(config)
        self.folder, self.project = Path(folder), project
        self.mode = os.environ.get("WANDB_MODE", mode)
        self.run = None

    @classmethod
    def for_run(cls, folder: Path, config: Mapping[str, Any] | None) -> WandbTracker:
        return cls(folder, config=config)

    def start(self, params: dict[str, Any]) -> None:
        import wandb

        self.folder.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(project=self.project, dir=str(self.folder), mode=self.mode, config=params)

    def log_metrics(self, values: dict[str, float], step: int) -> None:
        self.run.log(values, step=step)

    def finish(self) -> None:
        self.run.finish()
