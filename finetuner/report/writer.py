"""`write_report`: one self-contained HTML page about a run, summary first, plus its plots as PNG files."""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from finetuner.card import ModelCardData
from finetuner.core.version import __version__
from finetuner.evaluation import class_changes
from finetuner.report import _html, _summary
from finetuner.report.plots import class_chart, gain_curve, label, to_png, training_curves

REPORT_FILE = "report.html"
CLASS_FILE = "per_class.png"
PREFLIGHT_FILE = "preflight.png"
CURVE_FILES = "curves_*.png"  # one per training chart: curves_loss.png, curves_map_at_r.png, ...


def write_report(
    folder: str | Path,
    *,
    history: Sequence[Mapping[str, Any]],
    metrics: Mapping[str, Any],
    config: Mapping[str, Any],
    examples: Sequence[Mapping[str, Any]] | None = None,
    card: ModelCardData | Mapping[str, Any] | None = None,
    title: str | None = None,
) -> Path:
    """Write ``folder/report.html``: a summary card first (what was trained, the headline before → after on test
    data, or validation data without it, seen vs new classes, the selection's verdict, a warning when anything got
    worse), then per-class before → after, example retrievals before and after, the probe's leaderboard, training
    curves, and the settings and every metric folded at the end.

    The page needs no other file: plots and thumbnails are embedded as base64 PNG, and it uses no JavaScript. The plots
    are also saved next to it: ``per_class.png`` and ``curves_<panel>.png``; a plot with nothing to show is not
    written (an older one is removed).

    Args:
        folder: where to write; created if needed.
        history: one record per epoch, e.g. ``{"epoch": 1, "loss": 0.9, "eval/map@r": 0.6, "eval/new/map@r": 0.5}``.
        metrics: `Run.metrics`: ``before`` / ``after`` on validation data (with ``seen/``, ``new/`` and per-class
            ``[seen/|new/]class/<name>/<metric>`` keys when the evaluator gave them), and optionally ``test``
            (``before`` / ``after`` on test data), ``selection`` (`fit`'s model selection: ``reason``, ``epoch``,
            ``alpha``, ``candidates``), ``probe`` (``layer_name="auto"``: the leaderboard) and ``preflight``
            (`finetuner.preflight`'s ``report.to_dict()``: its verdict, gain curve and plot).
        config: the run's settings (`FitConfig.to_dict`), shown folded; its ``model`` section names the head.
        examples: retrieval examples, each ``{"query", "query_label", "results", "result_labels", "relevant"}``,
            plus optionally ``results_before``, ``result_labels_before``, ``relevant_before`` (the untuned model's
            results for the same query, shown above the tuned ones). Items are image paths, arrays ``(H, W)`` /
            ``(H, W, C)``, PIL images, or text (a string that is not an existing file).
        card: the model's card data (`ModelCardData` or its dict): base model, data sizes and names, freezing, loss.
        title: the page title; None: ``<model> on <data>`` from ``card``.

    Returns:
        The path of ``report.html``.

    Example:
        >>> write_report(
        ...     "out/report",
        ...     history=[{"epoch": 1, "loss": 0.9}, {"epoch": 2, "loss": 0.6}],
        ...     metrics={"before": {"recall@1": 0.5}, "after": {"recall@1": 0.7}},
        ...     config={"model": {"head": "residual", "output_dim": 128}},
        ...     card={"base_model": "resnet18", "train_data": {"source": "shoes", "items": 900, "classes": 12}},
        ... )
        PosixPath('out/report/report.html')
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    card = ModelCardData.from_dict(card).to_dict()
    selection, probed = metrics.get("selection"), metrics.get("probe")
    scored = _summary.scored_stages(metrics)
    where, before, after = scored if scored is not None else (None, {}, {})
    classes = class_changes(before, after)

    sections = [
        _html.summary_card(
            where,
            _summary.headline_changes(before, after),
            _summary.facts(card, config, metrics),
            _summary.held_out_classes(card, classes),
            _summary.verdict(selection) if selection else None,
        )
    ]
    class_png = _save_plot(
        class_chart(classes, label(classes[0].metric), where) if classes else None, folder / CLASS_FILE
    )
    if class_png:
        body = _html.plot_img(class_png, "per-class before and after") + _html.class_note(classes)
        sections.append(_html.section("Per class, before → after", body))
    if examples:
        sections.append(_html.section("Example retrievals", _html.examples_block(examples)))
    if probed:
        sections.append(_html.section("Layer and head probe", _html.probe_block(probed)))
    preflight = metrics.get("preflight")
    gain_png = _save_plot(gain_curve(preflight) if preflight else None, folder / PREFLIGHT_FILE)
    if preflight:
        sections.append(_html.section("Will tuning help? (pre-flight)", _html.preflight_block(preflight, gain_png)))
    for stale in folder.glob(CURVE_FILES):
        stale.unlink()
    kept = selection.get("epoch") if selection else None
    curves = [
        _save_plot(figure, folder / f"curves_{name.replace('@', '_at_')}.png")
        for name, figure in training_curves(history, kept_epoch=kept or None)
    ]
    curves_body = "".join(_html.plot_img(png, "training curve") for png in curves)
    curves_body = f'<div class="plots">{curves_body}</div>' if curves else _html.empty("No training history.")
    sections.append(_html.section("Training", curves_body))
    if selection:
        sections.append(_html.section("Model selection", _html.selection_block(selection)))
    sections.append(_details(metrics, config))

    epochs = f"{len(history)} epoch{'s' if len(history) != 1 else ''}"
    footer = f"Written by finetuner {_html.esc(__version__)} on {datetime.now().strftime('%Y-%m-%d %H:%M')}."
    page_title = title or _summary.title(card)
    document = _html.page(page_title, subtitle=epochs, sections=sections, footer=footer)
    path = folder / REPORT_FILE
    _write_atomic(path, document.encode("utf-8"))
    return path


def _details(metrics: Mapping[str, Any], config: Mapping[str, Any]) -> str:
    """Every metric (validation, then test) and every setting, folded."""
    stages = {stage: metrics[stage] for stage in ("before", "after") if metrics.get(stage)}
    test = metrics.get("test") or {}
    parts = []
    for name, values in (("validation data", stages), ("test data (never used for any choice)", test)):
        count = len({k for v in values.values() for k in v})
        if count:
            parts.append(_html.folded(f"All metrics on {name} ({count})", _html.metrics_table(values)))
    parts.append(_html.folded("Settings", _html.config_table(config) if config else _html.empty("No settings.")))
    return _html.section("Details", "\n".join(parts))


def _save_plot(figure: Any, path: Path) -> bytes | None:
    """Write ``figure`` as PNG to ``path`` and return the bytes; with no figure, remove a stale file and return None."""
    if figure is None:
        path.unlink(missing_ok=True)
        return None
    png = to_png(figure)
    _write_atomic(path, png)
    return png


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")  # same folder: the rename is atomic
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
