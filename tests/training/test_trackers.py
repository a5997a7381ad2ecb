"""Trackers: what `fit(report_to=...)` writes reads back, with TensorBoard's and MLflow's own readers, as the
numbers of ``run.history``."""

import importlib.util

import pytest
from mlflow.tracking import MlflowClient
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import finetuner
from finetuner.config import FitConfig
from finetuner.training.trackers import TRACKERS, WandbTracker, build_trackers, flatten, mlflow_name


@pytest.fixture(scope="module")
def tracked_run(small_data, eval_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("tracked")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        patch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)  # restored afterwards: the tracker sets it
        run = finetuner.fit(
            "test_cnn", small_data, eval_data, pretrained=False, freeze=True, output_dim=8, epochs=2, batch_size=16,
            report_to=["tensorboard", "mlflow"], logging_steps=1, eval_steps=2, output_dir=out, cache_dir=out / "c",
        )  # fmt: skip
    return run, out / "logs"


def test_tensorboard_events_hold_the_history_the_step_losses_and_the_config(tracked_run):
    run, logs = tracked_run
    events = EventAccumulator(str(logs / "tensorboard"))
    events.Reload()
    steps_per_epoch = 3  # 48 items in batches of 16
    epoch_loss = events.Scalars("epoch/loss")
    assert [e.step for e in epoch_loss] == [steps_per_epoch, 2 * steps_per_epoch]
    assert [e.value for e in epoch_loss] == pytest.approx([h["loss"] for h in run.history], rel=1e-6)
    map_r = {e.step: e.value for e in events.Scalars("eval/map@r")}
    assert [map_r[3], map_r[6]] == pytest.approx([h["eval/map@r"] for h in run.history], rel=1e-6)
    assert sorted(map_r) == [0, 2, 3, 4, 6]  # the start, every 2 steps and at each epoch's end
    [kept] = events.Scalars("kept/map@r")  # the model fit returned, under the same metric name
    assert kept.step == 6 and kept.value == pytest.approx(run.metrics["after"]["map@r"], rel=1e-6)
    assert [e.step for e in events.Scalars("train/loss")] == list(range(1, 7))
    assert len(events.Scalars("train/learning_rate")) == 6
    assert "config" in " ".join(events.Tags()["tensors"])


def test_mlflow_store_holds_the_history_and_the_config(tracked_run):
    run, logs = tracked_run
    client = MlflowClient((logs / "mlruns").resolve().as_uri())
    [experiment] = [e for e in client.search_experiments() if e.name == "finetuner"]
    [record] = client.search_runs([experiment.experiment_id])
    assert record.info.status == "FINISHED"
    assert record.data.params["training.epochs"] == "2" and record.data.params["model.output_dim"] == "8"
    history = client.get_metric_history(record.info.run_id, "epoch/loss")
    assert [(m.step, m.value) for m in history] == [(3, run.history[0]["loss"]), (6, run.history[1]["loss"])]
    evaluated = {m.step: m.value for m in client.get_metric_history(record.info.run_id, mlflow_name("eval/map@r"))}
    assert [evaluated[3], evaluated[6]] == [h["eval/map@r"] for h in run.history] and 0 in evaluated
    [kept] = client.get_metric_history(record.info.run_id, mlflow_name("kept/map@r"))
    assert kept.value == pytest.approx(run.metrics["after"]["map@r"], rel=1e-6)
    assert len(client.get_metric_history(record.info.run_id, "train/loss")) == 6


def test_report_to_names_are_checked_and_a_missing_package_names_its_install(monkeypatch, tmp_path):
    known = ", ".join(TRACKERS)
    assert {"tensorboard", "mlflow", "wandb"} <= set(TRACKERS)
    with pytest.raises(ValueError, match=f"Unknown tracker 'tensorbord' in report_to: choose from {known}"):
        FitConfig.from_options(report_to=["tensorbord"])
    assert FitConfig.from_options(report_to="tensorboard,mlflow").output.report_to == ("tensorboard", "mlflow")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(ImportError, match="WandbTracker needs wandb: pip install wandb"):
        build_trackers(["wandb"], tmp_path)
    assert isinstance(WandbTracker(tmp_path), WandbTracker)  # building is fine; using it is checked


def test_names_and_params_are_made_fit_for_the_trackers():
    assert mlflow_name("eval/new/recall@10") == "eval/new/recall_at_10"
    assert flatten({"output": {"report_to": ["mlflow"]}, "training": {"loss_options": {}}}) == {
        "output.report_to": ["mlflow"],
        "training.loss_options": {},
    }
