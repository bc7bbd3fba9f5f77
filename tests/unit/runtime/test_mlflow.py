"""``logging.mlflow: true`` (NetsPresso Trainer's logging.yaml): the run tracked with MLflow in a local folder, read
back with MLflow's own client: params, every epoch's metrics, the best weights as an artifact; resuming continues the
same run; a missing library names the extra.
"""

from __future__ import annotations

import csv
import json
import sys

import pytest

from npc.runtime.engine.tracking import flatten_params
from tests.helpers import run_cli

mlflow = pytest.importorskip("mlflow", reason="the mlflow extra (pip install 'npc[mlflow]') is not installed")

TWO_EPOCHS = "epochs: 2\nbatch_size: 8\nnum_workers: 0\noptimizer: {name: adamw, lr: 0.01}\n"
LOGGING = "logging:\n  mlflow: true\n  tensorboard: false\n"


@pytest.fixture
def tracked(tmp_path, write_spec, make_images, monkeypatch):
    """(argv of a two-epoch run with mlflow on, its run folder)."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 asks for it to read a folder store back
    for name in ("a", "b"):
        make_images(tmp_path / "imgs" / name, 6, color=(200, 30, 30) if name == "a" else (30, 30, 200))
    spec = write_spec(TWO_EPOCHS, f"path: {{root: {tmp_path / 'imgs'}, train: {{image: .}}}}\nimage_size: 16")
    logging = tmp_path / "logging.yaml"
    logging.write_text(LOGGING)
    run = tmp_path / "run"
    return ["train", spec, "--logging", logging, "--out", run], run


def _client(run):
    from mlflow.tracking import MlflowClient

    record = json.loads((run / "mlflow_run.json").read_text())
    assert record["tracking_uri"] == (run / "mlruns").resolve().as_uri()
    return MlflowClient(tracking_uri=record["tracking_uri"]), record["run_id"]


def test_two_epochs_are_read_back_with_mlflows_client(capsys, tracked, tiny_model_py):
    argv, run = tracked
    code, out, err = run_cli(capsys, *argv, "--model-py", tiny_model_py)
    assert code == 0, err
    assert "mlflow: run " in out and "experiment 'Default'" in out
    client, run_id = _client(run)
    found = client.get_run(run_id)
    assert found.info.status == "FINISHED" and found.info.run_name == "run"
    params = found.data.params
    assert params["training.optimizer.lr"] == "0.01" and params["training.epochs"] == "2"
    assert params["data.image_size"] == "16" and params["model.task"] == "classification"
    with (run / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    for column in ("train_loss", "valid_loss", "valid_top1", "lr"):
        history = sorted((m.step, m.value) for m in client.get_metric_history(run_id, column))
        assert [step for step, _ in history] == [int(r["epoch"]) for r in rows], column
        assert [value for _, value in history] == pytest.approx([float(r[column]) for r in rows], rel=1e-5), column
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"best.safetensors", "resolved.yaml", "metrics.csv", "model.py"} <= artifacts
    assert "last.safetensors" not in artifacts and "training_state.pt" not in artifacts  # as NetsPresso: best only


def test_a_resumed_run_goes_on_in_the_same_mlflow_run(capsys, tracked, tiny_model_py):
    argv, run = tracked
    code, _, err = run_cli(capsys, *argv, "--model-py", tiny_model_py, "--epochs", "1")
    assert code == 0, err
    first = json.loads((run / "mlflow_run.json").read_text())["run_id"]
    code, _, err = run_cli(capsys, *argv, "--model-py", tiny_model_py, "--resume", run / "training_state.pt")
    assert code == 0, err
    client, run_id = _client(run)
    assert run_id == first and client.get_run(run_id).info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run_id, "train_loss")] == [1, 2]


def test_mlflow_tracking_uri_is_honoured(capsys, tracked, tiny_model_py, tmp_path, monkeypatch):
    argv, run = tracked
    elsewhere = (tmp_path / "tracking").resolve().as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", elsewhere)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "tiny")
    code, _, err = run_cli(capsys, *argv, "--model-py", tiny_model_py, "--epochs", "1")
    assert code == 0, err
    assert not (run / "mlruns").exists()
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=elsewhere)
    (found,) = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    assert found.info.run_id == json.loads((run / "mlflow_run.json").read_text())["run_id"]


def test_without_the_library_train_stops_naming_the_mlflow_extra(capsys, tracked, tiny_model_py, monkeypatch):
    argv, run = tracked
    monkeypatch.setitem(sys.modules, "mlflow", None)  # `import mlflow` now fails as if not installed
    code, _, err = run_cli(capsys, *argv, "--model-py", tiny_model_py)
    assert code == 2
    assert "needs the mlflow extra (no module named 'mlflow'): pip install 'npc[mlflow]'" in err
    assert not run.exists()  # before any work


def test_params_flatten_as_netspresso_and_keys_stay_legal():
    document = {
        "training": {"optimizer": {"name": "sgd", "betas": [0.9, 0.99]}, "ema": None},
        "data": {"id_mapping": {"(0, 0, 0)": "background"}},
        "augmentation": {"train": [{"name": "resize", "size": [8, 8]}]},
        "logging": {"mlflow": True},  # not a section NetsPresso logs
    }
    assert flatten_params(document) == {
        "training.optimizer.name": "sgd",
        "training.optimizer.betas": "[0.9, 0.99]",
        "training.ema": "None",
        "data.id_mapping._0_ 0_ 0_": "background",
        "augmentation.train.0.name": "resize",
        "augmentation.train.0.size": "[8, 8]",
    }
