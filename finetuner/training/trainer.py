"""The one training loop, for every model kind: images or text, labels or pairs, cached features or not."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from finetuner.core.device import autocast, autocast_dtype, move_to, resolve_device
from finetuner.core.log import show_progress
from finetuner.core.tensors import compare_states, mismatch_summary, non_finite_tensors
from finetuner.training import distributed
from finetuner.training.batches import BatchSource
from finetuner.training.config import TrainConfig
from finetuner.training.divergence import TrainingDivergedError, diverged_error
from finetuner.training.losses import is_pair_loss
from finetuner.training.neighbourhood import takes_inputs
from finetuner.training.optim import build_optimizer, build_scheduler
from finetuner.training.state import trained_state

if TYPE_CHECKING:  # pragma: no cover
    from finetuner.training.callbacks import Callback

logger = logging.getLogger("finetuner")
# a backbone's own weights train at this fraction of the head's rate unless told (QUALITY.md, full fine-tuning:
# on fortunes' validation held-out classes 0.651 map@r against 0.640 at the head's rate)
BACKBONE_RATE_FACTOR = 0.1


class Trainer:
    """Trains ``model`` on ``batches`` with ``loss``; callbacks evaluate, checkpoint and stop early.

    Args:
        model: the module to train; frozen parts (``requires_grad=False``) stay untouched.
        loss: ``loss(embeddings, labels[, indices_tuple])``, ``CrossEntropyLoss`` on logits, or a `PairLoss`,
            which runs the model on each batch itself (``forward_batch``; `CachedLoss` does so in chunks).
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
        # optimizer steps per epoch: each covers gradient_accumulation_steps batches (the last one may cover fewer)
        self.steps_per_epoch = -(-max(1, len(batches)) // config.gradient_accumulation_steps)
        self.log_history: list[dict[str, Any]] = []
        self._logged_loss, self._logged_steps = torch.zeros(()), 0

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
        rate = config.default_learning_rate()
        groups = self.parameter_groups(params)
        self.optimizers = [build_optimizer(groups, config.optimizer, rate, **config.optimizer_options)]
        loss_params = [p for p in self.loss.parameters() if p.requires_grad]
        if loss_params:  # ArcFace / proxy weights learn at their own, usually larger, rate
            self.optimizers.append(build_optimizer(loss_params, config.optimizer, config.loss_learning_rate))
        total_steps = config.epochs * self.steps_per_epoch
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
        self._logged_loss = torch.zeros((), device=self.device)
        if self._resume_state is not None:
            self._restore(self._resume_state)
        return model

    def parameter_groups(self, params: list[nn.Parameter]) -> list[nn.Parameter] | list[dict[str, Any]]:
        """The trainable parameters, split into the backbone's and the rest when the model has a backbone whose
        own weights train beside a head: the backbone at ``backbone_learning_rate``, by default a tenth of the
        head's rate (`BACKBONE_RATE_FACTOR`; LoRA adapters, which start at zero, keep the head's rate)."""
        backbone = getattr(self.model, "backbone", None)
        if backbone is None:
            return params
        named = {id(p): name for name, p in backbone.named_parameters()}
        inside = [p for p in params if id(p) in named]
        outside = [p for p in params if id(p) not in named]
        rate = self.config.backbone_learning_rate
        if rate is None and inside and outside and not any("lora_" in named[id(p)] for p in inside):
            rate = self.config.default_learning_rate() * BACKBONE_RATE_FACTOR
        if rate is None:
            return params
        groups = [{"params": inside, "lr": rate}, {"params": outside}]
        return [group for group in groups if group["params"]]

    def compute_loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        """The loss of one batch: ``(inputs, labels)``, or ``(queries, documents, scores, negatives)`` for pairs
        (scores and hard negatives may be None)."""
        if is_pair_loss(self.loss):  # the loss runs the model: plainly, or in chunks (CachedLoss)
            return self.loss.forward_batch(model, batch)
        inputs, labels = batch
        outputs = model(inputs).float()
        if isinstance(self.loss, nn.CrossEntropyLoss):
            return self.loss(outputs, labels)
        indices = self.miner(outputs, labels) if self.miner is not None else None
        if takes_inputs(self.loss):  # NeighbourhoodLoss: the head's input is the frozen feature it keeps
            return self.loss(outputs, labels, indices, inputs=inputs)
        return self.loss(outputs, labels, indices)

    def fit(self) -> list[dict[str, Any]]:
        """Run the loop for ``config.epochs`` (from the resumed epoch, if any) and return the history.

        Raises:
            TrainingDivergedError: the loss or the weights became NaN/infinite; the epoch's callbacks (and so
                its checkpoints) do not run.
        """
        for callback in self.callbacks:
            callback.check(self)
        model = self._setup()
        # Some buffers hold infinities by design (attention masks of -inf): only those that training turns
        # non-finite count.
        masks = set(non_finite_tensors(self.model.named_buffers()))
        saved = (self._resume_state or {}).get("callbacks") or []
        for callback, (name, state) in zip(self.callbacks, saved):
            if state is not None and name == type(callback).__name__:  # same callbacks as the interrupted run
                callback.load_state_dict(state)
        for callback in self.callbacks:
            callback.on_fit_start(self)
        accumulation = self.config.gradient_accumulation_steps
        for epoch in range(self.epoch, self.config.epochs):
            self.epoch = epoch
            model.train()
            # Summed on device, with no host sync per step: the loss of finite steps, the count of non-finite
            # ones (fp16 overflows that GradScaler skips, or divergence) and the first such step.
            total = torch.zeros((), device=self.device)
            skipped = torch.zeros((), device=self.device)
            first_bad = torch.full((), -1, device=self.device, dtype=torch.long)
            step_loss = torch.zeros((), device=self.device)  # the loss of the optimizer step being accumulated
            steps = pending = 0  # batches this epoch, and those whose gradients wait for the optimizer step
            bar = tqdm(
                self.batches.epoch(epoch),
                total=len(self.batches),
                desc=f"{self.description} epoch {epoch + 1}/{self.config.epochs}",
                disable=not (distributed.is_main_process() and show_progress()),
                leave=False,
            )
            for batch in bar:
                batch = move_to(batch, self.device, channels_last=True)
                with autocast(self.device, self.autocast_dtype):
                    loss = self.compute_loss(model, batch)
                # Accumulated batches add their gradients; dividing by the group's size makes the step follow the
                # mean loss of the effective batch. GradScaler is a no-op unless fp16: it keeps small fp16
                # gradients from underflowing.
                group = max(1, min(accumulation, len(self.batches) - steps + pending))
                self.scaler.scale(loss / group).backward()
                finite = torch.isfinite(loss.detach())
                total += torch.where(finite, loss.detach().float(), 0.0)
                skipped += (~finite).float()
                first_bad = torch.where(finite | (first_bad >= 0), first_bad, self.global_step + 1)
                step_loss += loss.detach() / group
                steps, pending = steps + 1, pending + 1
                if pending == accumulation or steps == len(self.batches):
                    self.optimizer_step(step_loss)
                    step_loss, pending = torch.zeros((), device=self.device), 0
                if steps % 20 == 0:  # an occasional sync for the progress bar and the loss check, not one per step
                    loss_sum, bad_steps, bad_step = torch.stack([total, skipped, first_bad.float()]).tolist()
                    if distributed.world_size() == 1:  # under DDP, ranks check together at the epoch's end
                        self._check_loss(bad_steps, steps, int(bad_step))
                    bar.set_postfix(loss=f"{loss_sum / max(1.0, steps - bad_steps):.4f}")
            if pending:  # a source that gave fewer batches than its len()
                self.optimizer_step(step_loss)
            if steps == 0:
                raise ValueError("An epoch produced no batch: the training data is smaller than two items per batch.")
            # One collective: every rank learns the mean loss and whether any rank saw a non-finite one.
            loss_sum, bad_steps = distributed.average(torch.stack([total, skipped])).tolist()
            self._check_loss(bad_steps, steps, int(first_bad.item()))
            self._check_weights(masks)
            self.history.append({"epoch": epoch + 1, "loss": loss_sum / (steps - bad_steps)})
            for callback in self.callbacks:
                callback.on_epoch_end(self)
            # trackers get the epoch's record as it stands in the history: "epoch/loss", "eval/..." as they are
            self.log({(k if "/" in k else f"epoch/{k}"): v for k, v in self.history[-1].items() if k != "epoch"})
            if distributed.is_main_process():
                logger.info("epoch %d/%d %s", epoch + 1, self.config.epochs, _format(self.history[-1]))
            self.epoch = epoch + 1
            if self.should_stop:
                break
        for callback in self.callbacks:
            callback.on_fit_end(self)
        return self.history

    def _check_loss(self, bad_steps: float, steps: int, first_bad: int) -> None:
        """Stop on a non-finite loss. Under fp16, GradScaler skips overflowing steps and lowers its scale: that
        is normal, unless no step of the epoch had a finite loss."""
        if not bad_steps or (self.scaler.is_enabled() and bad_steps < steps):
            return
        what = "the loss is not finite (nan or inf)"
        if self.scaler.is_enabled():
            what = f"every step of the epoch so far had a non-finite loss under fp16 ({steps} steps)"
        step = first_bad if first_bad > 0 else self.global_step
        raise self._diverged(what, step)

    def _check_weights(self, masks: set[str]) -> None:
        """Stop when a trained weight or a buffer (BatchNorm statistics) is no longer finite (buffers in
        ``masks`` were not finite to begin with): once an epoch, one host sync."""
        named = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        named += [(n, b) for n, b in self.model.named_buffers() if n not in masks]
        named += [(f"loss.{n}", p) for n, p in self.loss.named_parameters()]
        bad = non_finite_tensors(named)
        if bad:
            shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
            raise self._diverged(f"non-finite (NaN or inf) weights in {shown}", self.global_step)

    def _diverged(self, what: str, step: int) -> TrainingDivergedError:
        checkpoints = [folder for callback in self.callbacks for folder in callback.checkpoint_folders()]
        return diverged_error(
            what,
            step=step,
            epoch=self.epoch,
            config=self.config,
            autocast_dtype=self.autocast_dtype,
            checkpoints=checkpoints,
        )

    def optimizer_step(self, step_loss: torch.Tensor) -> None:
        """Clip, step every optimizer and scheduler, zero the gradients; then ``on_step_end`` callbacks, and every
        ``logging_steps`` a log record of the mean loss since the last one and the learning rate."""
        if self.config.grad_clip is not None:
            for optimizer in self.optimizers:
                self.scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(self.trainable_parameters(), self.config.grad_clip)
        learning_rate = self.optimizers[0].param_groups[0]["lr"]  # the rate of this step, before the schedule moves
        for optimizer in self.optimizers:
            self.scaler.step(optimizer)
        self.scaler.update()
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=True)
        for scheduler in self.schedulers:
            if scheduler is not None:
                scheduler.step()
        self.global_step += 1
        self._logged_loss += step_loss
        self._logged_steps += 1
        if self.global_step % self.config.logging_steps == 0:
            loss = distributed.average(self._logged_loss / self._logged_steps).item()
            self.log({"train/loss": loss, "train/learning_rate": learning_rate})
            self._logged_loss, self._logged_steps = torch.zeros((), device=self.device), 0
        for callback in self.callbacks:
            callback.on_step_end(self)

    def log(self, values: dict[str, float]) -> None:
        """Record ``values`` at the current optimizer step: appended to ``log_history`` as ``{"step": ...,
        **values}`` and handed to every callback's ``on_log`` (trackers write them)."""
        record = {"step": self.global_step, **values}
        self.log_history.append(record)
        for callback in self.callbacks:
            callback.on_log(self, record)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: the weights that train (`trained_state`: frozen ones are left out),
        optimizers, schedulers, scaler, epoch, history, RNG."""
        return {
            "model": trained_state(self.model),
            "loss": self.loss.state_dict(),
            "optimizers": [o.state_dict() for o in self.optimizers],
            "schedulers": [s.state_dict() if s is not None else None for s in self.schedulers],
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "epoch": self.epoch,
            "global_step": self.global_step,
            "history": self.history,
            "torch_rng": torch.get_rng_state(),
            "callbacks": [(type(callback).__name__, callback.state_dict()) for callback in self.callbacks],
            "objective": objective_name(self.loss),
        }

    def resume_from(self, state: dict[str, Any]) -> None:
        """Continue from a `state_dict` (applied once the optimizers exist, at the start of `fit`).

        Raises:
            ValueError: the state belongs to another model (other layers or shapes) or is past ``config.epochs``.
        """
        source = state.get("source", "the checkpoint")
        current = self.model.state_dict()
        frozen = {name for name, parameter in self.model.named_parameters() if not parameter.requires_grad}
        missing, unexpected, wrong_shapes = compare_states(current, state["model"])
        missing = [name for name in missing if name not in frozen]  # frozen weights are not in checkpoints
        problems = mismatch_summary(missing, unexpected, wrong_shapes)
        if problems:
            raise ValueError(
                f"{source} was written for another model: {problems}. Resume with the same model, layer_name, "
                "head and output_dim as the run that wrote it, or start without resume_from (CLI: start without "
                "--resume, or point --output-dir at this model's run)."
            )
        saved, objective = state.get("objective"), objective_name(self.loss)
        if saved is not None and saved != objective:  # checkpoints from before the objective was saved pass
            raise ValueError(
                f"{source} was trained with the loss {saved}, this run uses {objective}: resume with the same loss "
                "(and loss_options), or start without resume_from (CLI: without --resume, or another --output-dir)."
            )
        if state["epoch"] > self.config.epochs:
            raise ValueError(
                f"{source} is at epoch {state['epoch']}, past epochs={self.config.epochs}: pass epochs="
                f"{state['epoch']} or more to continue it."
            )
        self.model.load_state_dict(state["model"], strict=False)  # frozen weights never change
        self.epoch, self.global_step, self.history = state["epoch"], state["global_step"], list(state["history"])
        self._resume_state = state

    def _restore(self, state: dict[str, Any]) -> None:
        problem = mismatch_summary(*compare_states(self.loss.state_dict(), state["loss"]))
        if not problem and len(state["optimizers"]) != len(self.optimizers):
            problem = f"{len(state['optimizers'])} optimizer(s) saved, {len(self.optimizers)} here"
        if not problem:
            try:
                self.loss.load_state_dict(state["loss"])
                for optimizer, saved in zip(self.optimizers, state["optimizers"]):
                    optimizer.load_state_dict(saved)
            except (RuntimeError, ValueError, KeyError) as error:  # e.g. parameter groups of other sizes
                problem = " ".join(str(error).split())
        if problem:
            raise ValueError(
                f"{state.get('source', 'the checkpoint')} does not fit this run's loss or optimizer ({problem}). "
                "Resume with the same loss, loss_options and optimizer as the run that wrote it."
            )
        for scheduler, saved in zip(self.schedulers, state["schedulers"]):
            if scheduler is not None and saved is not None:
                scheduler.load_state_dict(saved)
        if state.get("scaler") and self.scaler is not None:
            self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"])


_LOGGED = ("recall@1", "map@r", "accuracy", "seen/recall@1", "seen/map@r", "new/recall@1", "new/map@r")


def _format(record: dict[str, Any]) -> str:
    """The few numbers worth a log line, named as the selection and the report name them (the history keeps its
    ``eval/`` keys, which callbacks monitor); the whole record stays in the history."""
    shown = [f"loss={record['loss']:.4f}"] if "loss" in record else []
    validation = [f"{k}={record['eval/' + k]:.4f}" for k in _LOGGED if "eval/" + k in record]
    return " ".join(shown + (["validation:", *validation] if validation else []))


def objective_name(loss: nn.Module) -> str:
    """The loss by its class, wrappers with their inner loss (``MatryoshkaLoss(TripletMarginLoss)``): what a
    resumed run must train with again.

    Example:
        >>> objective_name(torch.nn.CrossEntropyLoss())
        'CrossEntropyLoss'
    """
    inner = getattr(loss, "loss", None)
    name = type(loss).__name__
    return f"{name}({objective_name(inner)})" if isinstance(inner, nn.Module) and inner is not loss else name
