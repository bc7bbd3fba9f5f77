"""bench/train_step.py times a compiled model's training step in each memory format and precision it names, and the
step trains (so the figures in docs/benchmarks.md are of real steps)."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from tests.helpers import REPO
from tests.unit.runtime.conftest import TINY_MODEL


def _module():
    spec = importlib.util.spec_from_file_location("train_step", REPO / "bench" / "train_step.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("mode", ["fp32", "channels_last", "bf16", "bf16+channels_last"])
def test_a_step_is_timed_in_every_mode(tmp_path, mode):
    path = tmp_path / "tiny_model.py"
    path.write_text(TINY_MODEL)
    seconds = _module().step_seconds(path, side=16, classes=3, batch=4, mode=mode, steps=1)
    assert 0 < seconds < 10


def test_outputs_are_found_in_nested_results():
    found = _module().outputs({"pred": [torch.ones(2), (torch.zeros(1),)], "note": "text"})
    assert [t.numel() for t in found] == [2, 1]
