"""Faults during training, each injected in-process on the tiny model and 16x16 digits (11 steps per epoch):
SIGTERM/SIGINT at seeded steps, a second signal during the save, step checkpoints, NaN losses under both policies,
disk full (RLIMIT_FSIZE), two runs in one folder, and run folders that cannot be written. Every interrupted run is
resumed and must end with the very weights of an uninterrupted one."""

import os
import resource
import signal
import subprocess
import sys
import threading
import time
import warnings

import pytest
import torch
from rich.console import Console

from helpers import run_cli
from npc.cli.exits import exit_code_for
from npc.runtime.checkpoint import load_training_state, load_weights
from npc.runtime.engine import Interrupted, TrainOptions, train
from npc.runtime.engine import faults as _faults
from npc.runtime.engine import trainer as _train
from npc.runtime.errors import RunError
from npc.spec.run_config import load_run_config

STEPS = 11  # per epoch: digits' train split in batches of 128
TRAINING = """
epochs: 2
batch_size: 128
seed: 3
optimizer: {name: adamw, lr: 0.01}
scheduler: {name: cosine_no_sgdr, warmup_epochs: 1, warmup_bias_lr: 0.001}
ema: {name: constant_decay, decay: 0.9}
max_norm: 1.0
"""
DIGITS_16 = "format: digits\nimage_size: 16"


def _run(spec, out, tiny_model_py, **kwargs):
    options = TrainOptions(out_dir=out, model_py=tiny_model_py, tensorboard=False, **kwargs)
    return train(load_run_config(spec), options, Console(file=open(os.devnull, "w"), width=200))  # noqa: SIM115


def _weights(folder):
    return load_weights(folder / "last.safetensors")[0]


def _assert_same_weights(expected, folder):
    got = _weights(folder)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(got[key], value), f"{folder.name}: {key} differs from the uninterrupted run"
    assert not list(folder.glob(".*.tmp")), "a temporary file was left behind"


@pytest.fixture
def straight(tmp_path, write_spec, tiny_model_py):
    """(spec, the weights of an uninterrupted run): the reference every faulted run must reach."""
    spec = write_spec(TRAINING, DIGITS_16)
    _run(spec, tmp_path / "straight", tiny_model_py)
    return spec, _weights(tmp_path / "straight")


def _signal_at(monkeypatch, global_step, signum=signal.SIGTERM, times=1):
    """Send ``signum`` to this process ``times`` times while step ``global_step`` (0-based, whole run) reports."""
    real_step = _train.Reporter.step

    def step(self, at, *args):
        real_step(self, at, *args)
        if at == global_step:
            for _ in range(times):
                os.kill(os.getpid(), signum)

    monkeypatch.setattr(_train.Reporter, "step", step)


# --- signals ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("global_step", "signum", "code", "saved_at"),
    [
        (4, signal.SIGTERM, 143, (0, 5)),
        (15, signal.SIGTERM, 143, (1, 5)),
        (10, signal.SIGINT, 130, (0, 11)),  # the epoch's last step: saved before its validation
        (20, signal.SIGINT, 130, (1, 10)),
    ],
    ids=["term-epoch1-step5", "term-epoch2-step5", "int-last-step-of-epoch1", "int-epoch2-step10"],
)
def test_a_signal_saves_mid_epoch_and_the_resumed_run_is_bit_identical(
    tmp_path, straight, tiny_model_py, monkeypatch, global_step, signum, code, saved_at
):
    spec, expected = straight
    _signal_at(monkeypatch, global_step, signum)
    with pytest.raises(Interrupted) as info:
        _run(spec, tmp_path / "cut", tiny_model_py)
    monkeypatch.undo()
    assert exit_code_for(info.value) == code
    assert f"stopped by {signal.Signals(signum).name}" in info.value.message
    assert f"--resume {tmp_path / 'cut'}" in info.value.message
    state = load_training_state(tmp_path / "cut")
    assert (state["epoch"], state["progress"]["step"]) == saved_at  # the step under way when it came finished

    _run(spec, tmp_path / "cut", tiny_model_py, resume=tmp_path / "cut")
    _assert_same_weights(expected, tmp_path / "cut")


def test_more_signals_during_the_save_are_ignored_and_the_state_is_whole(
    tmp_path, straight, tiny_model_py, monkeypatch
):
    spec, expected = straight
    _signal_at(monkeypatch, 6)
    real_save = torch.save

    def save_under_fire(obj, f, *args, **kwargs):  # two more SIGTERMs and a SIGINT land while the state is written
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGTERM):
            # to the main thread, which handles signals (the state is written on a thread of its own), one at a
            # time: a signal that arrives while another of its kind is pending is one signal to the process
            signal.pthread_kill(threading.main_thread().ident, signum)
            time.sleep(0.05)
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save_under_fire)
    with pytest.raises(Interrupted) as info:
        _run(spec, tmp_path / "cut", tiny_model_py)
    monkeypatch.undo()
    assert exit_code_for(info.value) == 143  # the first signal decides
    assert "3 further signal(s)" in info.value.message
    assert load_training_state(tmp_path / "cut")["progress"]["step"] == 7
    _run(spec, tmp_path / "cut", tiny_model_py, resume=tmp_path / "cut")
    _assert_same_weights(expected, tmp_path / "cut")


def test_a_signal_during_setup_stops_before_the_first_step_with_nothing_to_resume(tmp_path, write_spec, tiny_model_py):
    spec = write_spec(TRAINING, DIGITS_16)
    config = load_run_config(spec)
    real_build = _train.build

    def build_then_signal(*args):
        os.kill(os.getpid(), signal.SIGTERM)
        return real_build(*args)

    _train.build = build_then_signal
    try:
        with pytest.raises(Interrupted) as info:
            train(config, TrainOptions(out_dir=tmp_path / "run", model_py=tiny_model_py, tensorboard=False))
    finally:
        _train.build = real_build
    assert exit_code_for(info.value) == 143 and "before the first step: nothing to resume" in info.value.message
    assert not (tmp_path / "run" / "training_state.pt").exists()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handlers are put back


# --- step checkpoints ------------------------------------------------------------------------------------------


def test_checkpoint_every_steps_saves_mid_epoch_and_a_crash_loses_at_most_that(
    tmp_path, straight, write_spec, tiny_model_py, monkeypatch
):
    _, expected = straight
    spec = write_spec(TRAINING + "checkpoint_every: {steps: 5}\n", DIGITS_16, name="every5.yaml")
    saved = []
    real_save = _train.save_training_state
    monkeypatch.setattr(
        _train,
        "save_training_state",
        lambda path, state: (saved.append(state["progress"]["step"]), real_save(path, state)),
    )
    real_step = _train.Reporter.step

    def crash_at_step_18(self, at, *args):  # a hard crash: nothing is saved on the way out
        if at == 18:
            raise SystemError("power cut")
        real_step(self, at, *args)

    monkeypatch.setattr(_train.Reporter, "step", crash_at_step_18)
    with pytest.raises(SystemError):
        _run(spec, tmp_path / "run", tiny_model_py)
    monkeypatch.undo()
    assert saved == [5, 10, 0, 4]  # global steps 5, 10, the end of epoch 1 (11), 15
    state = load_training_state(tmp_path / "run")
    assert (state["epoch"], state["progress"]["step"]) == (1, 4)  # 3 steps lost: under the 5 allowed
    _run(spec, tmp_path / "run", tiny_model_py, resume=tmp_path / "run")
    _assert_same_weights(expected, tmp_path / "run")


def test_a_mid_epoch_state_refuses_another_batch_size(tmp_path, write_spec, tiny_model_py, monkeypatch):
    spec = write_spec(TRAINING, DIGITS_16)
    _signal_at(monkeypatch, 3)
    with pytest.raises(Interrupted):
        _run(spec, tmp_path / "run", tiny_model_py)
    monkeypatch.undo()
    other = write_spec(TRAINING.replace("batch_size: 128", "batch_size: 64"), DIGITS_16, name="other.yaml")
    with pytest.raises(RunError, match=r"saved 4 steps into an epoch of 11 steps; this run has 22 per epoch"):
        _run(other, tmp_path / "run", tiny_model_py, resume=tmp_path / "run")


def test_checkpoint_every_minutes_follows_the_clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(_faults.time, "monotonic", lambda: now[0])
    clock = _faults.CheckpointClock({"minutes": 2})
    assert not clock.due(1)
    now[0] += 119
    assert not clock.due(2)
    now[0] += 1
    assert clock.due(3)
    clock.saved()
    assert not clock.due(4)
    both = _faults.CheckpointClock({"steps": 10, "minutes": 60})
    assert both.due(10) and not both.due(11)
    assert not _faults.CheckpointClock(None).due(10)


def test_checkpoint_every_is_validated(write_spec):
    from npc.spec import SpecError

    for bad in ("checkpoint_every: {steps: 0}", "checkpoint_every: {}", "checkpoint_every: {hours: 1}"):
        spec = write_spec(TRAINING + bad + "\n", DIGITS_16)
        with pytest.raises(SpecError) as info:
            load_run_config(spec)
        assert "/training/checkpoint_every" in str(info.value.diagnostics[0].pointer)


# --- non-finite losses -----------------------------------------------------------------------------------------


def _nan_at(monkeypatch, steps):
    """The loss (and its cross_entropy term) is NaN at these global steps (0-based)."""
    real_forward = _train._forward
    calls = [0]

    def forward(run, images, target):
        loss, parts = real_forward(run, images, target)
        at, calls[0] = calls[0], calls[0] + 1
        if at in steps:
            return loss * float("nan"), {**parts, "cross_entropy": float("nan")}
        return loss, parts

    monkeypatch.setattr(_train, "_forward", forward)


@pytest.mark.parametrize("global_step", [0, 7, 17])
def test_a_nan_loss_stops_naming_epoch_step_term_and_last_good_checkpoint(
    tmp_path, write_spec, tiny_model_py, monkeypatch, global_step
):
    spec = write_spec(TRAINING, DIGITS_16)
    _nan_at(monkeypatch, {global_step})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(RunError) as info:
            _run(spec, tmp_path / "run", tiny_model_py)
    epoch, step = divmod(global_step, STEPS)
    message = info.value.message
    assert f"the loss became nan at epoch {epoch + 1}, step {step + 1} (cross_entropy = nan)" in message
    good = f"{tmp_path / 'run' / 'training_state.pt'} (epoch 1 done)" if epoch else "none (nothing saved yet)"
    assert f"last good checkpoint: {good}" in message
    assert not [w for w in caught if issubclass(w.category, UserWarning)], [str(w.message) for w in caught]
    if epoch:  # best and last are those of epoch 1, finite
        for name in ("best.safetensors", "last.safetensors"):
            weights, meta = load_weights(tmp_path / "run" / name)
            assert meta["epoch"] == 1 and all(t.isfinite().all() for t in weights.values())
    else:
        assert not (tmp_path / "run" / "last.safetensors").exists()


@pytest.mark.parametrize("steps", [{0}, {5, 6}, {13, 18, 21}])
def test_skip_leaves_nonfinite_steps_out_and_finishes_with_finite_weights(
    tmp_path, write_spec, tiny_model_py, monkeypatch, steps
):
    spec = write_spec(TRAINING + "on_nonfinite: skip\n", DIGITS_16)
    _nan_at(monkeypatch, steps)
    result = _run(spec, tmp_path / "run", tiny_model_py)
    assert result.epochs_done == 2
    for name in ("best.safetensors", "last.safetensors"):
        assert all(t.isfinite().all() for t in load_weights(tmp_path / "run" / name)[0].values())
    assert all(t.isfinite().all() for t in load_training_state(tmp_path / "run")["model"].values())


def test_skip_stops_after_too_many_nonfinite_steps_in_a_row(tmp_path, write_spec, tiny_model_py, monkeypatch):
    spec = write_spec(TRAINING + "on_nonfinite: skip\nmax_consecutive_nonfinite: 3\n", DIGITS_16)
    _nan_at(monkeypatch, {2, 3, 5, 6, 7, 8})  # two in a row, then four: the third of those stops it
    with pytest.raises(RunError) as info:
        _run(spec, tmp_path / "run", tiny_model_py)
    assert info.value.message.startswith("3 steps in a row were skipped (training.max_consecutive_nonfinite)")
    assert "at epoch 1, step 8 (cross_entropy = nan)" in info.value.message


# --- disk full -------------------------------------------------------------------------------------------------


@pytest.fixture
def file_size_limit():
    """set(n): files this process writes stop at n bytes (EFBIG; Python ignores SIGXFSZ); undone afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    yield lambda n: resource.setrlimit(resource.RLIMIT_FSIZE, (n, hard))
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def _sizes(folder):
    return {name: (folder / name).stat().st_size for name in ("last.safetensors", "training_state.pt")}


@pytest.mark.parametrize(
    "point",
    ["best (epoch 2)", "training_state (epoch 2)", "mid-epoch state", "stop-signal state", "first epoch"],
)
def test_disk_full_while_saving_keeps_the_previous_files_and_names_the_file(
    capsys, tmp_path, write_spec, tiny_model_py, monkeypatch, file_size_limit, point
):
    spec = write_spec(TRAINING + ("checkpoint_every: {steps: 5}\n" if point == "mid-epoch state" else ""), DIGITS_16)
    run = tmp_path / "run"
    argv = ["train", spec, "--model-py", tiny_model_py, "--out", run, "--no-tensorboard"]
    if point != "first epoch":
        assert run_cli(capsys, *argv, "--epochs", "1")[0] == 0
    sizes = _sizes(run) if point != "first epoch" else {"last.safetensors": 4096, "training_state.pt": 4096}
    before = (
        {p.name: p.read_bytes() for p in run.iterdir() if p.suffix in (".safetensors", ".pt")} if run.exists() else {}
    )
    limit = {  # a size between the files that get written and the one that must fail
        "best (epoch 2)": sizes["last.safetensors"] - 1,
        "training_state (epoch 2)": sizes["training_state.pt"] - 1,
        "mid-epoch state": sizes["training_state.pt"] - 1,
        "stop-signal state": sizes["training_state.pt"] - 1,
        "first epoch": sizes["last.safetensors"] - 1,
    }[point]
    if point == "stop-signal state":
        _signal_at(monkeypatch, 14)
    resume = ["--resume", run] if point != "first epoch" else []
    file_size_limit(limit)
    code, _, err = run_cli(capsys, *argv, "--epochs", "2", *resume)
    file_size_limit(resource.RLIM_INFINITY)
    failed = "training_state.pt" if "state" in point else ("best.safetensors" if point == "first epoch" else "")
    assert code == 1, err
    assert "could not be written (File too large)" in err
    if failed:
        assert f"{run / failed}: could not be written" in err
    assert not list(run.glob(".*.tmp")), "a temporary file was left behind"
    monkeypatch.undo()
    kept = ["training_state.pt"] + ([] if point == "training_state (epoch 2)" else ["last.safetensors"])
    for name in kept if before else []:
        assert (run / name).read_bytes() == before[name], f"{name} changed"
    if before:  # the run still resumes from what is on disk
        assert load_training_state(run)["epoch"] == 1
        load_weights(run / "last.safetensors")
        assert run_cli(capsys, *argv, "--epochs", "2", "--resume", run)[0] == 0


# --- the run folder --------------------------------------------------------------------------------------------

HOLD = """
import sys, time
from pathlib import Path
from npc.runtime.engine.faults import claim_run_folder
claim_run_folder(Path(sys.argv[1]))
print("held", flush=True)
time.sleep(60)
"""


def test_a_second_run_in_a_busy_folder_is_refused_and_a_stale_lock_is_taken_over(
    capsys, tmp_path, write_spec, tiny_model_py
):
    spec = write_spec(TRAINING.replace("epochs: 2", "epochs: 1"), DIGITS_16)
    run = tmp_path / "run"
    argv = ["train", spec, "--model-py", tiny_model_py, "--out", run, "--no-tensorboard"]
    code, out, _ = run_cli(capsys, *argv)
    assert code == 0 and "took over the lock" not in out  # a new folder's own lock file is nobody's stale lock
    before = (run / "last.safetensors").read_bytes()
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        for extra in ([], ["--resume", run]):  # replacing the run, or resuming it: both refused
            code, _, err = run_cli(capsys, *argv, *extra)
            assert code == 2
            assert f"{run}: another npc train is running in this folder (PID {holder.pid} on " in err
        assert (run / "last.safetensors").read_bytes() == before  # the running one keeps its files
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    (run / ".last.safetensors.abc123.tmp").write_bytes(b"half a file")  # what a kill mid-save leaves
    code, out, _ = run_cli(capsys, *argv)
    assert code == 0
    assert f"took over the lock of {run}: PID {holder.pid} on " in out and "which is no longer running" in out
    assert "removed 1 temporary file(s)" in out
    assert not (run / _faults.LOCK_NAME).exists() and not list(run.glob(".*.tmp"))


@pytest.mark.parametrize("case", ["a file as the folder", "a file as a parent", "no write permission"])
def test_a_run_folder_that_cannot_be_written_is_refused_before_training(
    capsys, tmp_path, write_spec, tiny_model_py, monkeypatch, case
):
    spec = write_spec(TRAINING, DIGITS_16)
    (tmp_path / "taken").write_text("not a folder")
    out, expected = {
        "a file as the folder": (tmp_path / "taken", f"{tmp_path / 'taken'}: is a file, not a folder"),
        "a file as a parent": (tmp_path / "taken" / "run", f"{tmp_path / 'taken'}: (a parent of "),
        "no write permission": (tmp_path / "ro" / "run", "cannot write in "),
    }[case]
    if case == "no write permission":
        (tmp_path / "ro").mkdir(mode=0o555)
        if os.geteuid() == 0:  # root writes anywhere: ask os.access as an ordinary user would be answered
            monkeypatch.setattr(_faults, "_writable", lambda folder: False)
    monkeypatch.setattr(_train, "build_data", lambda *a, **k: pytest.fail("training data was built"))
    code, _, err = run_cli(capsys, "train", spec, "--model-py", tiny_model_py, "--out", out, "--no-tensorboard")
    assert code == 2 and expected in err, err
