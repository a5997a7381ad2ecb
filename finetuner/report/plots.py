"""Report plots: training curves (loss and eval metrics per epoch, seen and new classes apart) and the per-class
before → after chart.

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
# Metrics worth a plot, best first (a run's first two are its headline); the report's table still lists every metric.
HEADLINE = ("recall@1", "map@r", "accuracy", "mrr", "macro_f1", "recall@5", "ndcg@10")


LABELS = {"recall@1": "R@1", "map@r": "MAP@R", "accuracy": "accuracy", "mrr": "MRR", "macro_f1": "macro F1"}


def label(metric: str) -> str:
    """The short display name of a metric: ``map@r`` -> ``MAP@R``."""
    return LABELS.get(metric, metric)


def headline(names: Sequence[str], prefix: str = "") -> list[str]:
    """The headline metrics among ``names`` (in ``HEADLINE`` order), or all of ``names`` when none is one."""
    chosen = [prefix + name for name in HEADLINE if prefix + name in names]
    return chosen or list(names)


DPI = 110  # CSS pixels per inch of a figure: the page shows a figure ``width * DPI`` pixels wide
_COLORS = ("#8c959f", "#0969da", "#1a7f37", "#8250df", "#bf8700", "#cf222e")
_UP, _DOWN, _NEW = "#1a7f37", "#cf222e", "#8250df"


def is_number(value: Any) -> bool:
    """True for ints and floats (numpy scalars included), False for bools and everything else.

    Example:
        >>> import numpy as np
        >>> is_number(0.5), is_number(np.float32(0.5)), is_number(True), is_number("0.5")
        (True, True, False, False)
    """
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) or _is_numpy_number(value)


PART_NAMES = {"": "all classes", "seen/": "seen classes", "new/": "new classes"}


def training_curves(history: Sequence[Mapping[str, Any]], kept_epoch: int | None = None) -> list[tuple[str, Figure]]:
    """One chart per panel: the loss per epoch (train, and ``eval/loss`` when present), then one per headline metric
    (at most two, e.g. MAP@R and R@1) with a line each for all classes, seen classes and new classes (the ``eval/``,
    ``eval/seen/`` and ``eval/new/`` keys of the history). The legend sits under the axes, never on the lines.

    Args:
        history: one record per epoch; epochs come from each record's ``epoch`` key, or its position (1, 2, ...).
        kept_epoch: the epoch that model selection kept, marked with a dotted line.

    Returns:
        ``(name, figure)`` per panel (``"loss"``, then the metric names), empty when the history has nothing to plot.

    Example:
        >>> panels = training_curves([{"epoch": 1, "loss": 0.9, "eval/map@r": 0.6}, {"epoch": 2, "loss": 0.7}])
        >>> [name for name, _ in panels]
        ['loss', 'map@r']
    """
    keys = _numeric_keys(history)
    loss_keys = [k for k in ("loss", f"{EVAL_PREFIX}loss") if k in keys]
    whole = [k.removeprefix(EVAL_PREFIX) for k in keys if k.startswith(EVAL_PREFIX) and k.count("/") == 1]
    metrics = headline([m for m in whole if m != "loss"])[:2]
    panels = [("loss", "Loss", [(k, "train" if k == "loss" else "validation") for k in loss_keys])] if loss_keys else []
    for metric in metrics:
        lines = [(f"{EVAL_PREFIX}{p}{metric}", name) for p, name in PART_NAMES.items()]
        lines = [(key, name) for key, name in lines if key in keys]
        panels.append((metric, f"{label(metric)} on validation data", lines))
    figures = []
    for name, heading, lines in panels:
        fig = _figure(width=4.4, height=3.2)
        ax = fig.subplots()
        for i, (key, line_label) in enumerate(lines):
            epochs, values = _series(history, key)
            color = _COLORS[1 + i % (len(_COLORS) - 1)]
            ax.plot(epochs, values, marker="o", markersize=4, color=color, label=line_label)
        if kept_epoch is not None:
            ax.axvline(kept_epoch, color=_COLORS[0], linestyle=":", linewidth=1.2, label=f"kept: epoch {kept_epoch}")
        _style(ax, heading, xlabel="epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(frameon=False, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
        figures.append((name, fig))
    return figures


def class_chart(changes: Sequence[Any], metric: str, where: str, limit: int = 30) -> Figure | None:
    """Per-class before → after as a dumbbell chart, biggest gain on top: a hollow dot before, a filled dot after,
    green when the class gained and red when it lost; classes training never saw are marked "(new)" in purple.

    Args:
        changes: per class, an object with ``name``, ``part`` (``"new"`` for held-out classes), ``before``, ``after``.
        metric: the metric's display name; ``where``: the data it was measured on (both for the title).
        limit: show at most this many classes: the half that gained most and the half that lost most.

    Returns:
        A matplotlib `Figure`, or None without changes.

    Example:
        >>> from types import SimpleNamespace as C
        >>> fig = class_chart([C(name="bag", part="seen", before=0.5, after=0.7)], "MAP@R", "test data")
    """
    if not changes:
        return None
    ranked = sorted(changes, key=lambda c: c.after - c.before, reverse=True)
    if len(ranked) > limit:
        ranked = ranked[: limit // 2] + ranked[len(ranked) - (limit - limit // 2) :]
    n = len(ranked)
    fig = _figure(width=4.6, height=1.0 + 0.3 * n)
    ax = fig.subplots()
    ys = list(range(n))[::-1]  # the biggest gain at the top
    for y, change in zip(ys, ranked):
        delta = change.after - change.before
        color = _UP if delta > 0 else _DOWN if delta < 0 else _COLORS[0]
        ax.plot([change.before, change.after], [y, y], color=color, linewidth=2, alpha=0.5, solid_capstyle="round")
        ax.scatter([change.before], [y], s=28, facecolors="white", edgecolors=_COLORS[0], linewidths=1.4, zorder=3)
        ax.scatter([change.after], [y], s=32, color=color, zorder=4)
        ax.annotate(f"{delta:+.3f}", (max(change.before, change.after), y), xytext=(6, 0), textcoords="offset points",
                    va="center", fontsize=7, color=color)  # fmt: skip
    names = [f"{c.name} (new)" if c.part == "new" else str(c.name) for c in ranked]
    ax.set_yticks(ys, names, fontsize=8)
    for tick, change in zip(ax.get_yticklabels(), ranked):
        if change.part == "new":
            tick.set_color(_NEW)
    ax.set_ylim(-0.7, n - 0.3)
    ax.margins(x=0.12)
    _style(ax, f"{metric} per class on {where}: before ○ → after ●", xlabel=metric)
    ax.grid(axis="x", color="#d0d7de", linewidth=0.6)
    ax.grid(axis="y", visible=False)
    return fig


def gain_curve(preflight: Mapping[str, Any]) -> Figure | None:
    """A pre-flight's gain over the untuned backbone per share of the labels: a line per part and metric (seen / new
    classes, R@1 and MAP@R), the spread over seeds as error bars, zero marked.

    Args:
        preflight: `PreflightReport.to_dict()`: ``parts``, and ``curve`` rows with ``share``, ``gain`` and ``spread``.

    Returns:
        A matplotlib `Figure`, or None without a curve.

    Example:
        >>> point = {"share": 1.0, "gain": {"map@r": 0.1}, "spread": {"map@r": 0.01}}
        >>> fig = gain_curve({"parts": [""], "curve": [point]})
    """
    curve = preflight.get("curve") or []
    if not curve:
        return None
    fig = _figure(width=4.6, height=3.2)
    ax = fig.subplots()
    shares = [100 * point["share"] for point in curve]
    lines = [(part, metric) for part in preflight.get("parts", [""]) for metric in ("map@r", "recall@1")]
    for part, metric in lines:
        key = part + metric
        if not all(key in point["gain"] for point in curve):
            continue
        color = _NEW if part == "new/" else _UP if part == "seen/" else _COLORS[1]  # a colour per part
        name = f"{PART_NAMES.get(part, part)}: {label(metric)}"
        gains, spreads = [p["gain"][key] for p in curve], [p["spread"][key] for p in curve]
        style = "-" if metric == "map@r" else "--"
        ax.errorbar(shares, gains, yerr=spreads, marker="o", markersize=4, capsize=3, color=color, linestyle=style,
                    label=name)  # fmt: skip
    ax.axhline(0.0, color=_COLORS[0], linewidth=1.0, linestyle=":")
    ax.set_xticks(shares, [f"{s:g}%" for s in shares])
    _style(ax, "gain over the untuned backbone, by share of the labels", xlabel="labelled training items used")
    ax.legend(frameon=False, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2)
    return fig


def to_png(fig: Figure, dpi: int = 2 * DPI) -> bytes:
    """Render a figure to PNG bytes with the Agg canvas, at twice the display resolution (sharp on phones).

    Example:
        >>> png = to_png(training_curves([{"epoch": 1, "loss": 0.9}])[0][1])
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
