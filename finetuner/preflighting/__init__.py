"""Pre-flight: will tuning help on this data, and would more labels? Measured in about one forward pass.

`preflight` runs the frozen backbone once (fit's feature cache), trains fit's head on 10 / 25 / 50 / 100 % of the
labelled training items with several seeds, and reports the validation gain over the untuned backbone on seen and
held-out classes, the cost of a full fit and a one-sentence verdict (`PreflightReport`). The folder is named
``preflighting`` so that ``finetuner.preflight`` is the function (as ``probing`` holds ``finetuner.probe``).

Example:
    >>> report = finetuner.preflight("efficientnet_lite0", "data/train")  # doctest: +SKIP
    >>> print(report)  # doctest: +SKIP
    >>> report.save("preflight.json")  # doctest: +SKIP
"""

from finetuner.preflighting.preflight import DEFAULT_SHARES, check_seeds, check_shares, preflight, share_rows
from finetuner.preflighting.report import CurvePoint, PreflightReport, verdict

__all__ = [
    "DEFAULT_SHARES",
    "CurvePoint",
    "PreflightReport",
    "check_seeds",
    "check_shares",
    "preflight",
    "share_rows",
    "verdict",
]
