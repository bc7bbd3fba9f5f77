"""A train or validation image that passes the up-front check and then breaks while the run goes on (corrupted,
cut short, or deleted after epoch 1): under ``--on-bad-sample skip`` it is dropped from its batch and counted;
under ``error`` the run stops naming the file, and the run folder keeps epoch 1. Also through a DataLoader worker
process."""

import json

import pytest
from PIL import Image

from helpers import run_cli
from npc.runtime.checkpoint import load_training_state
from npc.runtime.engine import trainer as _train

DAMAGE = {
    "corrupted": lambda path: path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64),
    "cut short": lambda path: path.write_bytes(path.read_bytes()[: path.stat().st_size // 2]),
    "deleted": lambda path: path.unlink(),
}
REASON = {"corrupted": "corrupt image", "cut short": "corrupt image", "deleted": "missing image"}


@pytest.fixture
def folders_spec(tmp_path, write_spec):
    """(spec, the train image that will break): two classes, 6 train and 2 valid images each, 8x8."""
    for split, count in (("train", 6), ("valid", 2)):
        for name in ("ant", "bee"):
            for i in range(count):
                folder = tmp_path / "data" / split / name
                folder.mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (8, 8), (30 * i, 10, 200 if name == "bee" else 0)).save(folder / f"{i}.png")
    training = "epochs: 2\nbatch_size: 4\noptimizer: {name: adamw, lr: 0.01}\nnum_workers: {workers}"
    data = f"path: {{root: {tmp_path / 'data'}, train: {{image: train}}, valid: {{image: valid}}}}\nimage_size: 8"
    return (lambda workers: write_spec(training.replace("{workers}", str(workers)), data)), (
        tmp_path / "data" / "train" / "bee" / "3.png"
    )


def _break_after_epoch_1(monkeypatch, damage, path):
    real_end = _train.Reporter.end_epoch

    def end_epoch(self, row, improved):
        real_end(self, row, improved)
        if row["epoch"] == 1:
            DAMAGE[damage](path)

    monkeypatch.setattr(_train.Reporter, "end_epoch", end_epoch)


@pytest.mark.parametrize(("damage", "workers"), [("corrupted", 0), ("cut short", 0), ("deleted", 0), ("deleted", 1)])
def test_skip_drops_a_file_that_breaks_mid_run_and_counts_it(
    capsys, tmp_path, folders_spec, tiny_model_py, monkeypatch, damage, workers
):
    spec, victim = folders_spec
    _break_after_epoch_1(monkeypatch, damage, victim)
    run = tmp_path / "run"
    argv = ["train", spec(workers), "--model-py", tiny_model_py, "--out", run, "--no-tensorboard"]
    code, out, err = run_cli(capsys, *argv, "--on-bad-sample", "skip")
    assert code == 0, err
    assert f"skipped {victim}: " in out and "(it no longer reads; --on-bad-sample skip)" in out
    record = json.loads((run / "bad_samples.json").read_text())
    assert record["skipped"] == [
        {"split": "train", "reason": REASON[damage], "path": str(victim), "message": record["skipped"][0]["message"]}
    ]
    assert load_training_state(run)["epoch"] == 2


@pytest.mark.parametrize(("damage", "workers"), [("corrupted", 0), ("cut short", 1), ("deleted", 0)])
def test_error_stops_at_a_file_that_breaks_mid_run_naming_it(
    capsys, tmp_path, folders_spec, tiny_model_py, monkeypatch, damage, workers
):
    spec, victim = folders_spec
    _break_after_epoch_1(monkeypatch, damage, victim)
    run = tmp_path / "run"
    code, _, err = run_cli(
        capsys, "train", spec(workers), "--model-py", tiny_model_py, "--out", run, "--no-tensorboard"
    )
    assert code == (2 if damage == "deleted" else 1)
    reason = "image not found" if damage == "deleted" else "cannot decode image"
    assert err.startswith(f"npc train: error: {victim}: {reason}"), err
    assert load_training_state(run)["epoch"] == 1  # the run folder keeps the last whole epoch
    assert not list(run.glob(".*.tmp"))


@pytest.mark.parametrize("workers", [0, 1])
def test_skip_drops_a_validation_file_that_breaks_mid_run(
    capsys, tmp_path, folders_spec, tiny_model_py, monkeypatch, workers
):
    """The validation split under ``skip`` as the train split: the file is left out of the metric, counted once."""
    spec, train_victim = folders_spec
    victim = train_victim.parent.parent.parent / "valid" / "ant" / "1.png"
    _break_after_epoch_1(monkeypatch, "corrupted", victim)
    run = tmp_path / "run"
    argv = ["train", spec(workers), "--model-py", tiny_model_py, "--out", run, "--no-tensorboard"]
    code, out, err = run_cli(capsys, *argv, "--on-bad-sample", "skip")
    assert code == 0, err
    assert f"skipped {victim}: " in out
    record = json.loads((run / "bad_samples.json").read_text())
    assert [(s["split"], s["path"]) for s in record["skipped"]] == [("valid", str(victim))]
    assert load_training_state(run)["epoch"] == 2


def test_error_stops_at_a_validation_file_that_breaks_mid_run(
    capsys, tmp_path, folders_spec, tiny_model_py, monkeypatch
):
    spec, train_victim = folders_spec
    victim = train_victim.parent.parent.parent / "valid" / "bee" / "0.png"
    _break_after_epoch_1(monkeypatch, "corrupted", victim)
    run = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", spec(0), "--model-py", tiny_model_py, "--out", run, "--no-tensorboard")
    assert code == 1
    assert err.startswith(f"npc train: error: {victim}: cannot decode image"), err
    assert load_training_state(run)["epoch"] == 1
