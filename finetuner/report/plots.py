"""Report plots: training curves (loss and eval metrics per epoch) and metrics before → after.

Figures are drawn on matplotlib's Agg canvas directly (no pyplot), so making them never changes the user's matplotlib
backend or opens a window. matplotlib is imported when a plot is made, not when finetuner is.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

EVAL_PREFIX = "eval/"
# Metrics worth a plot; the report's table still lists every metric. Others are plotted only if none of these exist.
HEADLINE = ("recall@1", "recall@5", "map@r", "ndcg@10", "mrr", "accuracy", "macro_f1")


def headline(names: Sequence[str], prefix: str = "") -> list[str]:
    """The headline metrics among ``names`` (in ``HEADLINE`` order), or all of ``names`` when none is one."""
    chosen = [prefix + name for name in HEADLINE if prefix + name in names]
    return chosen or list(names)


_COLORS = ("#8c959f", "#0969da", "#1a7f37", "#bf8700", "#8250df", "#cf222e")


def is_number(value: Any) -> bool:
    """True for ints and floats (numpy scalars included), False for bools and everything else.

    Example:
        >>> import numpy as np
        >>> is_number(0.5), is_number(np.float32(0.5)), is_number(True), is_number("0.5")
        (True, True, False, False)
    """
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) or _is_numpy_number(value)


def training_curves(history: Sequence[Mapping[str, Any]]) -> Figure | None:
    """Training loss per epoch and, next to it, the headline ``eval/<metric>`` curves when the history has them.

    ``eval/loss`` (if present) is drawn with the training loss. Epochs come from each record's ``epoch`` key, or its
    position (1, 2, ...) when the key is missing.

    Returns:
        A matplotlib `Figure`, or None when the history has no loss and no eval metric.

    Example:
        >>> fig = training_curves([{"epoch": 1, "loss": 0.9, "eval/recall@1": 0.6}, {"epoch": 2, "loss": 0.7}])
        >>> png = to_png(fig)
    """
    eval_keys = [k for k in _numeric_keys(history) if k.startswith(EVAL_PREFIX) and k != f"{EVAL_PREFIX}loss"]
    eval_keys = headline(eval_keys, EVAL_PREFIX) if eval_keys else eval_keys
    loss_keys = [k for k in ("loss", f"{EVAL_PREFIX}loss") if any(is_number(r.get(k)) for r in history)]
    if not loss_keys and not eval_keys:
        return None
    panels = [(keys, title) for keys, title in ((loss_keys, "Loss"), (eval_keys, "Eval metrics")) if keys]
    fig = _figure(width=5.2 * len(panels), height=3.4)
    for ax, (keys, title) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
        for i, key in enumerate(keys):
            epochs, values = _series(history, key)
            label = "train" if key == "loss" else key.removeprefix(EVAL_PREFIX)
            ax.plot(epochs, values, marker="o", markersize=4, color=_COLORS[1 + i % (len(_COLORS) - 1)], label=label)
        _style(ax, title, xlabel="epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(frameon=False, fontsize=8)
    return fig


def metrics_chart(metrics: Mapping[str, Mapping[str, Any]]) -> Figure | None:
    """Grouped bars: one group per headline metric, one bar per stage (``before``, ``after``, ...), values on top.

    Returns:
        A matplotlib `Figure`, or None when there is no numeric metric.

    Example:
        >>> fig = metrics_chart({"before": {"recall@1": 0.5}, "after": {"recall@1": 0.7}})
    """
    stages = [s for s in metrics if any(is_number(v) for v in metrics[s].values())]
    names = list(dict.fromkeys(k for s in stages for k, v in metrics[s].items() if is_number(v)))
    if not names:
        return None
    names = headline(names)
    fig = _figure(width=min(1.5 + 0.45 * len(names) * len(stages), 9.0), height=3.4)
    ax = fig.subplots()
    width = 0.8 / len(stages)
    for i, stage in enumerate(stages):
        xs = [j + (i - (len(stages) - 1) / 2) * width for j in range(len(names))]
        values = [float(metrics[stage][n]) if is_number(metrics[stage].get(n)) else 0.0 for n in names]
        bars = ax.bar(xs, values, width=width * 0.92, color=_COLORS[i % len(_COLORS)], label=stage)
        ax.bar_label(bars, fmt="%.3f", fontsize=7, padding=2)
    ax.set_xticks(range(len(names)), names, fontsize=8)
    ax.margins(y=0.15)
    _style(ax, " → ".join(stages), xlabel=None)
    ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # beside the bars, not on them
    return fig


def to_png(fig: Figure, dpi: int = 110) -> bytes:
    """Render a figure to PNG bytes with the Agg canvas.

    Example:
        >>> png = to_png(metrics_chart({"after": {"recall@1": 0.7}}))
        >>> png[:4]
        b'\\x89PNG'
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _style(ax: Any, title: str, xlabel: str | None) -> None:
    ax.set_title(title, fontsize=10, loc="left")
    if xlabel:
        ax.set_xlabel(xlabel, fontsize=8)
    ax.tick_params(labelsize=8)
    ax.grid(axis="y", color="#d0d7de", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _numeric_keys(history: Sequence[Mapping[str, Any]]) -> list[str]:
    return list(dict.fromkeys(k for record in history for k, v in record.items() if is_number(v)))


def _series(history: Sequence[Mapping[str, Any]], key: str) -> tuple[list[float], list[float]]:
    points = [(r.get("epoch", i + 1), r[key]) for i, r in enumerate(history) if is_number(r.get(key))]
    return [float(e) for e, _ in points], [float(v) for _, v in points]


def _is_numpy_number(value: Any) -> bool:
    kind = getattr(getattr(value, "dtype", None), "kind", None)
    return kind in ("i", "u", "f") and getattr(value, "ndim", None) == 0
