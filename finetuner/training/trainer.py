"""The one training loop, for every model kind: images or text, labels or pairs, cached features or not."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from finetuner.core.device import autocast, autocast_dtype, move_to, resolve_device
from finetuner.training import distributed
from finetuner.training.batches import BatchSource
from finetuner.training.callbacks import Callback
from finetuner.training.config import TrainConfig
from finetuner.training.losses import is_pair_loss
from finetuner.training.optim import build_optimizer, build_scheduler

logger = logging.getLogger("finetuner")


class Trainer:
    """Trains ``model`` on ``batches`` with ``loss``; callbacks evaluate, checkpoint and stop early.

    Args:
        model: the module to train; frozen parts (``requires_grad=False``) stay untouched.
        loss: ``loss(embeddings, labels[, indices_tuple])``, ``CrossEntropyLoss`` on logits, or a pair loss
            ``loss(query_embeddings, document_embeddings[, scores])``.
        batches: a `BatchSource` (``len()`` steps per epoch, ``epoch(e)`` iterates batches).
        config: the `TrainConfig`.
        miner: optional pytorch-metric-learning miner for metric losses.
        callbacks: `Callback` objects.
        evaluate: ``evaluate() -> metrics`` of the model being trained (what `EvaluationCallback` records).
        encode: ``encode(items) -> (N, D)`` raw items to vectors (for an `EvaluationCallback` with its own data).
        save_model: ``save_model(folder)`` writes the whole model (for `BestModelCheckpoint`).

    Example:
        >>> trainer = Trainer(head, loss, TensorBatches([features], labels, sampler), TrainConfig(epochs=3))
        >>> history = trainer.fit()  # doctest: +SKIP
    """

    def __init__(
        self,
        model: nn.Module,
        loss: nn.Module,
        batches: BatchSource,
        config: TrainConfig,
        *,
        miner: nn.Module | None = None,
        callbacks: Sequence[Callback] = (),
        evaluate: Callable[[], dict[str, float]] | None = None,
        encode: Callable[[list], np.ndarray] | None = None,
        save_model: Callable[[str], Any] | None = None,
        description: str = "train",
    ):
        self.model, self.loss, self.miner, self.batches, self.config = model, loss, miner, batches, config
        self.callbacks = list(callbacks)
        self.description = description
        self.device = resolve_device(config.device)
        self.history: list[dict[str, Any]] = []
        self.metrics: dict[str, float] = {}
        self.epoch = 0
        self.global_step = 0
        self.should_stop = False
        self.evaluate, self.encode, self.save_model = evaluate, encode, save_model
        self._resume_state: dict[str, Any] | None = None
        self.optimizers: list[torch.optim.Optimizer] = []
        self.schedulers: list[Any] = []
        self.scaler: torch.amp.GradScaler | None = None

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def _setup(self) -> nn.Module:
        params = self.trainable_parameters()
        if not params:
            raise ValueError(
                "Nothing to train: every parameter of the model is frozen. Attach a head (output_dim=...) or "
                "freeze fewer layers."
            )
        # channels_last speeds up convolutions on CUDA and CPU alike, and every DDP replica must share one layout
        # (inference may already have converted the model on rank 0).
        self.model.to(self.device, memory_format=torch.channels_last)
        self.loss.to(self.device)
        config = self.config
        self.optimizers = [build_optimizer(params, config.optimizer, config.learning_rate, **config.optimizer_options)]
        loss_params = [p for p in self.loss.parameters() if p.requires_grad]
        if loss_params:  # ArcFace / proxy weights learn at their own, usually larger, rate
            self.optimizers.append(build_optimizer(loss_params, config.optimizer, config.loss_learning_rate))
        total_steps = config.epochs * max(1, len(self.batches))
        self.schedulers = [
            build_scheduler(o, config.scheduler, total_steps, config.warmup_ratio) for o in self.optimizers
        ]
        self.autocast_dtype = autocast_dtype(config.precision, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.autocast_dtype == torch.float16)
        sharded = distributed.shards_batches(self.batches)  # ranks that all see every batch need no DDP
        model = distributed.wrap_model(self.model, self.device, sharded=sharded, sync_batchnorm=config.sync_batchnorm)
        if config.compile and self.device.type == "cuda":
            model = torch.compile(model)
        self.loss = distributed.wrap_loss(self.loss, sharded=sharded)
        if self._resume_state is not None:
            self._restore(self._resume_state)
        return model

    def compute_loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        """The loss of one batch: ``(inputs, labels)``, or ``(queries, documents, scores, negatives)`` for pairs
        (scores and hard negatives may be None)."""
        if is_pair_loss(self.loss):
            queries, documents, scores, negatives = batch
            hard = {} if negatives is None else {"negatives": model(negatives).float()}
            return self.loss(model(queries).float(), model(documents).float(), scores, **hard)
        inputs, labels = batch
        outputs = model(inputs).float()
        if isinstance(self.loss, nn.CrossEntropyLoss):
            return self.loss(outputs, labels)
        indices = self.miner(outputs, labels) if self.miner is not None else None
        return self.loss(outputs, labels, indices)

    def fit(self) -> list[dict[str, Any]]:
        """Run the loop for ``config.epochs`` (from the resumed epoch, if any) and return the history."""
        for callback in self.callbacks:
            callback.check(self)
        model = self._setup()
        saved = (self._resume_state or {}).get("callbacks") or []
        for callback, (name, state) in zip(self.callbacks, saved):
            if state is not None and name == type(callback).__name__:  # same callbacks as the interrupted run
                callback.load_state_dict(state)
        for callback in self.callbacks:
            callback.on_fit_start(self)
        for epoch in range(self.epoch, self.config.epochs):
            self.epoch = epoch
            model.train()
            total = torch.zeros((), device=self.device)  # summed on device: no host sync per step
            steps = 0
            bar = tqdm(
                self.batches.epoch(epoch),
                total=len(self.batches),
                desc=f"{self.description} epoch {epoch + 1}/{self.config.epochs}",
                disable=not distributed.is_main_process(),
                leave=False,
            )
            for batch in bar:
                batch = move_to(batch, self.device, channels_last=True)
                with autocast(self.device, self.autocast_dtype):
                    loss = self.compute_loss(model, batch)
                # GradScaler is a no-op unless fp16: it keeps small fp16 gradients from underflowing.
                self.scaler.scale(loss).backward()
                if self.config.grad_clip is not None:
                    for optimizer in self.optimizers:
                        self.scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(self.trainable_parameters(), self.config.grad_clip)
                for optimizer in self.optimizers:
                    self.scaler.step(optimizer)
                self.scaler.update()
                for optimizer in self.optimizers:
                    optimizer.zero_grad(set_to_none=True)
                for scheduler in self.schedulers:
                    if scheduler is not None:
                        scheduler.step()
                total += loss.detach()
                steps += 1
                self.global_step += 1
                if steps % 20 == 0:  # an occasional sync for the progress bar, not one per step
                    bar.set_postfix(loss=f"{total.item() / steps:.4f}")
            if steps == 0:
                raise ValueError("An epoch produced no batch: the training data is smaller than two items per batch.")
            mean_loss = distributed.average(total / steps).item()
            self.history.append({"epoch": epoch + 1, "loss": mean_loss})
            for callback in self.callbacks:
                callback.on_epoch_end(self)
            if distributed.is_main_process():
                logger.info("epoch %d/%d %s", epoch + 1, self.config.epochs, _format(self.history[-1]))
            self.epoch = epoch + 1
            if self.should_stop:
                break
        for callback in self.callbacks:
            callback.on_fit_end(self)
        return self.history

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: weights, optimizers, schedulers, scaler, epoch, history, RNG."""
        return {
            "model": self.model.state_dict(),
            "loss": self.loss.state_dict(),
            "optimizers": [o.state_dict() for o in self.optimizers],
            "schedulers": [s.state_dict() if s is not None else None for s in self.schedulers],
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "epoch": self.epoch,
            "global_step": self.global_step,
            "history": self.history,
            "torch_rng": torch.get_rng_state(),
            "callbacks": [(type(callback).__name__, callback.state_dict()) for callback in self.callbacks],
        }

    def resume_from(self, state: dict[str, Any]) -> None:
        """Continue from a `state_dict` (applied once the optimizers exist, at the start of `fit`)."""
        self.model.load_state_dict(state["model"])
        self.epoch, self.global_step, self.history = state["epoch"], state["global_step"], list(state["history"])
        self._resume_state = state

    def _restore(self, state: dict[str, Any]) -> None:
        self.loss.load_state_dict(state["loss"])
        for optimizer, saved in zip(self.optimizers, state["optimizers"]):
            optimizer.load_state_dict(saved)
        for scheduler, saved in zip(self.schedulers, state["schedulers"]):
            if scheduler is not None and saved is not None:
                scheduler.load_state_dict(saved)
        if state.get("scaler") and self.scaler is not None:
            self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"])


_LOGGED = ("loss", "eval/recall@1", "eval/map@r", "eval/accuracy", "eval/mrr")


def _format(record: dict[str, Any]) -> str:
    """The few numbers worth a log line; the whole record stays in the history."""
    return " ".join(f"{k}={record[k]:.4f}" for k in _LOGGED if k in record)
