"""TensorBoard event files (``report_to="tensorboard"``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from finetuner.training.trackers.base import Tracker, register_tracker


@register_tracker("tensorboard")
class TensorBoardTracker(Tracker):
    """TensorBoard event files in ``folder`` (``tensorboard --logdir folder``); the config as a text summary.

    Example:
        >>> finetuner.fit(..., callbacks=[TensorBoardTracker("out/logs/tensorboard")])  # doctest: +SKIP
    """

    requires = ("tensorboard", "tensorboard")

    def __init__(self, folder: str | Path, config: Mapping[str, Any] | None = None):
        super().__init__(config)
        self.folder = Path(folder)
        self.writer = None

    @classmethod
    def for_run(cls, folder: Path, config: Mapping[str, Any] | None) -> TensorBoardTracker:
        return cls(folder / "tensorboard", config)

    def start(self, params: dict[str, Any]) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(self.folder))
        table = "\n".join(f"| {k} | {v} |" for k, v in params.items())
        self.writer.add_text("config", f"| setting | value |\n|---|---|\n{table}")

    def log_metrics(self, values: dict[str, float], step: int) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)

    def finish(self) -> None:
        self.writer.close()
