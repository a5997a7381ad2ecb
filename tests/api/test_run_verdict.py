"""`Run.verdict` says on which data it judged, and that a refit trained on the held-out classes."""

from finetuner.run import Run

TEST = {"before": {"recall@1": 0.70, "new/recall@1": 0.70}, "after": {"recall@1": 0.75, "new/recall@1": 0.72}}


def test_the_verdict_is_on_the_test_data_and_names_a_refit_on_held_out_classes():
    plain = Run(None, [], {"test": TEST, "selection": {"epoch": 3}}).verdict()
    assert plain.startswith("test data: tuned is better than untuned") and "refit" not in plain
    refit = Run(None, [], {"test": TEST, "selection": {"epoch": 3, "refit": {"epochs": 3}}}).verdict()
    assert refit.startswith(plain) and "the refit trained on the held-out classes too" in refit


def test_without_test_data_the_verdict_is_on_validation():
    run = Run(None, [], {"before": TEST["before"], "after": TEST["after"]})
    assert run.verdict().startswith("validation data: tuned is better than untuned")
