"""Weights and training state: atomic writes, load_head, key reports, safe loading."""

import collections
import importlib.util
import random
import threading
import time

import numpy as np
import pytest
import torch

from npc.cli.exits import exit_code_for
from npc.runtime import checkpoint as _checkpoint
from npc.runtime.checkpoint import (
    BackgroundWriter,
    apply_weights,
    capture_rng,
    load_training_state,
    load_weights,
    restore_rng,
    save_training_state,
    save_weights,
)
from npc.runtime.errors import CheckpointError


def _model(tiny_model_py, num_classes=10, seed=0):
    spec = importlib.util.spec_from_file_location("tiny_for_ckpt", tiny_model_py)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.manual_seed(seed)
    return module.build_model(num_classes)


def _same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def test_safetensors_round_trip_with_metadata(tmp_path, tiny_model_py):
    model = _model(tiny_model_py)
    save_weights(tmp_path / "w.safetensors", model.state_dict(), {"num_classes": 10, "class_names": ["a"]})
    state, meta = load_weights(tmp_path / "w.safetensors")
    assert _same(state, model.state_dict())
    assert meta == {"num_classes": 10, "class_names": ["a"]}


def test_a_crash_mid_write_leaves_the_previous_checkpoint_intact(tmp_path, tiny_model_py, monkeypatch):
    path = tmp_path / "last.safetensors"
    first = _model(tiny_model_py, seed=1).state_dict()
    save_weights(path, first, {"epoch": 1})
    before = path.read_bytes()

    import safetensors.torch

    def crash(tensors, filename, metadata=None):
        with open(filename, "wb") as handle:
            handle.write(b"\x00" * 100)  # half a file...
        raise OSError("disk full")  # ...then the write dies

    monkeypatch.setattr(safetensors.torch, "save_file", crash)
    with pytest.raises(OSError, match="disk full"):
        save_weights(path, _model(tiny_model_py, seed=2).state_dict(), {"epoch": 2})
    assert path.read_bytes() == before
    state, meta = load_weights(path)
    assert _same(state, first) and meta["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.safetensors", "tiny_model.py"]  # no temp left


def test_a_crash_before_the_rename_leaves_the_training_state_intact(tmp_path, monkeypatch):
    path = tmp_path / "training_state.pt"
    good = {"format": "npc-training-state", "epoch": 1, "model": {}, "optimizer": {}}
    save_training_state(path, good)

    def fail(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(_checkpoint.os, "replace", fail)
    with pytest.raises(KeyboardInterrupt):
        save_training_state(path, {**good, "epoch": 2})
    monkeypatch.undo()
    assert load_training_state(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["training_state.pt"]


def test_new_files_get_ordinary_permissions(tmp_path):
    save_training_state(tmp_path / "s.pt", {"format": "x"})
    assert (tmp_path / "s.pt").stat().st_mode & 0o044  # readable by group/others under the usual umask


def test_load_head_false_skips_head_tensors(tmp_path, tiny_model_py):
    trained = _model(tiny_model_py, num_classes=10, seed=1)
    save_weights(tmp_path / "w.safetensors", trained.state_dict(), {})
    state, _ = load_weights(tmp_path / "w.safetensors")
    fresh = _model(tiny_model_py, num_classes=3, seed=2)
    head_before = {k: v.clone() for k, v in fresh.state_dict().items() if k.startswith("head.")}

    report = apply_weights(fresh, state, "w.safetensors", load_head=False)

    ours = fresh.state_dict()
    assert all(torch.equal(ours[k], v) for k, v in state.items() if k.startswith("backbone."))
    assert all(torch.equal(ours[k], v) for k, v in head_before.items())
    assert report.skipped_head == 2 and report.missing == [] and report.unexpected == []


def test_another_class_count_with_load_head_true_says_what_to_do(tmp_path, tiny_model_py):
    state = _model(tiny_model_py, num_classes=10).state_dict()
    with pytest.raises(CheckpointError, match="set model.checkpoint.load_head: false") as info:
        apply_weights(_model(tiny_model_py, num_classes=3), state, "w.pth")
    assert "head.classifier.weight: file (10, 16) vs model (3, 16)" in info.value.message


def test_missing_and_unexpected_keys_are_reported(tiny_model_py):
    model = _model(tiny_model_py)
    state = dict(model.state_dict())
    state["extra.weight"] = torch.zeros(1)
    del state["head.classifier.bias"]
    report = apply_weights(model, state, "w.pth")
    assert report.unexpected == ["extra.weight"]
    assert report.missing == ["head.classifier.bias"]
    assert any("extra.weight" in w for w in report.warnings)
    assert any("no head weights" in w for w in report.warnings)

    del state["backbone.conv.weight"]
    with pytest.raises(CheckpointError, match="lacks 1 of the model's backbone/neck tensors.*backbone.conv.weight"):
        apply_weights(model, state, "w.pth")
    with pytest.raises(CheckpointError, match="unexpected 1"):
        apply_weights(model, dict(model.state_dict(), extra=torch.zeros(1)), "w.pth", strict=True)
    with pytest.raises(CheckpointError, match="none of its 1 keys matches the model"):
        apply_weights(model, {"foo": torch.zeros(1)}, "w.pth")


def test_pth_state_dicts_load_safely(tmp_path, tiny_model_py):
    model = _model(tiny_model_py)
    wrapped = {"state_dict": collections.OrderedDict((f"module.{k}", v) for k, v in model.state_dict().items())}
    torch.save(wrapped, tmp_path / "w.pth")
    state, meta = load_weights(tmp_path / "w.pth")
    assert _same(state, model.state_dict()) and meta == {}

    torch.save({"model": torch.nn.Linear(2, 2), "epoch": 3}, tmp_path / "pickled.pt")  # a pickled module
    with pytest.raises(CheckpointError, match=r"pickled Python objects .*Linear.*weights_only=True"):
        load_weights(tmp_path / "pickled.pt")


def test_missing_or_corrupt_weights_name_the_file(tmp_path):
    with pytest.raises(CheckpointError) as info:
        load_weights(tmp_path / "nope.safetensors")
    assert exit_code_for(info.value) == 2 and "nope.safetensors: weights file not found" in info.value.message
    (tmp_path / "bad.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="bad.safetensors: not a readable safetensors file"):
        load_weights(tmp_path / "bad.safetensors")
    (tmp_path / "bad.pth").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="bad.pth: cannot read weights"):
        load_weights(tmp_path / "bad.pth")


def test_training_state_must_be_ours(tmp_path):
    torch.save({"epoch": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not an npc training state"):
        load_training_state(tmp_path / "other.pt")
    with pytest.raises(CheckpointError) as info:
        load_training_state(tmp_path / "missing.pt")
    assert exit_code_for(info.value) == 2


def test_rng_states_survive_a_weights_only_round_trip(tmp_path):
    torch.manual_seed(3), random.seed(3), np.random.seed(3)
    save_training_state(
        tmp_path / "s.pt",
        {"format": "npc-training-state", "epoch": 0, "model": {}, "optimizer": {}, "rng": capture_rng()},
    )
    expected = (torch.rand(3), random.random(), np.random.rand())
    torch.manual_seed(99), random.seed(99), np.random.seed(99)
    restore_rng(load_training_state(tmp_path / "s.pt")["rng"])
    got = (torch.rand(3), random.random(), np.random.rand())
    assert torch.equal(expected[0], got[0]) and expected[1:] == got[1:]


def test_truncated_checkpoints_are_refused_by_name_and_good_files_survive(capsys, tmp_path, write_spec, tiny_model_py):
    """Half a training_state.pt (a disk that filled up, a copy cut short): resuming says which file and why, exits
    non-zero without a traceback, and leaves the run's weights as they were; half a .safetensors is refused too."""
    from helpers import run_cli

    spec = write_spec(
        "epochs: 2\nbatch_size: 128\noptimizer: {name: adamw, lr: 0.01}", "format: digits\nimage_size: 16"
    )
    run = tmp_path / "run"
    args = ("train", spec, "--model-py", tiny_model_py, "--out", run, "--no-tensorboard")
    code, _, err = run_cli(capsys, *args)
    assert code == 0, err
    state = run / "training_state.pt"
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    weights = {name: (run / name).read_bytes() for name in ("last.safetensors", "best.safetensors")}

    code, _, err = run_cli(capsys, *args, "--resume", run)
    assert code != 0 and "training_state.pt" in err
    assert {name: (run / name).read_bytes() for name in weights} == weights

    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(weights["last.safetensors"][: len(weights["last.safetensors"]) // 2])
    with pytest.raises(CheckpointError, match="cut.safetensors: not a readable safetensors file"):
        load_weights(cut)


def test_background_writes_keep_their_order_and_a_failure_drops_what_follows(tmp_path):
    """The trainer's checkpoint writer: files land in the order submitted; after a failed one, nothing later is
    written (a training state must not point at weights that are not on disk) and the training thread gets the
    error at its next submit, once."""
    written, gate = [], threading.Event()

    def write(name, slow=False):
        if slow:
            gate.wait(5)
        if name == "bad":
            raise OSError(28, "No space left on device")
        written.append(name)

    with BackgroundWriter() as writer:
        writer.submit(write, "best", True)  # blocks the thread until the gate opens: the rest queue behind it
        writer.submit(write, "last")
        assert written == []  # submit returns at once
        gate.set()
        writer.wait()
        assert written == ["best", "last"]
        writer.submit(write, "bad")
        writer.submit(write, "state")
        time.sleep(0.2)
        with pytest.raises(OSError, match="No space left"):
            writer.submit(write, "more")
        writer.wait()  # reported once
    assert written == ["best", "last"]
