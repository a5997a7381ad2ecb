"""`verdict`: one plain sentence on whether tuning helped, per part (all / seen / new classes), from before and after
metrics."""

from __future__ import annotations

from collections.abc import Mapping

HEADLINE = ("recall@1", "map@r", "accuracy")
PARTS = (("", "all classes"), ("seen/", "seen classes"), ("new/", "new classes"))


def part_change(before: Mapping[str, float], after: Mapping[str, float], prefix: str, tolerance: float) -> str | None:
    """``better`` / ``worse`` / ``unchanged`` for one part's headline metrics (worse when any falls by more than
    ``tolerance``; better when none does and one rises by more), or None when the part was not scored."""
    keys = [prefix + key for key in HEADLINE if prefix + key in after and prefix + key in before]
    if not keys:
        return None
    changes = [after[key] - before[key] for key in keys]
    if any(change < -tolerance for change in changes):
        return "worse"
    return "better" if any(change > tolerance for change in changes) else "unchanged"


def verdict(
    before: Mapping[str, float], after: Mapping[str, float], *, data: str = "test data", tolerance: float = 0.005
) -> str:
    """Whether the tuned model beats the untuned one, said plainly for each part that was scored.

    Args:
        before: metrics of the untuned model (``recall@1``, ``map@r`` or ``accuracy``, with ``seen/`` and ``new/``
            parts when the data has both).
        after: the same metrics of the tuned model.
        data: what was scored, as the sentence names it.
        tolerance: changes this small count as unchanged (about the noise of a few hundred queries).

    Example:
        >>> verdict({"recall@1": 0.70, "map@r": 0.30}, {"recall@1": 0.75, "map@r": 0.35})
        'test data: tuned is better than untuned on all classes (recall@1 0.700 -> 0.750, map@r 0.300 -> 0.350)'
    """
    said = []
    for prefix, name in PARTS:
        change = part_change(before, after, prefix, tolerance)
        if change is None:
            continue
        figures = ", ".join(
            f"{key} {before[prefix + key]:.3f} -> {after[prefix + key]:.3f}"
            for key in HEADLINE
            if prefix + key in after and prefix + key in before
        )
        word = {"better": "better than", "worse": "worse than", "unchanged": "no different from"}[change]
        said.append(f"{word} untuned on {name} ({figures})")
    if not said:
        return f"{data}: no metric to compare"
    return f"{data}: tuned is " + "; ".join(said)
