"""The training:/data: sections: defaults, overrides, and located errors like spec validation's."""

import pytest

from npc.cli.exits import exit_code_for
from npc.spec import SpecError
from npc.spec.run_config import load_run_config, resolve_data, resolve_training


def test_defaults_fill_an_absent_training_section(write_spec):
    config = load_run_config(write_spec())
    assert config.training["epochs"] == 10
    assert config.training["optimizer"]["name"] == "adamw"
    assert config.training["scheduler"]["name"] == "cosine_no_sgdr"
    assert config.data["format"] == "digits"
    assert config.origins == {"training": "defaults", "data": "defaults"}


def test_spec_sections_then_cli_overrides(write_spec):
    spec = write_spec(
        """
        epochs: 3
        batch_size: 16
        optimizer: {name: sgd, lr: 0.1, momentum: 0.8}
        scheduler: {name: step, iters_per_phase: 2, gamma: 0.5}
        ema: {name: exp_decay, decay: 0.99}
        """
    )
    config = load_run_config(spec, overrides={"epochs": 5, "lr": 0.01, "seed": 7, "batch_size": None})
    t = config.training
    assert (t["epochs"], t["batch_size"], t["seed"]) == (5, 16, 7)
    assert t["optimizer"] == {
        "name": "sgd",
        "lr": 0.01,
        "momentum": 0.8,
        "weight_decay": 1e-4,
        "nesterov": False,
        "no_bias_decay": False,
        "no_norm_weight_decay": False,
        "overwrite": None,
    }
    assert t["scheduler"] == {"name": "step", "iters_per_phase": 2, "gamma": 0.5, "end_epoch": None}
    assert t["ema"] == {"name": "exp_decay", "decay": 0.99, "beta": 2000}


def test_scheduler_null_means_constant_lr():
    assert resolve_training({"scheduler": None}, {})["scheduler"] is None


def test_errors_are_located_with_did_you_mean(write_spec):
    spec = write_spec(
        """
        epochs: 0
        optimizer: {name: adamw, lr: 0.001, momentum: 0.9}
        scheduler: {name: cosin}
        max_norn: 1.0
        """
    )
    with pytest.raises(SpecError) as info:
        load_run_config(spec)
    found = {(d.pointer, d.line): d.message for d in info.value.diagnostics}
    assert exit_code_for(info.value) == 1
    assert found[("/training/epochs", 20)] == "must be >= 1, got 0"
    assert found[("/training/optimizer/momentum", 21)].startswith("unknown key 'momentum'")
    assert "did you mean 'cosine'" in found[("/training/scheduler/name", 22)]
    assert "did you mean 'max_norm'" in found[("/training/max_norn", 23)]
    assert f"{spec}:20:3: /training/epochs: must be >= 1, got 0" in str(info.value)


def test_model_errors_and_runtime_errors_come_together(write_spec, tmp_path):
    spec = write_spec("epochs: two")
    spec.write_text(spec.read_text().replace("task: classification", "task: clasification"))
    with pytest.raises(SpecError) as info:
        load_run_config(spec)
    pointers = {d.pointer for d in info.value.diagnostics}
    assert "/model/task" in pointers and "/training/epochs" in pointers


def test_training_file_needs_a_training_key(write_spec, tmp_path):
    other = tmp_path / "train.yaml"
    other.write_text("epochs: 3\n")
    with pytest.raises(SpecError, match="expected a top-level 'training:' key"):
        load_run_config(write_spec(), training_path=other)


def test_training_file_replaces_the_spec_section(write_spec, tmp_path):
    other = tmp_path / "train.yaml"
    other.write_text("training:\n  epochs: 2\ndata:\n  format: digits\n  image_size: 16\n")
    config = load_run_config(write_spec("epochs: 9\nbatch_size: 8"), training_path=other, data_path=other)
    assert config.training["epochs"] == 2 and config.training["batch_size"] == 64
    assert config.data["image_size"] == 16
    assert config.origins == {"training": str(other), "data": str(other)}


def test_missing_training_file_is_exit_2(write_spec, tmp_path):
    with pytest.raises(SpecError) as info:
        load_run_config(write_spec(), training_path=tmp_path / "nope.yaml")
    assert exit_code_for(info.value) == 2
    assert "cannot read file" in str(info.value)


def test_data_format_is_inferred():
    assert resolve_data(None)["format"] == "digits"
    local = resolve_data({"path": {"root": "d", "train": {"image": "i", "label": "l.csv"}}})
    assert local["format"] == "local" and local["image_size"] == 224
    folder = resolve_data({"path": {"root": "d", "train": {"image": "i"}}})
    assert folder["format"] == "image_folder"


def test_data_errors_are_located(write_spec):
    spec = write_spec(data="format: csv\nid_mapping: 3\npath: {root: x, train: {images: a}}")
    with pytest.raises(SpecError) as info:
        load_run_config(spec)
    found = {d.pointer: d.message for d in info.value.diagnostics}
    assert "'csv' is not allowed" in found["/data/format"]
    assert "id_mapping" in " ".join(found)
    assert found["/data/path/train/images"].startswith("unknown key 'images'; did you mean 'image'?")
