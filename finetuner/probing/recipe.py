"""The short training recipe of a probe: a head trained on cached features with `Trainer`, scored on validation."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from finetuner.core.device import seed_everything
from finetuner.data import ClassBalancedSampler
from finetuner.evaluation import retrieval_metrics
from finetuner.tailor import create_head
from finetuner.training import Callback, TrainConfig, Trainer, build_loss, build_miner
from finetuner.training.batches import BatchSource, TensorBatches
from finetuner.training.losses import needs_two_classes

HEAD_KINDS = ("none", "linear", "projection", "residual")


@dataclass
class Recipe:
    """How each probed head trains: the settings `fit` takes under the same names.

    Attributes:
        loss: a pytorch-metric-learning loss name (or module).
        miner: a pytorch-metric-learning miner name, or None.
        loss_options, miner_options: their keyword arguments.
        epochs, batch_size, learning_rate, optimizer, num_items_per_class: as in `TrainConfig`.
        precision, device, seed: as in `TrainConfig`; also used for the backbone's forward pass.

    Example:
        >>> Recipe(epochs=3, loss="MultiSimilarityLoss").config().epochs
        3
    """

    loss: str | nn.Module = "TripletMarginLoss"
    miner: str | nn.Module | None = None
    loss_options: dict[str, Any] = field(default_factory=dict)
    miner_options: dict[str, Any] = field(default_factory=dict)
    epochs: int = 5
    batch_size: int = 64
    learning_rate: float | None = None
    optimizer: str = "adam"
    num_items_per_class: int = 4
    precision: str = "auto"
    device: str = "auto"
    seed: int = 0

    def config(self) -> TrainConfig:
        """The `TrainConfig` of one head's training."""
        return TrainConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            optimizer=self.optimizer,
            precision=self.precision,
            device=self.device,
            seed=self.seed,
            num_items_per_class=self.num_items_per_class,
            num_workers=0,
        )

    @classmethod
    def from_training(cls, training: TrainConfig, *, keep: Sequence[str] = ("epochs",)) -> Recipe:
        """The recipe of a `TrainConfig` (what `fit(layer_name="auto")` probes with); the fields in ``keep`` stay at
        the probe's own defaults (a short run: ``epochs``).

        Example:
            >>> Recipe.from_training(TrainConfig(learning_rate=3e-4)).learning_rate
            0.0003
        """
        names = [f.name for f in dataclasses.fields(cls) if f.name not in keep]
        values = {name: getattr(training, name) for name in names}
        return cls(**{**values, "loss": values["loss"] or cls.loss})

    def replace(self, **changes: Any) -> Recipe:
        """A copy with some settings changed (unknown names raise ``ValueError``)."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ValueError(f"Unknown recipe settings {unknown}; known: {sorted(names)}.")
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class HeadSpec:
    """A head to probe: ``kind`` (``none``: the features as they are, ``linear``, ``projection``) and its output
    size (the feature size for ``none``, filled in per layer)."""

    kind: str
    output_dim: int | None = None

    @classmethod
    def parse(cls, text: str) -> HeadSpec:
        """``"none"``, ``"linear:128"`` or ``"projection:256"``.

        Example:
            >>> HeadSpec.parse("projection:64")
            HeadSpec(kind='projection', output_dim=64)
        """
        kind, _, size = str(text).partition(":")
        if kind not in HEAD_KINDS or (kind == "none") != (size == "") or (size and not size.isdigit()):
            raise ValueError(
                f"Unknown head {text!r}: use 'none', 'linear:<size>' or 'projection:<size>', e.g. 'projection:128'."
            )
        return cls(kind, int(size) if size else None)


def train_head(
    features: torch.Tensor,
    labels: Sequence[int],
    head: HeadSpec,
    recipe: Recipe,
    *,
    num_classes: int,
    callbacks: Sequence[Callback] = (),
) -> nn.Module:
    """Train a fresh head of kind ``head`` on cached ``features`` ``(N, D)`` the way `fit` trains a head on a frozen
    backbone's cached features: class-balanced batches from `TensorBatches`, the recipe's loss and miner, `Trainer`.

    Returns:
        The trained head, in eval mode.

    Raises:
        ValueError: the ``none`` head, or a loss that does not compare items of different classes
            (classification or pair losses).

    Example:
        >>> head = train_head(features, labels, HeadSpec("linear", 64), Recipe(epochs=2), num_classes=10)
        ... # doctest: +SKIP
    """
    return train_heads([features], labels, [head], recipe, num_classes=num_classes, callbacks=callbacks)[0]


def train_heads(
    features: Sequence[torch.Tensor],
    labels: Sequence[int],
    heads: Sequence[HeadSpec],
    recipe: Recipe,
    *,
    num_classes: int,
    callbacks: Sequence[Callback] = (),
) -> list[nn.Module]:
    """Train head ``heads[i]`` on ``features[i]`` for every ``i``, all in one training loop (`train_together`):
    what `train_head` gives for each, at about the cost of one.

    Every head sees the batches `train_head` would give it (one class-balanced sampler of the recipe's seed picks
    the rows of every layer) and starts from the weights it would start from (the seed is set before each head is
    built). Heads on the same layer share the layer's rows (pass the same tensor).

    Returns:
        The trained heads, in eval mode, in the order of ``heads``.

    Raises:
        ValueError: a ``none`` head, features and heads of different lengths, or a loss that does not compare items
            of different classes (classification or pair losses).

    Example:
        >>> linear, residual = train_heads(
        ...     [layer3, layer4], labels, [HeadSpec("linear", 64), HeadSpec("residual", 128)], Recipe(), num_classes=10
        ... )  # doctest: +SKIP
    """
    if len(features) != len(heads) or not heads:
        raise ValueError(f"train_heads takes one features tensor per head, got {len(features)} and {len(heads)}.")
    if any(head.kind == "none" for head in heads):
        raise ValueError("The 'none' head has nothing to train: evaluate the features as they are.")
    modules, losses = [], []
    for rows, head in zip(features, heads):
        seed_everything(recipe.seed)
        module = create_head(head.kind, rows.shape[1], head.output_dim)
        sample = torch.randperm(len(rows), generator=torch.Generator().manual_seed(0))[:4096]
        module.initialize(rows[sample].float())  # as fit does: e.g. the residual head starts at the PCA
        loss = build_loss(recipe.loss, num_classes=num_classes, embedding_dim=head.output_dim, **recipe.loss_options)
        if not needs_two_classes(loss):
            raise ValueError(
                f"probe trains embedding heads with metric-learning losses; {type(loss).__name__} is not one "
                "(use e.g. TripletMarginLoss or MultiSimilarityLoss)."
            )
        modules.append(module)
        losses.append(loss)
    config = recipe.config()
    sampler = ClassBalancedSampler(list(labels), config.num_items_per_class, config.batch_size, seed=config.seed)
    targets = torch.as_tensor(list(labels))
    layers = {id(rows): TensorBatches([rows], targets, sampler) for rows in features}  # each distinct layer once
    miner = build_miner(recipe.miner, **recipe.miner_options)
    description = f"probe {heads[0].kind}" if len(heads) == 1 else f"probe {len(heads)} heads"
    return train_together(
        modules, losses, [layers[id(rows)] for rows in features], config,
        miners=[copy.deepcopy(miner) for _ in modules], callbacks=callbacks, description=description,
    )  # fmt: skip


def train_together(
    heads: Sequence[nn.Module],
    losses: Sequence[nn.Module],
    batches: Sequence[BatchSource],
    config: TrainConfig,
    *,
    miners: Sequence[nn.Module | None] | None = None,
    callbacks: Sequence[Callback] = (),
    description: str = "heads",
) -> list[nn.Module]:
    """Train ``heads[i]`` with ``losses[i]`` (mined by ``miners[i]``) on the batches of ``batches[i]``, every
    ``i`` in one `Trainer` loop: what ``Trainer(heads[i], losses[i], batches[i], config).fit()`` gives each head,
    at the cost of one loop.

    Step ``t`` of the loop takes batch ``t`` of every source (so the sources must have as many batches an epoch;
    heads that share a source object share its batches), runs each head on its source's inputs, and minimises the
    sum of the heads' losses, whose gradient with respect to a head's weights is that head's own; the optimizers
    are element-wise (Adam, SGD, ...). So each head ends as it would trained alone, up to float rounding (random
    layers such as dropout draw from one generator, so they differ), while the backward pass, the optimizer step
    and the loop's bookkeeping run once a step for all. Adam and AdamW run fused (one kernel over all weights)
    unless ``config.optimizer_options`` says otherwise. With ``grad_clip``, which clips each head's own gradient
    norm, the heads train one after another.

    Returns:
        The trained heads (the same modules), in eval mode.

    Raises:
        ValueError: lists of different lengths, or sources with different numbers of batches.

    Example:
        >>> sampler = ClassBalancedSampler(labels, 4, 64)
        >>> first, second = train_together(
        ...     [head, copy.deepcopy(head)], [loss, copy.deepcopy(loss)],
        ...     [TensorBatches([features], labels, sampler), TensorBatches([features], shuffled, sampler)], config,
        ... )  # doctest: +SKIP
    """
    miners = [None] * len(heads) if miners is None else list(miners)
    if not heads or not len(heads) == len(losses) == len(batches) == len(miners):
        raise ValueError(
            f"train_together takes one loss, batch source (and miner) per head, got {len(heads)} heads, "
            f"{len(losses)} losses, {len(batches)} sources and {len(miners)} miners."
        )
    config = fused_optimizer(config)
    if len(heads) == 1 or config.grad_clip is not None:
        for head, loss, source, miner in zip(heads, losses, batches, miners):
            Trainer(head, loss, source, config, miner=miner, callbacks=callbacks, description=description).fit()
        return [head.eval() for head in heads]
    sources = list({id(source): source for source in batches}.values())
    reads = [next(i for i, s in enumerate(sources) if s is source) for source in batches]
    joined = BatchesTogether(sources)
    model = HeadsTogether(heads, reads, output_widths(heads, reads, joined))
    loss = SummedLoss(losses, miners, model.outputs, reads)
    Trainer(model, loss, joined, config, callbacks=callbacks, description=description).fit()
    return [head.eval() for head in heads]


def fused_optimizer(config: TrainConfig) -> TrainConfig:
    """``config`` with ``fused=True`` for Adam and AdamW (one kernel a step over all weights, about 3x faster on
    a CPU than the default per-tensor loop), unless its ``optimizer_options`` choose an implementation."""
    chosen = {"fused", "foreach"} & set(config.optimizer_options)
    if config.optimizer.lower() not in ("adam", "adamw") or chosen:
        return config
    return dataclasses.replace(config, optimizer_options={**config.optimizer_options, "fused": True})


class BatchesTogether(BatchSource):
    """Several batch sources step by step: batch ``t`` is ``([inputs of each source], [labels of each source])``.

    Example:
        >>> sampler = ClassBalancedSampler([0, 0, 1, 1], 2, 4)
        >>> both = BatchesTogether([TensorBatches([torch.zeros(4, 3)], torch.tensor([0, 0, 1, 1]), sampler)] * 2)
        >>> inputs, labels = next(both.epoch(0))
        >>> len(inputs), tuple(inputs[0].shape)
        (2, (4, 3))
    """

    def __init__(self, sources: Sequence[BatchSource]):
        lengths = [len(source) for source in sources]
        if len(set(lengths)) != 1:
            raise ValueError(
                f"Heads trained together take one batch of each source a step, so the sources need as many batches "
                f"an epoch; got {lengths}: train heads with different numbers of batches apart."
            )
        self.sources = list(sources)
        self.batch_sampler = getattr(self.sources[0], "batch_sampler", None)

    def __len__(self) -> int:
        return len(self.sources[0])

    def epoch(self, epoch: int) -> Iterator[tuple[list[torch.Tensor], list[torch.Tensor]]]:
        for batches in zip(*(source.epoch(epoch) for source in self.sources)):
            yield [inputs for inputs, _ in batches], [labels for _, labels in batches]


def output_widths(heads: Sequence[nn.Module], reads: Sequence[int], batches: BatchSource) -> list[int]:
    """The width of each head's output, from a forward pass (eval mode, no gradients) on its first two rows."""
    inputs, _ = next(iter(batches.epoch(0)))
    widths = []
    for head, source in zip(heads, reads):
        training = head.training
        head.eval()
        parameter = next(head.parameters())
        with torch.no_grad():
            widths.append(head(inputs[source][:2].to(parameter.device, parameter.dtype)).shape[-1])
        head.train(training)
    return widths


class HeadsTogether(nn.Module):
    """Several heads as one module: head ``i`` reads the inputs of source ``reads[i]`` and gives ``sizes[i]``
    outputs; the outputs are joined side by side (``outputs`` holds each head's columns).

    Example:
        >>> together = HeadsTogether([nn.Linear(4, 2), nn.Linear(3, 3)], [0, 1], [2, 3])
        >>> together([torch.randn(5, 4), torch.randn(5, 3)]).shape, together.outputs
        (torch.Size([5, 5]), [(0, 2), (2, 5)])
    """

    def __init__(self, heads: Sequence[nn.Module], reads: Sequence[int], sizes: Sequence[int]) -> None:
        super().__init__()
        self.heads, self.reads = nn.ModuleList(heads), list(reads)
        ends = np.cumsum([0, *sizes]).tolist()
        self.outputs = list(zip(ends[:-1], ends[1:]))

    def forward(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        outputs = [head(inputs[source]) for head, source in zip(self.heads, self.reads)]
        if len({len(output) for output in outputs}) != 1:
            raise ValueError(
                f"Heads trained together need batches of one size a step, got {[len(o) for o in outputs]} rows."
            )
        return torch.cat(outputs, dim=1)


class SummedLoss(nn.Module):
    """The sum of each head's loss on its columns of the outputs and the labels of its source (mined by its own
    miner, if any): its gradient with respect to one head's weights is that head's loss's own."""

    def __init__(
        self,
        losses: Sequence[nn.Module],
        miners: Sequence[nn.Module | None],
        columns: Sequence[tuple[int, int]],
        reads: Sequence[int],
    ) -> None:
        super().__init__()
        self.losses, self.columns, self.reads = nn.ModuleList(losses), list(columns), list(reads)
        self.miners = list(miners)

    def forward(self, outputs: torch.Tensor, labels: Sequence[torch.Tensor], indices: Any = None) -> torch.Tensor:
        total = outputs.new_zeros(())
        for loss, miner, (a, b), source in zip(self.losses, self.miners, self.columns, self.reads):
            part, targets = outputs[:, a:b], labels[source]
            total = total + loss(part, targets, miner(part, targets) if miner is not None else None)
        return total


def embed(head: nn.Module | None, features: torch.Tensor, batch_size: int = 4096) -> np.ndarray:
    """``head(features)`` in eval mode, in chunks, as float32 numpy; the features themselves without a head."""
    if head is None:
        return features.float().numpy()
    head.eval()
    device = next(head.parameters()).device
    with torch.inference_mode():
        return torch.cat([head(chunk.float().to(device)).float().cpu() for chunk in features.split(batch_size)]).numpy()


def validation_metrics(
    head: nn.Module | None, validation: Mapping[str, tuple[torch.Tensor, np.ndarray]]
) -> dict[str, dict[str, float]]:
    """Leave-one-out retrieval metrics of ``head`` on each validation split ``{name: (features, labels)}``."""
    return {name: retrieval_metrics(embed(head, features), labels) for name, (features, labels) in validation.items()}


def score(metrics: Mapping[str, Mapping[str, float]], primary_metric: str) -> float:
    """The number a probe ranks by: ``primary_metric`` averaged over the validation splits."""
    try:
        return float(np.mean([split[primary_metric] for split in metrics.values()]))
    except KeyError as error:
        known = sorted(next(iter(metrics.values())))
        raise ValueError(f"Unknown primary_metric {primary_metric!r}; use one of {known}.") from error
