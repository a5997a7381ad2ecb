"""`Run`: what `finetuner.fit` returns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from finetuner.model import EmbeddingModel


@dataclass
class Run:
    """The result of `fit`: the tuned model, its training history and its metrics before and after.

    Example:
        >>> run = finetuner.fit("efficientnet_lite0", "fashion-mnist", freeze=True, output_dim=128)  # doctest: +SKIP
        >>> run.metrics["after"]["map@r"] > run.metrics["before"]["map@r"]  # doctest: +SKIP
        True
    """

    model: EmbeddingModel
    history: list[dict[str, Any]]
    metrics: dict[str, dict[str, float]]
    config: dict[str, Any] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)

    def verdict(self) -> str:
        """One sentence: is the tuned model better than the untuned one, on all, seen and new classes, on the test
        data (else on validation data)? The demo's last line.

        Example:
            >>> run.verdict()  # doctest: +SKIP
            'test data: tuned is better than untuned on seen classes (recall@1 0.790 -> 0.846, ...); ...'
        """
        from finetuner.evaluation import verdict

        if "test" in self.metrics:
            said = verdict(self.metrics["test"]["before"], self.metrics["test"]["after"], data="test data")
            refit = (self.metrics.get("selection") or {}).get("refit")
            if refit and "new/" in " ".join(self.metrics["test"]["after"]):
                said += " (the refit trained on the held-out classes too: they are new to the validated model only)"
            return said
        if "after" in self.metrics:
            return verdict(self.metrics["before"], self.metrics["after"], data="validation data")
        return "no validation or test data: nothing says whether tuning helped"

    def encode(self, items: Sequence[Any], batch_size: int = 64, **kwargs: Any) -> np.ndarray:
        """Embeddings of raw items, L2-normalised (see `EmbeddingModel.encode`)."""
        return self.model.encode(items, batch_size, **kwargs)

    def predict(self, items: Sequence[Any], batch_size: int = 64) -> list[str]:
        """Class names for raw items (classification runs)."""
        return self.model.predict(items, batch_size)

    def save(self, folder: str | Path) -> Path:
        """Save the model (config JSON + safetensors + preprocessing); reload with `finetuner.load`."""
        return self.model.save(folder)

    def export(self, path: str | Path, format: str = "onnx", **options: Any) -> Path:
        """Export the model (``"onnx"``, ``"onnx-int8"``, ``"sentence-transformers"``, ``"timm"``); see
        `EmbeddingModel.export`."""
        return self.model.export(path, format, **options)

    def report(self, folder: str | Path) -> Path:
        """Write an HTML report (summary card, per-class before → after, example results, curves) to ``folder``."""
        from finetuner.report import write_report

        return write_report(
            folder,
            history=self.history,
            metrics=self.metrics,
            config=self.config,
            examples=self.examples or None,
            card=self.model.card_data,
        )
