"""``logging.mlflow: true``: the run tracked with MLflow (the ``mlflow`` extra, ``mlflow-skinny``), by rank 0.

Where: ``MLFLOW_TRACKING_URI`` when set (a server, ``sqlite:///...``, a folder), else ``<run folder>/mlruns``, a
local file store (MLflow 3 keeps that backend in maintenance mode and asks for ``MLFLOW_ALLOW_FILE_STORE=true``,
which npc sets for a local folder unless it is set already). The experiment is ``MLFLOW_EXPERIMENT_NAME`` or
``Default``, as NetsPresso Trainer's; the run is named after the run folder.

What: the resolved configuration as params (``training.optimizer.lr``, ``data.image_size``, ... as NetsPresso
flattens its training, data, augmentation, environment and model sections), every epoch's metrics.csv row as
metrics (step: the epoch), and at the end the best weights with resolved.yaml, metrics.csv and model.py as
artifacts (and the ONNX export and drawn samples that logging.yaml asks for). ``mlflow_run.json`` in the run
folder names the run, so ``--resume`` goes on logging into it.

Starting the run is checked (an unreachable server is an error before training); a logging call that fails later is
a warning, and the run goes on without MLflow.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from ..checkpoint import atomic_write_text
from ..errors import UNUSABLE, RunError

__all__ = ["RUN_ID_FILE", "MlflowLog", "flatten_params", "require_mlflow", "tracking_uri"]

RUN_ID_FILE = "mlflow_run.json"
PARAM_SECTIONS = ("training", "data", "augmentation", "environment", "model")  # NetsPresso's log_hparams
ARTIFACTS = ("best.safetensors", "resolved.yaml", "metrics.csv", "model.py", "bad_samples.json")
_BATCH = 100  # params per log_batch call (MLflow's limit)
_VALUE_LIMIT = 500  # characters of a param value (MLflow's smallest limit across versions)


def require_mlflow() -> None:
    """Import mlflow now: without the extra, the command ends before any work, naming it (npc/cli/exits.py)."""
    import mlflow  # noqa: F401


def tracking_uri(run_dir: Path) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or (run_dir / "mlruns").resolve().as_uri()


def _allow_file_store(uri: str) -> None:
    if "://" not in uri or uri.startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")


def flatten_params(document: dict[str, Any]) -> dict[str, str]:
    """``{"training.optimizer.lr": "0.001", ...}``: the sections' leaves, list items by index, as strings."""
    out: dict[str, str] = {}

    def walk(value: Any, key: str) -> None:
        if isinstance(value, dict) and value:
            for name, item in value.items():
                walk(item, f"{key}.{name}")
        elif isinstance(value, list) and value and any(isinstance(item, (dict, list)) for item in value):
            for index, item in enumerate(value):
                walk(item, f"{key}.{index}")
        else:
            out[_param_key(key)] = str(value)[:_VALUE_LIMIT]

    for section in PARAM_SECTIONS:
        if document.get(section) is not None:
            walk(document[section], section)
    return out


def _param_key(key: str) -> str:
    """MLflow's keys allow letters, digits, ``_ - . / :`` and spaces; anything else (an id_mapping's ``(0, 0, 0)``)
    becomes ``_``."""
    return "".join(c if c.isalnum() or c in "_-./: " else "_" for c in key)[:250]


class MlflowLog:
    """One MLflow run; every call after a failure is a no-op (the failure was shown once)."""

    def __init__(self, client: Any, run_id: str, console: Any) -> None:
        self.client, self.run_id, self.console = client, run_id, console
        self.failed = False

    @classmethod
    def start(cls, run_dir: Path, document: dict[str, Any], console: Any, *, resuming: bool) -> MlflowLog:
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        uri = tracking_uri(run_dir)
        _allow_file_store(uri)
        previous = _previous_run(run_dir, uri) if resuming else None
        try:
            client = MlflowClient(tracking_uri=uri)
            if previous is not None:
                client.update_run(previous, status="RUNNING")
                return cls(client, previous, console)
            name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or "Default"
            experiment = client.get_experiment_by_name(name)
            experiment_id = experiment.experiment_id if experiment is not None else client.create_experiment(name)
            run = client.create_run(
                experiment_id, run_name=run_dir.resolve().name, tags={"npc.run_folder": str(run_dir.resolve())}
            )
            log = cls(client, run.info.run_id, console)
            log._params(flatten_params(document))
        except (MlflowException, OSError) as exc:
            message = getattr(exc, "message", None) or str(exc)
            raise RunError(f"logging.mlflow: cannot start an MLflow run at {uri}: {message}", UNUSABLE) from None
        record = {"tracking_uri": uri, "run_id": log.run_id, "experiment": name}
        atomic_write_text(run_dir / RUN_ID_FILE, json.dumps(record, indent=2) + "\n")
        console.print(f"mlflow: run {log.run_id} in experiment {name!r} at {uri}", highlight=False, soft_wrap=True)
        return log

    @classmethod
    def reopen(cls, run_dir: Path, console: Any) -> MlflowLog | None:
        """The run ``mlflow_run.json`` names, to add artifacts after training; None without one."""
        from mlflow.tracking import MlflowClient

        uri = tracking_uri(run_dir)
        run_id = _previous_run(run_dir, uri)
        if run_id is None:
            return None
        _allow_file_store(uri)
        return cls(MlflowClient(tracking_uri=uri), run_id, console)

    def _params(self, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(key, value) for key, value in params.items()]
        for start in range(0, len(items), _BATCH):
            self.client.log_batch(self.run_id, params=items[start : start + _BATCH])

    def epoch(self, row: dict[str, Any]) -> None:
        """One metrics.csv row (its numbers) at step ``epoch``."""

        def log() -> None:
            from mlflow.entities import Metric

            now = int(time.time() * 1000)
            metrics = [
                Metric(key, float(value), now, int(row["epoch"]))
                for key, value in row.items()
                if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool)
            ]
            self.client.log_batch(self.run_id, metrics=metrics)

        self._safely("metrics", log)

    def artifacts(self, paths: list[Path], folder: str | None = None) -> None:
        def log() -> None:
            for path in paths:
                if path.is_dir():
                    self.client.log_artifacts(self.run_id, str(path), folder or path.name)
                elif path.is_file():
                    self.client.log_artifact(self.run_id, str(path), folder)

        self._safely("artifacts", log)

    def end(self, finished: bool) -> None:
        """Marks the run FINISHED, KILLED (interrupted or stopped by a signal) or FAILED."""
        error = sys.exc_info()[1]
        stopped = isinstance(error, KeyboardInterrupt) or hasattr(error, "signal")
        status = "FINISHED" if finished else "KILLED" if stopped else "FAILED"
        self._safely("the run's status", lambda: self.client.set_terminated(self.run_id, status))

    def _safely(self, what: str, call) -> None:
        if self.failed:
            return
        try:
            call()
        except Exception as exc:  # any failure of the tracking backend: warn once, keep training
            self.failed = True
            self.console.print(
                f"[yellow]warning:[/] logging.mlflow: could not log {what} ({exc}); MLflow logging stops here, "
                "the run goes on",
                highlight=False,
                soft_wrap=True,
            )


def _previous_run(run_dir: Path, uri: str) -> str | None:
    try:
        record = json.loads((run_dir / RUN_ID_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record.get("run_id") if isinstance(record, dict) and record.get("tracking_uri") == uri else None
