"""`PreflightReport`: the gain of a trained head over the untuned backbone per share of the labels, its table, plot,
JSON and one-sentence verdict."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# Changes this small count as none (`finetuner.evaluation.verdict`'s tolerance: the noise of a few hundred queries).
MIN_CHANGE = 0.005
METRICS = ("recall@1", "map@r")
PART_NAMES = {"": "all", "seen/": "seen", "new/": "new"}


@dataclass
class CurvePoint:
    """The head trained on one share of the labelled training items, over the seeds.

    Attributes:
        share: the fraction of each training class's items the head trained on.
        items: how many training items that is.
        gain: metric (``seen/map@r``, ``new/recall@1``, ...) -> mean over seeds of tuned minus untuned, on validation.
        spread: the same metrics' standard deviation over seeds (0 with one seed).
        class_error: the standard error of the gain over validation classes (the per-class gains' standard deviation
            over the square root of their number; 0 without per-class figures): how much the figure would move on
            other validation data, which seeds alone do not show.
        runs: per seed, the tuned model's validation metrics.
    """

    share: float
    items: int
    gain: dict[str, float]
    spread: dict[str, float]
    class_error: dict[str, float] = field(default_factory=dict)
    runs: list[dict[str, float]] = field(default_factory=list)

    @classmethod
    def from_runs(
        cls, share: float, items: int, runs: Sequence[Mapping[str, float]], before: Mapping[str, float],
        keys: Sequence[str],
    ) -> CurvePoint:  # fmt: skip
        """Mean, spread and class error of the gains of ``runs`` (one metrics dict per seed, with per-class figures
        ``[seen/|new/]class/<name>/<metric>``) over ``before``, for ``keys``.

        Example:
            >>> point = CurvePoint.from_runs(1.0, 90, [{"map@r": 0.5}, {"map@r": 0.6}], {"map@r": 0.4}, ["map@r"])
            >>> round(point.gain["map@r"], 3), round(point.spread["map@r"], 3)
            (0.15, 0.071)
        """
        gains = {key: np.asarray([run[key] - before[key] for run in runs]) for key in keys}
        spread = {key: float(g.std(ddof=1)) if len(g) > 1 else 0.0 for key, g in gains.items()}
        error = {}
        for key in keys:
            part, _, metric = key.rpartition("/")
            prefix = f"{part}/class/" if part else "class/"
            names = [k for k in before if k.startswith(prefix) and k.endswith("/" + metric)]
            names = [k for k in names if all(k in run for run in runs)]
            per_class = np.asarray([np.mean([run[k] - before[k] for run in runs]) for k in names])
            error[key] = float(per_class.std(ddof=1) / np.sqrt(len(per_class))) if len(per_class) > 1 else 0.0
        shown = [{key: run[key] for key in keys} for run in runs]
        return cls(share, items, {key: float(g.mean()) for key, g in gains.items()}, spread, error, shown)

    def noise(self, key: str) -> float:
        """The larger of the seed spread and the class error of ``key``: a gain must exceed it to count."""
        return max(self.spread[key], self.class_error.get(key, 0.0))


@dataclass
class PreflightReport:
    """What `preflight` measured: the gain curve, the untuned backbone's figures, the probe, the cost of a fit.

    Attributes:
        model: the model as named (or its class).
        data: the training data as named.
        parts: the validation parts scored: ``["seen/", "new/"]`` (items of the training classes, held-out classes)
            or ``[""]`` (the whole set, without held-out classes).
        selection_key, guard_key: the metrics `fit` selects on and guards (``seen/map@r``, ``new/map@r``).
        before: the untuned backbone's validation metrics (its own features).
        curve: one `CurvePoint` per share, smallest first.
        seeds: the seeds each share trained with.
        held_out_classes: the classes validation held out of training.
        timing: seconds: ``backbone`` (the pass over the data, or reading its cache), ``head_epoch`` (one epoch of
            the head on all training items), ``evaluation`` (one validation), ``fit_estimate`` (a full fit: the pass,
            ``epochs`` x (epoch + evaluation) and the refit), ``total`` (this pre-flight); and ``epochs``.
        shuffled: the head trained on all training items with their labels shuffled (per seed): what training alone
            moves the figures by when labels carry no information, the floor a gain must clear.
        leaderboard: the probe's rows (layer, head, dim, score), best first; None unless asked for.
        verdict: one sentence: does tuning help here, and would more labels.

    Example:
        >>> report = finetuner.preflight("efficientnet_lite0", "data/train")  # doctest: +SKIP
        >>> print(report)  # doctest: +SKIP
        >>> report.save("preflight.json"); report.plot().savefig("preflight.png")  # doctest: +SKIP
    """

    model: str
    data: str
    parts: list[str]
    selection_key: str
    guard_key: str | None
    before: dict[str, float]
    curve: list[CurvePoint]
    seeds: list[int]
    held_out_classes: list[str]
    timing: dict[str, float]
    shuffled: CurvePoint | None = None
    leaderboard: list[dict[str, Any]] | None = None
    verdict: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Everything as JSON-serialisable values (what `save` writes, and the report's ``metrics["preflight"]``)."""
        return asdict(self)

    def save(self, path: str | Path) -> Path:
        """Write `to_dict` as JSON to ``path``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path

    def write_report(self, folder: str | Path) -> Path:
        """Write ``folder/report.html``, the HTML report with its pre-flight section (verdict, curve, table), and
        ``folder/preflight.png``. A fit's report shows the same section when ``run.metrics["preflight"]`` holds
        `to_dict`.

        Example:
            >>> report.write_report("out/preflight")  # doctest: +SKIP
            PosixPath('out/preflight/report.html')
        """
        from finetuner.report import write_report

        card = {"base_model": self.model, "train_data": {"source": self.data}}
        return write_report(folder, history=[], metrics={"preflight": self.to_dict()}, config={}, card=card,
                            title=f"Pre-flight: {self.model} on {self.data}")  # fmt: skip

    def plot(self) -> Any:
        """The gain per share of the labels (mean and spread over seeds) as a matplotlib ``Figure``.

        Example:
            >>> report.plot().savefig("preflight.png")  # doctest: +SKIP
        """
        from finetuner.report import gain_curve

        return gain_curve(self.to_dict())

    def __str__(self) -> str:
        keys = headline_keys(self.parts)
        header = ["labels", "items", *[column_name(key) for key in keys]]
        rows = [["untuned", "", *[f"{self.before[key]:.4f}" for key in keys]]]
        rows += [
            [f"{point.share:.0%}", str(point.items), *[f"{point.gain[k]:+.4f} ±{point.spread[k]:.4f}" for k in keys]]
            for point in self.curve
        ]
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
        lines = ["  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(r, widths)))
                 for r in [header, *rows]]  # fmt: skip
        seeds = len(self.seeds)
        title = (
            f"pre-flight: gain over the untuned backbone on validation (mean ± spread over {seeds} "
            f"seed{'s' if seeds != 1 else ''}; the verdict also weighs the error over validation classes)"
        )
        out = [title, lines[0], "-" * len(lines[0]), *lines[1:]]
        if self.shuffled is not None:
            null = self.shuffled
            out.append("shuffled labels (the noise floor): " + ", ".join(
                f"{column_name(k)} {null.gain[k]:+.4f} ±{null.spread[k]:.4f}" for k in keys
            ))  # fmt: skip
        if self.held_out_classes:
            out.append(f"held-out classes (new): {', '.join(self.held_out_classes)}")
        if self.leaderboard:
            out.append("probe (layer x head, by score): " + "; ".join(
                f"{row['layer']} + {row['head']}:{row['output_dim']} {row['score']:.4f}" for row in self.leaderboard[:5]
            ))  # fmt: skip
        out.append(cost_line(self.timing))
        out.append(self.verdict)
        return "\n".join(out)


def headline_keys(parts: Sequence[str]) -> list[str]:
    """The table's metrics: R@1 and MAP@R of each part (``seen/recall@1``, ...)."""
    return [part + metric for part in parts for metric in METRICS]


def column_name(key: str) -> str:
    part, _, metric = key.rpartition("/")
    return f"{PART_NAMES[part + '/' if part else '']} {metric}"


def cost_line(timing: Mapping[str, float]) -> str:
    """The measured costs in one line."""
    return (
        f"cost: this pre-flight {timing['total']:.1f} s (backbone pass {timing['backbone']:.1f} s); a full fit about "
        f"{timing['fit_estimate']:.1f} s ({timing['epochs']:.0f} epochs x {timing['head_epoch']:.2f} s + "
        f"{timing['evaluation']:.2f} s validation, plus the backbone pass: none once its features are cached)"
    )


def verdict(
    curve: Sequence[CurvePoint],
    selection_key: str,
    guard_key: str | None,
    *,
    guard_tolerance: float | None = 0.01,
    shuffled: CurvePoint | None = None,
) -> str:
    """One sentence: whether tuning helps (the gain of the largest share on ``selection_key`` beyond its noise, the
    larger of the spread over seeds and the error over validation classes, and `MIN_CHANGE`; ``guard_key`` not
    falling by more than ``guard_tolerance`` or its noise) and whether more labels would help (the gain still rising
    from the second-largest share to the largest by more than their noise). With ``shuffled`` (the head trained on
    shuffled labels) the gain must also clear what that head gains, by more than its spread.

    Example:
        >>> points = [CurvePoint(s, 10, {"map@r": g}, {"map@r": 0.01}) for s, g in ((0.5, 0.02), (1.0, 0.08))]
        >>> verdict(points, "map@r", None)  # doctest: +ELLIPSIS
        'Tuning helps on this data: map@r +0.080 ±0.010 ...; more labels would likely help: ...'
    """
    if not curve:
        raise ValueError("The curve is empty: give at least one share.")
    full = curve[-1]
    gain, spread = full.gain[selection_key], full.noise(selection_key)
    measured = f"{selection_key} {gain:+.3f} ±{spread:.3f} with {full.share:.0%} of the labels"
    floor = max(shuffled.gain[selection_key], 0.0) if shuffled is not None else 0.0
    noise = max(spread, shuffled.noise(selection_key) if shuffled is not None else 0.0, MIN_CHANGE)
    helps = gain > floor + noise
    hurt = None
    if guard_key is not None:
        allowed = max(guard_tolerance or 0.0, full.noise(guard_key), MIN_CHANGE)
        new = f"{guard_key} {full.gain[guard_key]:+.3f} ±{full.noise(guard_key):.3f}"
        hurt = full.gain[guard_key] < -allowed
    if helps and not hurt:
        first = f"Tuning helps on this data: {measured}"
        first += f", new classes not hurt ({new})" if guard_key is not None else " (no held-out classes to check)"
    elif helps:
        first = f"Tuning helps the training classes ({measured}) but hurts new classes ({new}); fit's guard would " \
                "keep the untuned backbone or a mix"  # fmt: skip
    else:
        worse = gain < -noise
        said = "below zero" if worse else "within the noise"
        said = f"no more than shuffled labels get ({floor:+.3f})" if floor > 0 and not worse else said
        first = f"Tuning does not help on this data: {measured} is {said}"
        if hurt:
            first += f", and it hurts new classes ({new})"
    if len(curve) < 2:
        return first + "; give two shares or more to tell whether more labels would help."
    previous = curve[-2]
    rise = gain - previous.gain[selection_key]
    margin = max(spread, previous.noise(selection_key), MIN_CHANGE)
    steps = f"{previous.gain[selection_key]:+.3f} at {previous.share:.0%} -> {gain:+.3f} at {full.share:.0%}"
    if rise > margin:
        return f"{first}; more labels would likely help: the gain is still rising ({steps})."
    return f"{first}; more labels are unlikely to help much: the gain rises no more than its noise ({steps})."
