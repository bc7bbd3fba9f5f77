"""Crash safety: `npc train` killed with SIGKILL at random moments leaves a run that resumes to the very weights
of an uninterrupted run, and never a checkpoint that does not load (checkpoints are written to a temp file and
renamed). N = 10 kills, at seeded random moments spread over the whole run. Training augments its batches
(kornia, drawn per (seed, epoch, step)), so the resumed runs must also replay the same augmentations."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from helpers import REPO
from npc.runtime._checkpoint import load_training_state, load_weights

SPEC = REPO / "examples" / "resnet-digits.yaml"
KILLS = 10
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


def _train_command(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "npc", "train", str(SPEC), "--out", str(out), "--epochs", "4",
            "--data", str(out.parent / "data.yaml"), "--augmentation", str(out.parent / "augmentation.yaml"),
            "--no-tensorboard", "--device", "cpu", *extra]  # fmt: skip


def _run(command: list[str]) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def _final(folder: Path) -> dict[str, torch.Tensor]:
    weights, _ = load_weights(folder / "last.safetensors")
    return weights


@pytest.mark.slow
def test_sigkill_at_any_moment_then_resume_gives_the_uninterrupted_weights(tmp_path):
    (tmp_path / "data.yaml").write_text("data:\n  format: digits\n  image_size: 16\n")
    (tmp_path / "augmentation.yaml").write_text(
        "augmentation:\n  train:\n    - {name: randomresizedcrop, size: 16, scale: [0.6, 1.0]}\n"
        "    - {name: randomhorizontalflip, p: 0.5}\n"
    )
    started = time.monotonic()
    _run(_train_command(tmp_path / "reference"))
    duration = time.monotonic() - started
    reference = _final(tmp_path / "reference")

    moments = random.Random(7).sample([duration * i / (KILLS + 1) for i in range(1, KILLS + 1)], KILLS)
    for index, moment in enumerate(moments):
        out = tmp_path / f"killed-{index}"
        process = subprocess.Popen(_train_command(out), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(moment)
        process.send_signal(signal.SIGKILL)
        process.wait()

        state_file = out / "training_state.pt"
        if state_file.exists():  # whatever was on disk at the kill must load
            state = load_training_state(state_file)
            assert 1 <= state["epoch"] <= 4
            load_weights(out / "last.safetensors")
            _run(_train_command(out, "--resume", str(out)))
        else:  # killed before the first epoch ended: nothing to resume, start again
            assert not (out / "last.safetensors").exists()
            _run(_train_command(out))
        resumed = _final(out)
        assert resumed.keys() == reference.keys()
        for key, value in reference.items():
            assert torch.equal(resumed[key], value), f"kill {index} at {moment:.1f}s: {key} differs"
        assert not list(out.glob("*.tmp*")), "a temporary file was left behind"
