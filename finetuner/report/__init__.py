"""HTML report of a run: config, metrics before → after, training curves and example retrievals.

Example:
    >>> from finetuner.report import write_report
    >>> path = write_report("out/report", history=history, metrics=metrics, config=config)  # doctest: +SKIP
"""

from finetuner.report.plots import metrics_chart, training_curves
from finetuner.report.writer import write_report

__all__ = ["metrics_chart", "training_curves", "write_report"]
