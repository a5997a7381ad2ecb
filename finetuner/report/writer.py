"""`write_report`: one self-contained HTML page about a run, plus its plots as PNG files."""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from finetuner.core.version import __version__
from finetuner.report import _html
from finetuner.report.plots import metrics_chart, to_png, training_curves

REPORT_FILE = "report.html"
LOSS_FILE = "loss.png"
METRICS_FILE = "metrics.png"


def write_report(
    folder: str | Path,
    *,
    history: Sequence[Mapping[str, Any]],
    metrics: Mapping[str, Mapping[str, float]],
    config: Mapping[str, Any],
    examples: Sequence[Mapping[str, Any]] | None = None,
    title: str = "finetuner run",
) -> Path:
    """Write ``folder/report.html``: config, metrics before → after, training curves and example retrievals.

    The page needs no other file: plots and thumbnails are embedded as base64 PNG, and it uses no JavaScript. The plots
    are also saved next to it as ``loss.png`` (loss per epoch, and each ``eval/<metric>`` per epoch when the history
    has them) and ``metrics.png`` (metrics per stage); a plot with nothing to show is not written.

    Args:
        folder: where to write; created if needed.
        history: one record per epoch, e.g. ``{"epoch": 1, "loss": 0.9, "eval/recall@1": 0.6}``.
        metrics: metric values per stage, e.g. ``{"before": {"recall@1": 0.5}, "after": {"recall@1": 0.7}}``; the
            change column compares the first stage with the last. The ``"selection"`` entry (`fit`'s model
            selection: ``reason``, ``candidates``), the ``"test"`` entry (``before`` / ``after`` on test data) and
            the ``"probe"`` entry (``layer_name="auto"``: the leaderboard)
            get their own sections.
        config: the run's settings, shown as a table (nested mappings as dotted keys).
        examples: retrieval examples, each ``{"query", "results", "relevant", "query_label", "result_labels"}``;
            items are image paths, arrays ``(H, W)`` / ``(H, W, C)`` uint8, PIL images, or text (a string that is not
            an existing file). Relevant results get a green frame, the others a red one.
        title: the page title.

    Returns:
        The path of ``report.html``.

    Example:
        >>> write_report(
        ...     "out/report",
        ...     history=[{"epoch": 1, "loss": 0.9}, {"epoch": 2, "loss": 0.6}],
        ...     metrics={"before": {"recall@1": 0.5}, "after": {"recall@1": 0.7}},
        ...     config={"model": "resnet18", "epochs": 2},
        ... )
        PosixPath('out/report/report.html')
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    selection, probed, test = metrics.get("selection"), metrics.get("probe"), metrics.get("test")
    metrics = {stage: values for stage, values in metrics.items() if stage in ("before", "after")}
    loss_png = _save_plot(training_curves(history), folder / LOSS_FILE)
    metrics_png = _save_plot(metrics_chart(metrics), folder / METRICS_FILE)

    metrics_body = _html.metrics_table(metrics) if metrics_png else _html.empty("No metrics recorded.")
    if metrics_png:
        metrics_body = (
            f'<div class="plots">{metrics_body}{_html.png_img(metrics_png, "metrics per stage", "plot")}</div>'
        )
    loss_body = _html.png_img(loss_png, "training curves", "plot") if loss_png else _html.empty("No training history.")
    sections = [_html.section("Metrics", metrics_body)]
    if test:
        sections.append(_html.section("Test data (never used for any choice)", _html.metrics_table(test)))
    if selection:
        sections.append(_html.section("Model selection", _html.selection_block(selection)))
    if probed:
        sections.append(_html.section("Layer and head probe", _html.probe_block(probed)))
    sections.append(_html.section("Training", loss_body))
    if examples:
        sections.append(_html.section("Example retrievals", _html.examples_block(examples)))
    config_body = _html.config_table(config) if config else _html.empty("No configuration.")
    sections.append(_html.section("Configuration", config_body))

    epochs = f"{len(history)} epoch{'s' if len(history) != 1 else ''}"
    footer = f"Written by finetuner {_html.esc(__version__)} on {datetime.now().strftime('%Y-%m-%d %H:%M')}."
    document = _html.page(title, subtitle=epochs, sections=sections, footer=footer)
    path = folder / REPORT_FILE
    _write_atomic(path, document.encode("utf-8"))
    return path


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
