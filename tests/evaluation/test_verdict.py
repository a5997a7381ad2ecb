"""`verdict`: the sentence the demo ends with, from before / after metrics."""

import pytest

from finetuner.evaluation import verdict

BEFORE = {"recall@1": 0.77, "map@r": 0.39, "seen/recall@1": 0.79, "seen/map@r": 0.41, "new/recall@1": 0.70,
          "new/map@r": 0.31}


def test_each_part_is_judged_on_its_own_figures():
    after = {**BEFORE, "seen/recall@1": 0.85, "seen/map@r": 0.65, "new/recall@1": 0.61}
    said = verdict(BEFORE, after)
    assert said.startswith("test data: tuned is ")
    assert "better than untuned on seen classes (recall@1 0.790 -> 0.850, map@r 0.410 -> 0.650)" in said
    assert "worse than untuned on new classes (recall@1 0.700 -> 0.610, map@r 0.310 -> 0.310)" in said
    assert "no different from untuned on all classes" in said


@pytest.mark.parametrize(
    ("change", "word"), [(0.004, "no different from"), (-0.004, "no different from"), (0.02, "better than"),
                         (-0.02, "worse than")]
)
def test_changes_within_the_tolerance_count_as_unchanged(change, word):
    before = {"recall@1": 0.5, "map@r": 0.5}
    after = {"recall@1": 0.5 + change, "map@r": 0.5}
    assert verdict(before, after, tolerance=0.005).startswith(f"test data: tuned is {word} untuned on all classes")


def test_a_rise_does_not_hide_a_fall_in_the_same_part():
    said = verdict({"recall@1": 0.5, "map@r": 0.5}, {"recall@1": 0.6, "map@r": 0.4})
    assert "worse than untuned on all classes" in said


def test_classifiers_are_judged_on_accuracy_and_missing_parts_are_not_mentioned():
    said = verdict({"accuracy": 0.1}, {"accuracy": 0.9}, data="validation data")
    assert said == "validation data: tuned is better than untuned on all classes (accuracy 0.100 -> 0.900)"
    assert verdict({}, {}) == "test data: no metric to compare"
