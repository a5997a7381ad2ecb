"""The short training recipe of a probe: a head trained on cached features with `Trainer`, scored on validation."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
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
from finetuner.training.batches import TensorBatches
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
    """Train head ``heads[i]`` on ``features[i]`` for every ``i``, all in one training loop: what `train_head` gives
    for each, at about the cost of one.

    Every head sees the batches `train_head` would give it (one class-balanced sampler of the same seed picks the
    rows of every layer), starts from the weights it would start from (the seed is set before each head is built)
    and is updated by its own loss only: the loop minimises the sum of the heads' losses, whose gradient with
    respect to a head's weights is that head's own, and the optimizers are element-wise (Adam, SGD, ...). So the
    results equal separate trainings up to float rounding, while the batching, the backward pass, the optimizer
    step and the loop's bookkeeping run once per step instead of once per head. Heads on the same layer share
    the layer's rows (pass the same tensor).

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
    layers = list({id(rows): rows for rows in features}.values())  # each distinct layer once
    starts = np.cumsum([0] + [rows.shape[1] for rows in layers]).tolist()
    where = {id(rows): (starts[i], starts[i + 1]) for i, rows in enumerate(layers)}
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
    joined = layers[0] if len(layers) == 1 else torch.cat([rows.float() for rows in layers], dim=1)
    batches = TensorBatches([joined], torch.as_tensor(list(labels)), sampler)
    miner = build_miner(recipe.miner, **recipe.miner_options)
    if len(modules) == 1:
        model, loss = modules[0], losses[0]
    else:
        model = HeadsTogether(modules, [where[id(rows)] for rows in features], [head.output_dim for head in heads])
        loss, miner = SummedLoss(losses, [copy.deepcopy(miner) for _ in losses], model.outputs), None
    description = f"probe {heads[0].kind}" if len(heads) == 1 else f"probe {len(heads)} heads"
    Trainer(model, loss, batches, config, miner=miner, callbacks=callbacks, description=description).fit()
    return [module.eval() for module in modules]


class HeadsTogether(nn.Module):
    """Several heads as one module: head ``i`` reads columns ``a:b = inputs[i]`` of the joined features (its layer)
    and gives ``sizes[i]`` outputs; the outputs are joined side by side (``outputs`` holds each head's columns).

    Example:
        >>> together = HeadsTogether([nn.Linear(4, 2), nn.Linear(4, 3)], [(0, 4), (0, 4)], [2, 3])
        >>> together(torch.randn(5, 4)).shape, together.outputs
        (torch.Size([5, 5]), [(0, 2), (2, 5)])
    """

    def __init__(self, heads: Sequence[nn.Module], inputs: Sequence[tuple[int, int]], sizes: Sequence[int]) -> None:
        super().__init__()
        self.heads, self.inputs = nn.ModuleList(heads), list(inputs)
        ends = np.cumsum([0, *sizes]).tolist()
        self.outputs = list(zip(ends[:-1], ends[1:]))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.cat([head(features[:, a:b]) for head, (a, b) in zip(self.heads, self.inputs)], dim=1)


class SummedLoss(nn.Module):
    """The sum of each head's loss on its columns of the outputs (mined by its own miner, if any): its gradient
    with respect to one head's weights is that head's loss's own."""

    def __init__(
        self, losses: Sequence[nn.Module], miners: Sequence[nn.Module | None], columns: Sequence[tuple[int, int]]
    ) -> None:
        super().__init__()
        self.losses, self.columns = nn.ModuleList(losses), list(columns)
        self.miners = list(miners)

    def forward(self, outputs: torch.Tensor, labels: torch.Tensor, indices: Any = None) -> torch.Tensor:
        total = outputs.new_zeros(())
        for loss, miner, (a, b) in zip(self.losses, self.miners, self.columns):
            part = outputs[:, a:b]
            total = total + loss(part, labels, miner(part, labels) if miner is not None else None)
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
