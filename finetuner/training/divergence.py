"""What stops a run whose loss or weights stopped being numbers, and the message that says why."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from finetuner.training.config import TrainConfig


class TrainingDivergedError(ValueError):
    """Training produced a NaN/infinite loss or NaN/infinite weights; nothing from that epoch was saved.

    Raised by `Trainer.fit` before the epoch's callbacks run, so checkpoints and best models of earlier epochs
    stay as they were. The message names the step, the epoch and the likely causes.

    Example:
        >>> from finetuner.training import TrainingDivergedError
        >>> try:
        ...     finetuner.fit("test_cnn", data, learning_rate=1e9)  # doctest: +SKIP
        ... except TrainingDivergedError as error:
        ...     print(error)  # doctest: +SKIP
        Training diverged at step 7 (epoch 1/10): the loss is nan. ...
    """


def diverged_error(
    what: str,
    *,
    step: int,
    epoch: int,
    config: TrainConfig,
    autocast_dtype: torch.dtype | None,
    checkpoints: Sequence[Path] = (),
) -> TrainingDivergedError:
    """The `TrainingDivergedError` for ``what`` went wrong (``"the loss is nan"``, ``"weights head.0.weight are
    not finite"``) at ``step`` (1-based, counted over the whole run) of ``epoch`` (0-based)."""
    rate = config.default_learning_rate()
    causes = [f"a learning rate too high for this model (learning_rate={rate:g}: try 10x lower)"]
    if config.grad_clip is None:
        causes.append("exploding gradients (try grad_clip=1.0)")
    if autocast_dtype is not None:
        name = {torch.float16: "fp16", torch.bfloat16: "bf16"}.get(autocast_dtype, str(autocast_dtype))
        causes.append(f"16-bit overflow (the run uses {name} autocast: try precision='fp32')")
    kept = (
        f" Checkpoints of earlier epochs are kept in {', '.join(str(c) for c in checkpoints)}."
        if checkpoints
        else ""
    )
    return TrainingDivergedError(
        f"Training diverged at step {step} (epoch {epoch + 1}/{config.epochs}): {what}. Likely causes: "
        f"{'; '.join(causes)}. Nothing from this epoch was saved.{kept}"
    )
