"""HTML report of a run: a summary card, per-class before → after, example retrievals, training curves.

Example:
    >>> from finetuner.report import write_report
    >>> path = write_report("out/report", history=history, metrics=metrics, config=config, card=card)  # doctest: +SKIP
"""

from finetuner.report.plots import class_chart, gain_curve, training_curves
from finetuner.report.writer import write_report

__all__ = ["class_chart", "gain_curve", "training_curves", "write_report"]
