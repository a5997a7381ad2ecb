"""An MLflow run, a local file store by default (``report_to="mlflow"``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from finetuner.training.trackers.base import Tracker, mlflow_name, register_tracker


@register_tracker("mlflow")
class MLflowTracker(Tracker):
    """An MLflow run: the config as parameters, every record as metrics.

    Args:
        tracking_uri: where runs go; None: ``MLFLOW_TRACKING_URI`` when set, else a local file store in
            ``folder`` (read it with ``mlflow ui --backend-store-uri file://<folder>``).
        folder: the local store used without a tracking URI.
        experiment: the MLflow experiment name.
        run_name: the run's name (None: MLflow picks one).

    Example:
        >>> finetuner.fit(..., callbacks=[MLflowTracker(folder="out/logs/mlruns")])  # doctest: +SKIP
    """

    requires = ("mlflow", "mlflow-skinny")

    def __init__(
        self,
        tracking_uri: str | None = None,
        *,
        folder: str | Path = "mlruns",
        experiment: str = "finetuner",
        run_name: str | None = None,
        config: Mapping[str, Any] | None = None,
    ):
        super().__init__(config)
        self.tracking_uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or Path(folder).resolve().as_uri()
        self.experiment, self.run_name = experiment, run_name
        self.client, self.run_id = None, None

    @classmethod
    def for_run(cls, folder: Path, config: Mapping[str, Any] | None) -> MLflowTracker:
        return cls(folder=folder / "mlruns", config=config)

    def start(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        if self.tracking_uri.startswith("file:"):
            # MLflow 3 asks file stores to opt in; a local, offline store is what this tracker is for.
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        elif self.tracking_uri.startswith(("http:", "https:")):  # a server that does not answer fails in seconds
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        self.client = MlflowClient(self.tracking_uri)
        try:
            found = self.client.get_experiment_by_name(self.experiment)
        except Exception as error:  # noqa: BLE001 - any failure to reach the store is the same user error
            raise ConnectionError(
                f"MLflow at {self.tracking_uri} did not answer ({type(error).__name__}): check MLFLOW_TRACKING_URI, "
                "or unset it to log to the local store under output_dir/logs."
            ) from None
        experiment_id = found.experiment_id if found else self.client.create_experiment(self.experiment)
        self.run_id = self.client.create_run(experiment_id, run_name=self.run_name).info.run_id
        # MLflow caps parameter values at 6000 characters.
        self.client.log_batch(self.run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])

    def log_metrics(self, values: dict[str, float], step: int) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(mlflow_name(k), v, now, step) for k, v in values.items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def finish(self) -> None:
        self.client.set_terminated(self.run_id)
