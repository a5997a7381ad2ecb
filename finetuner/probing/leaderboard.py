"""`Leaderboard`: the probed (layer, head) pairs, best first; a table and a plot."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

TABLE_METRICS = ("map@r", "recall@1")


@dataclass
class LeaderboardRow:
    """One probed pair of a layer and a head.

    Attributes:
        layer: the layer's name in the backbone.
        layer_name: what `fit` / `build_model` take as ``layer_name`` for these features (None: the default
            embedding layer).
        head: ``none`` (the layer's features as they are), ``linear`` or ``projection``.
        output_dim: size of the embedding.
        metrics: validation split (``eval``; or ``items``: held-out items of the training classes, ``classes``:
            held-out classes) -> retrieval metrics.
        score: the primary metric averaged over the splits; rows are sorted by it.
        train_seconds: time spent training the head (0 for ``none``): its share of the heads' joint training.
    """

    layer: str
    layer_name: str | None
    head: str
    output_dim: int
    metrics: dict[str, dict[str, float]]
    score: float
    train_seconds: float

    def fit_options(self) -> dict[str, Any]:
        """The `fit` / `build_model` arguments that build this model: a frozen backbone cut at the layer with the
        head (``{"layer_name", "output_dim": None}`` for ``none``: the features need no training).

        Example:
            >>> board.best.fit_options()  # doctest: +SKIP
            {'layer_name': None, 'freeze': True, 'head': 'projection', 'output_dim': 128}
        """
        if self.head == "none":
            return {"layer_name": self.layer_name, "output_dim": None}
        return {"layer_name": self.layer_name, "freeze": True, "head": self.head, "output_dim": self.output_dim}


class Leaderboard(list):
    """`LeaderboardRow` objects sorted by ``score``, best first; ``str()`` gives a table.

    Attributes:
        primary_metric: the metric the score averages.
        layers: the probed layers in the order they run in the network.

    Example:
        >>> board = finetuner.probing.probe("efficientnet_lite0", "fashion-mnist")  # doctest: +SKIP
        >>> print(board); board.best.fit_options()  # doctest: +SKIP
    """

    def __init__(
        self, rows: Iterable[LeaderboardRow] = (), primary_metric: str = "map@r", layers: Iterable[str] | None = None
    ):
        rows = list(rows)
        super().__init__(sorted(rows, key=lambda row: -row.score))
        self.primary_metric = primary_metric
        self.layers = list(layers) if layers is not None else list(dict.fromkeys(row.layer for row in rows))

    @property
    def best(self) -> LeaderboardRow:
        """The row with the highest score."""
        if not self:
            raise ValueError("The leaderboard is empty: nothing was probed.")
        return self[0]

    def __str__(self) -> str:
        splits = list(self[0].metrics) if self else []
        header = ["#", "layer", "head", "dim"]
        header += [f"{split} {metric}" for split in splits for metric in TABLE_METRICS]
        header += [f"score ({self.primary_metric})", "train s"]
        rows = [
            [str(rank), row.layer + ("" if row.layer_name else " (default)"), row.head, str(row.output_dim)]
            + [f"{row.metrics[split].get(metric, float('nan')):.4f}" for split in splits for metric in TABLE_METRICS]
            + [f"{row.score:.4f}", f"{row.train_seconds:.2f}"]
            for rank, row in enumerate(self, start=1)
        ]
        widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header))]

        def line(cells: list[str]) -> str:
            padded = (cell.ljust(w) if i < 3 else cell.rjust(w) for i, (cell, w) in enumerate(zip(cells, widths)))
            return "  ".join(padded)

        rule = "-" * len(line(header))
        return "\n".join([line(header), rule, *map(line, rows)])

    def __repr__(self) -> str:
        return f"Leaderboard({len(self)} rows, best: {self.best.layer} + {self.best.head})" if self else "Leaderboard()"


def plot_leaderboard(board: Leaderboard):
    """A bar chart of the scores: one group per layer (in network order), one bar per head.

    Returns:
        A ``matplotlib.figure.Figure`` (no pyplot state is touched; save it with ``fig.savefig(path)``).

    Example:
        >>> plot_leaderboard(board).savefig("probe.png")  # doctest: +SKIP
    """
    from matplotlib.figure import Figure

    layers = board.layers
    heads = sorted({_head_label(row) for row in board}, key=lambda label: (label != "none", label))
    figure = Figure(figsize=(max(4.0, 1.2 * len(layers) * max(1, len(heads)) / 2), 3.2), layout="constrained")
    axes = figure.add_subplot()
    width = 0.8 / max(1, len(heads))
    for h, head in enumerate(heads):
        scores = [
            next((r.score for r in board if r.layer == layer and _head_label(r) == head), float("nan"))
            for layer in layers
        ]
        axes.bar([i + h * width for i in range(len(layers))], scores, width, label=head)
    axes.set_xticks([i + width * (len(heads) - 1) / 2 for i in range(len(layers))], layers, rotation=20)
    axes.set_ylabel(f"score ({board.primary_metric})")
    axes.set_title("probe: layer x head")
    axes.legend(fontsize="small")
    return figure


def _head_label(row: LeaderboardRow) -> str:
    return f"{row.head}:{row.output_dim}" if row.head != "none" else "none"
