"""What got better and what got worse: before → after figures of the same metric, as `Change` records, per class
(`class_changes`) and summed up (`class_change_summary`, `describe_class_changes`) for the log, `run.metrics` and
the report."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# the per-class figure compared, by preference: ``[seen/|new/]class/<name>/<metric>``
CLASS_METRICS = ("map@r", "accuracy")
_CLASS_KEY = re.compile(r"^(?:(seen|new)/)?class/(.+)/([^/]+)$")


@dataclass(frozen=True)
class Change:
    """One figure before → after; ``part`` is ``""``, ``"seen"`` or ``"new"`` (its class's part, for a class).

    Example:
        >>> Change("Coat", "map@r", "seen", 0.40, 0.52).delta
        0.12000000000000005
    """

    name: str
    metric: str
    part: str
    before: float
    after: float

    @property
    def delta(self) -> float:
        return self.after - self.before

    @property
    def worse(self) -> bool:
        return self.after < self.before


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def class_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[Change]:
    """Per-class before → after of one metric (MAP@R, or accuracy for classifiers), in the order of ``after``.

    Example:
        >>> class_changes({"seen/class/a/map@r": 0.3}, {"seen/class/a/map@r": 0.5})
        [Change(name='a', metric='map@r', part='seen', before=0.3, after=0.5)]
    """
    found: dict[str, list[tuple[str, str, str]]] = {}  # metric -> (key, class, part)
    for key in after:
        match = _CLASS_KEY.match(key)
        if match and _number(after[key]) and _number(before.get(key)):
            part, name, metric = match.groups()
            found.setdefault(metric, []).append((key, name, part or ""))
    metric = next((m for m in CLASS_METRICS if m in found), next(iter(found), None))
    if metric is None:
        return []
    return [Change(name, metric, part, float(before[key]), float(after[key])) for key, name, part in found[metric]]


def class_change_summary(
    before: Mapping[str, Any], after: Mapping[str, Any], *, data: str, tolerance: float = 0.005
) -> dict[str, Any] | None:
    """Which classes got better and which worse (by more than ``tolerance``), most changed first:
    ``{"data", "metric", "better": {class: delta}, "worse": {class: delta}, "unchanged": count}``; None without
    per-class figures.

    Example:
        >>> class_change_summary({"class/a/map@r": 0.3, "class/b/map@r": 0.6},
        ...                      {"class/a/map@r": 0.5, "class/b/map@r": 0.6}, data="test data")["better"]
        {'a': 0.2}
    """
    changes = class_changes(before, after)
    if not changes:
        return None
    ranked = sorted(changes, key=lambda change: -abs(change.delta))
    return {
        "data": data,
        "metric": changes[0].metric,
        "better": {c.name: round(c.delta, 4) for c in ranked if c.delta > tolerance},
        "worse": {c.name: round(c.delta, 4) for c in ranked if c.delta < -tolerance},
        "unchanged": sum(abs(c.delta) <= tolerance for c in changes),
    }


def describe_class_changes(summary: Mapping[str, Any], shown: int = 3) -> str:
    """`class_change_summary` as one log line.

    Example:
        >>> describe_class_changes({"data": "test data", "metric": "map@r", "better": {"a": 0.2}, "worse": {},
        ...                         "unchanged": 1})
        'per class (map@r, test data): 1 better (a +0.200), 0 worse, 1 within 0.005'
    """
    def listed(changes: Mapping[str, float]) -> str:
        names = [f"{name} {delta:+.3f}" for name, delta in list(changes.items())[:shown]]
        more = ", ..." if len(changes) > shown else ""
        return f" ({', '.join(names)}{more})" if names else ""

    better, worse = summary["better"], summary["worse"]
    return (
        f"per class ({summary['metric']}, {summary['data']}): {len(better)} better{listed(better)}, "
        f"{len(worse)} worse{listed(worse)}, {summary['unchanged']} within 0.005"
    )
