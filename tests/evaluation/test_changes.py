"""What got better and what got worse, per class: the summary matches the figures it is made of, and fit puts it
in run.metrics and the log."""

import logging

import numpy as np
import pytest

import finetuner
from finetuner.data import VectorData
from finetuner.evaluation import class_change_summary, describe_class_changes


def test_the_summary_sorts_classes_by_their_change():
    before = {"seen/class/a/map@r": 0.30, "seen/class/b/map@r": 0.50, "new/class/c/map@r": 0.80,
              "new/class/d/map@r": 0.60, "seen/class/a/recall@1": 0.1, "map@r": 0.5}
    after = {"seen/class/a/map@r": 0.42, "seen/class/b/map@r": 0.55, "new/class/c/map@r": 0.70,
             "new/class/d/map@r": 0.602, "seen/class/a/recall@1": 0.9, "map@r": 0.6}
    summary = class_change_summary(before, after, data="test data")
    assert summary["metric"] == "map@r"  # preferred over recall@1; headline keys are not classes
    assert list(summary["better"]) == ["a", "b"] and summary["better"]["a"] == pytest.approx(0.12)
    assert summary["worse"] == {"c": pytest.approx(-0.10)} and summary["unchanged"] == 1
    line = describe_class_changes(summary)
    assert line.startswith("per class (map@r, test data): 2 better (a +0.120, b +0.050), 1 worse (c -0.100)")
    assert class_change_summary({"map@r": 1.0}, {"map@r": 0.5}, data="x") is None


def test_fit_reports_per_class_changes_in_metrics_and_log(tmp_path, caplog):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(6, 12))
    labels = rng.integers(0, 6, 360)
    data = VectorData((centres[labels] + rng.normal(size=(360, 12))).astype("float32"), [f"c{k}" for k in labels])
    with caplog.at_level(logging.INFO, logger="finetuner"):
        run = finetuner.fit(train_data=data, epochs=2, cache_dir=tmp_path, verbose=False)
    changes = run.metrics["class_changes"]
    after, before = run.metrics["after"], run.metrics["before"]
    for name, delta in {**changes["better"], **changes["worse"]}.items():
        key = next(k for k in after if k.endswith(f"class/{name}/{changes['metric']}"))
        assert delta == pytest.approx(after[key] - before[key], abs=1e-4)
    assert changes["data"] == "validation data"
    assert any(record.getMessage().startswith("per class (map@r, validation data)") for record in caplog.records)
