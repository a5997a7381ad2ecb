"""`TrainConfig`: every knob of the training loop in one dataclass."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from finetuner.core.fields import check_fields, require

EMBEDDING_LEARNING_RATE = 1e-4  # frozen-probe recipe chosen on validation splits (QUALITY.md)
CLASSIFICATION_LEARNING_RATE = 1e-3


@dataclass
class TrainConfig:
    """Settings of one training run.

    Attributes:
        epochs: passes over the training data.
        batch_size: items per forward pass (per process under DDP).
        gradient_accumulation_steps: batches whose gradients add up before each optimizer step: the effective
            batch is ``batch_size * gradient_accumulation_steps``, and schedules count optimizer steps.
        mini_batch_size: run the model on at most this many items at once and cache the gradients (GradCache),
            so a pair loss with in-batch negatives sees the whole ``batch_size`` on the memory of this many
            (`CachedLoss`). None: one forward pass per batch.
        matryoshka_dims: also train each prefix of the embedding of these sizes (Matryoshka: the loss is summed
            over the truncated, renormalised prefixes), so ``encode(truncate_dim=...)`` stays good.
        logging_steps: log the training loss and learning rate every this many optimizer steps (to trackers).
        learning_rate: peak learning rate of the model's trainable parameters (None: the measured default of the
            task, `default_learning_rate`: 1e-4 for embeddings (QUALITY.md), 1e-3 for classifiers).
        backbone_learning_rate: peak learning rate of the trainable backbone parameters when they train together
            with a head (None: a tenth of ``learning_rate``, measured in QUALITY.md's full fine-tuning section;
            LoRA adapters train at ``learning_rate``).
        optimizer: ``adam``, ``adamw`` or ``sgd`` (any ``torch.optim`` class name works too).
        optimizer_options: extra arguments for the optimizer (``weight_decay``, ``momentum``, ...).
        loss_learning_rate: learning rate of the loss's own weights (ArcFace, proxies), in their own optimizer.
        scheduler: None, ``cosine`` or ``linear`` (decay to 0 after a linear warm-up).
        warmup_ratio: fraction of all steps spent warming up (with a ``scheduler``; a constant rate has none).
        grad_clip: clip the gradient norm to this value (None: no clipping).
        precision: ``auto`` (bf16 on CUDA when supported, else fp16 on CUDA; fp32 on CPU), ``fp32``,
            ``bf16`` (also on CPU) or ``fp16`` (CUDA).
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda``, ``cuda:1``, ...
        seed: seeds Python, NumPy and torch, and the batch order.
        num_items_per_class: items of each class in a batch for metric losses.
        num_workers: DataLoader workers, or ``auto``.
        compile: wrap the model in ``torch.compile`` (CUDA only).
        sync_batchnorm: under torchrun, compute BatchNorm statistics over the batches of all GPUs
            (``torch.nn.SyncBatchNorm``) when fine-tuning layers with BatchNorm; useful with small per-GPU batches.
        loss: a pytorch-metric-learning loss name or a finetuner pair loss name (None: the task's default:
            ``TripletMarginLoss`` for labelled data, ``CrossEntropyLoss`` for classification, the backend's pair
            loss for pairs, ``CorpusRankingLoss`` for a query-side adapter), or a module.
        miner: a pytorch-metric-learning miner name, or a module.
        loss_options: keyword arguments for the loss, e.g. {"margin": 0.1} (JSON on the command line).
        miner_options: keyword arguments for the miner, e.g. {"epsilon": 0.1}.
        keep_neighbourhood: weight of the neighbourhood-keeping term for a head on a frozen backbone's cached
            features (`finetuner.training.neighbourhood.NeighbourhoodLoss`: the frozen features' in-batch cosine
            similarities distilled into the head's); 0: off. Labelled metric losses only.
    """

    epochs: int = 15
    batch_size: int = 64
    gradient_accumulation_steps: int = 1
    mini_batch_size: int | None = None
    matryoshka_dims: tuple[int, ...] | None = None
    logging_steps: int = 10
    learning_rate: float | None = None
    backbone_learning_rate: float | None = None
    optimizer: str = "adam"
    optimizer_options: dict[str, Any] = field(default_factory=dict)
    loss_learning_rate: float = 1e-2
    scheduler: str | None = None
    warmup_ratio: float = 0.0
    grad_clip: float | None = None
    precision: str = "auto"
    device: str = "auto"
    seed: int = 0
    num_items_per_class: int = 4
    num_workers: int | str = "auto"
    compile: bool = False
    sync_batchnorm: bool = False
    loss: str | Any | None = None
    miner: str | Any | None = None
    loss_options: dict[str, Any] = field(default_factory=dict)
    miner_options: dict[str, Any] = field(default_factory=dict)
    keep_neighbourhood: float = 0.0

    def __post_init__(self) -> None:
        check_fields(self)  # types first: the checks below compare values of the right type
        require(self.epochs >= 1, "epochs", self.epochs, "at least 1")
        require(self.batch_size >= 2, "batch_size", self.batch_size, "at least 2 (a batch needs two items to compare)")
        weight = self.keep_neighbourhood
        require(weight >= 0, "keep_neighbourhood", weight, "a weight of at least 0 (0: off)")
        for name in ("gradient_accumulation_steps", "logging_steps"):
            require(getattr(self, name) >= 1, name, getattr(self, name), "a positive number of steps")
        if self.mini_batch_size is not None:
            size = self.mini_batch_size
            require(size >= 1, "mini_batch_size", size, "a positive number of items or None")
        if self.matryoshka_dims is not None:
            dims = self.matryoshka_dims
            require(bool(dims) and min(dims) >= 1, "matryoshka_dims", dims, "positive embedding sizes such as 256,64")
        for name in ("learning_rate", "backbone_learning_rate"):
            value = getattr(self, name)
            require(value is None or value > 0, name, value, "a positive number (or None for the default)")
        require(self.loss_learning_rate > 0, "loss_learning_rate", self.loss_learning_rate, "a positive number")
        require(self.scheduler in (None, "cosine", "linear"), "scheduler", self.scheduler, "None, 'cosine' or 'linear'")
        precisions = ("auto", "fp32", "bf16", "fp16")
        require(self.precision in precisions, "precision", self.precision, "one of " + ", ".join(precisions))
        require(0 <= self.warmup_ratio < 1, "warmup_ratio", self.warmup_ratio, "in [0, 1)")
        if self.grad_clip is not None:
            require(self.grad_clip > 0, "grad_clip", self.grad_clip, "a positive number such as 1.0, or None for none")
        require(self.seed >= 0, "seed", self.seed, "a whole number of at least 0")
        require(self.num_items_per_class >= 1, "num_items_per_class", self.num_items_per_class, "at least 1")
        workers = self.num_workers
        ok = workers == "auto" or isinstance(workers, int) and workers >= 0
        require(ok, "num_workers", workers, "'auto' or a number of DataLoader workers (0: the main process)")

    def default_learning_rate(self, task: str = "embedding") -> float:
        """``learning_rate``, or the measured default of ``task`` when it is None.

        Example:
            >>> TrainConfig().default_learning_rate("classification")
            0.001
        """
        if self.learning_rate is not None:
            return self.learning_rate
        return CLASSIFICATION_LEARNING_RATE if task == "classification" else EMBEDDING_LEARNING_RATE

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable view, for checkpoints and reports (a loss or miner module by its class name)."""
        values = asdict(self)
        for key in ("loss", "miner"):
            if values[key] is not None and not isinstance(values[key], str):
                values[key] = type(values[key]).__name__
        return values

