"""NetsPresso Trainer's six-file form (model, data, augmentation, training, environment, logging) as the peer reads
it: its command line, its keys, its input size, and every problem of every file in one run.

The files here are npc-written equivalents of the peer's published ones; the last tests read the peer's own files
from ``../shared/peer`` where that folder exists (skipped, with the reason, where it does not).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from npc.cli.exits import exit_code_for
from npc.spec import SpecError
from npc.spec.run_config import load_run_config
from tests.helpers import REPO, run_cli

PEER = REPO.parent / "shared" / "peer" / "configs"
needs_peer = pytest.mark.skipif(not PEER.is_dir(), reason=f"the peer's published configs are not at {PEER}")

TRAINING = """\
training:
  epochs: 8
  mixed_precision: False
  ema: ~
  max_norm: ~
  optimizer:
    name: adamw
    lr: 1e-3
    betas: [0.9, 0.999]
    weight_decay: 0.0005
    no_bias_decay: False
    no_norm_weight_decay: False
    overwrite: ~
  scheduler:
    name: cosine_no_sgdr
    warmup_epochs: 1
    warmup_bias_lr: 1e-5
    min_lr: 0.00001
    end_epoch: 8
"""
ENVIRONMENT = """\
environment:
  seed: 3
  num_workers: 0
  gpus: 0
  batch_size: 32 # Batch size per gpu
  cache_data: False
"""
LOGGING = """\
logging:
  project_id: ~
  output_dir: ./outputs
  tensorboard: true
  mlflow: false
  stdout: true
  num_save_samples: ~
  model_save_options:
    save_optimizer_state: true
    save_best_only: false
    best_model_criterion: loss # metric
    sample_input_size: [64, 64]
    onnx_export_opset: 13
    validation_epoch: &validation_epoch 2
    save_checkpoint_epoch: *validation_epoch
  metrics:
    classwise_analysis: False
    metric_names: ~
"""
DATA = """\
data:
  name: tiny
  task: classification
  format: local
  path:
    root: {root}
    train: {{image: images/train, label: labels/train.csv}}
    valid: {{image: images/valid, label: labels/valid.csv}}
    test: {{image: ~, label: ~}}
  id_mapping: ["a", "b"]
"""
AUGMENTATION = """\
augmentation:
  train:
    - {name: randomresizedcrop, size: 64, scale: [0.5, 1.0], ratio: [0.75, 1.33], interpolation: bilinear}
    - {name: randomhorizontalflip, p: 0.5}
    - {name: totensor, pixel_range: 1.0}
    - {name: normalize, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]}
  inference:
    - {name: resize, size: [64, 64], interpolation: bilinear, max_size: ~, resize_criteria: ~}
    - {name: totensor, pixel_range: 1.0}
    - {name: normalize, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]}
"""


@pytest.fixture
def six_files(tmp_path, write_spec):
    """The six files, the model as a plain model file (no runtime sections); returns name -> path."""
    model = write_spec(name="model.yaml")
    files = {"model": model}
    texts = {
        "training": TRAINING,
        "environment": ENVIRONMENT,
        "logging": LOGGING,
        "data": DATA.format(root=tmp_path / "dataset"),
        "augmentation": AUGMENTATION,
    }
    for name, text in texts.items():
        files[name] = tmp_path / f"{name}.yaml"
        files[name].write_text(text)
    return files


def _load(files: dict[str, Path], **changed: str) -> object:
    for name, text in changed.items():
        files[name].write_text(text)
    return load_run_config(
        files["model"],
        training_path=files["training"],
        data_path=files["data"],
        augmentation_path=files["augmentation"],
        environment_path=files["environment"],
        logging_path=files["logging"],
    )


# --- 1. the command line ---------------------------------------------------------------------------------------


def _usage_error(capsys, *argv) -> str:
    from npc.cli import main

    with pytest.raises(SystemExit) as info:
        main([str(a) for a in argv])
    assert info.value.code == 2
    return capsys.readouterr().err


def test_unknown_train_arguments_show_npc_trains_usage(capsys):
    err = _usage_error(capsys, "train", "model.yaml", "--bogus", "1")
    assert err.startswith("usage: npc train") and "npc train: error: unrecognized arguments: --bogus 1" in err


def test_a_spec_is_needed_once_as_spec_or_model(capsys):
    err = _usage_error(capsys, "train", "--epochs", "1")
    assert err.startswith("usage: npc train") and "give SPEC or --model FILE" in err
    assert "give the model spec once" in _usage_error(capsys, "train", "a.yaml", "--model", "b.yaml")


def test_the_peers_command_line_reaches_every_file(capsys, six_files, tmp_path):
    """--model plus the five section flags: a problem in the logging file shows it was read."""
    six_files["logging"].write_text(LOGGING.replace("classwise_analysis: False", "classwise_analysis: true"))
    argv = ["train", "--model", six_files["model"], "--out", tmp_path / "run"]
    for name in ("data", "augmentation", "training", "logging", "environment"):
        argv += [f"--{name}", six_files[name]]
    code, _, err = run_cli(capsys, *argv)
    assert code == 1
    assert f"{six_files['logging']}:17:5: /logging/metrics/classwise_analysis: true is not supported yet" in err


# --- 2. the peer's training, environment and logging keys --------------------------------------------------------


def test_the_peers_training_keys_are_accepted(six_files):
    config = _load(six_files)
    optimizer = config.training["optimizer"]
    assert optimizer["no_norm_weight_decay"] is False and optimizer["overwrite"] is None


def test_environment_sets_seed_workers_and_batch_size_and_flags_win(six_files):
    config = _load(six_files)
    assert (config.training["batch_size"], config.training["seed"], config.training["num_workers"]) == (32, 3, 0)
    assert config.environment["gpus"] == 0 and config.environment["cache_data"] is False
    flagged = load_run_config(
        six_files["model"], environment_path=six_files["environment"], overrides={"batch_size": 8, "seed": 5}
    )
    assert (flagged.training["batch_size"], flagged.training["seed"]) == (8, 5)


def test_logging_keys_resolve_and_go_into_resolved_yaml(six_files):
    config = _load(six_files)
    options = config.logging["model_save_options"]
    assert (options["validation_epoch"], options["save_checkpoint_epoch"], options["best_model_criterion"]) == (
        2,
        2,
        "loss",
    )
    document = config.resolved_document()
    assert document["logging"]["output_dir"] == "./outputs" and document["environment"]["batch_size"] == 32


@pytest.mark.parametrize(
    ("text", "pointer", "message"),
    [
        (LOGGING.replace("save_checkpoint_epoch: *validation_epoch", "save_checkpoint_epoch: 3"),
         "/logging/model_save_options/save_checkpoint_epoch", "must be a multiple of validation_epoch (2)"),
        (LOGGING.replace("classwise_analysis: False", "classwise_analysis: true"),
         "/logging/metrics/classwise_analysis", "not supported yet"),
        (LOGGING.replace("best_model_criterion: loss", "best_model_criterion: top1"),
         "/logging/model_save_options/best_model_criterion", "'top1' is not allowed"),
        (LOGGING.replace("  stdout: true", "  stdout: true\n  colour: red"), "/logging/colour", "unknown key"),
    ],
)  # fmt: skip
def test_logging_keys_npc_cannot_honour_are_refused_where_they_are(six_files, text, pointer, message):
    with pytest.raises(SpecError) as info:
        _load(six_files, logging=text)
    (diagnostic,) = info.value.diagnostics
    assert (diagnostic.file, diagnostic.pointer) == (str(six_files["logging"]), pointer)
    assert message in diagnostic.message and diagnostic.line is not None


def test_a_gpu_list_that_is_not_one_is_located(six_files):
    with pytest.raises(SpecError) as info:
        _load(six_files, environment=ENVIRONMENT.replace("gpus: 0", "gpus: 'first'"))
    (diagnostic,) = info.value.diagnostics
    assert diagnostic.pointer == "/environment/gpus" and "comma-separated" in diagnostic.message


# --- 3. the input size is the augmentation's ---------------------------------------------------------------------


@pytest.mark.parametrize("side", [64, 128])
def test_the_input_size_is_the_augmentations_final_size(six_files, side):
    config = _load(six_files, augmentation=AUGMENTATION.replace("64", str(side)))
    assert config.data["image_size"] == side
    assert config.augmentation["train"][0]["size"] == [side, side]


def test_img_size_or_a_last_resize_and_pad_set_it_too(six_files):
    assert _load(six_files, augmentation="augmentation:\n  img_size: 96\n").data["image_size"] == 96
    detection_like = (
        AUGMENTATION.replace(
            "    - {name: randomhorizontalflip, p: 0.5}\n",
            "    - {name: resize, size: 80, resize_criteria: long}\n    - {name: pad, size: 80, fill: 114}\n",
        )
        .replace("size: 64, scale", "size: 90, scale")
        .replace("size: [64, 64]", "size: [80, 80]")
    )
    assert _load(six_files, augmentation=detection_like).data["image_size"] == 80


def test_an_explicit_data_image_size_still_has_to_match(six_files, tmp_path):
    data = DATA.format(root=tmp_path / "dataset") + "  image_size: 32\n"
    with pytest.raises(SpecError) as info:
        _load(six_files, data=data)
    assert any("the train transforms end at 64x64" in d.message for d in info.value.diagnostics)


# --- 4. every problem of every file in one run ---------------------------------------------------------------------


def test_every_file_reports_its_problems_in_one_run(six_files, tmp_path):
    with pytest.raises(SpecError) as info:
        _load(
            six_files,
            training=TRAINING.replace("overwrite: ~", "overwrite: ~\n    nesterov_typo: 1"),
            environment=ENVIRONMENT.replace("batch_size: 32", "batch_size: 0"),
            logging=LOGGING.replace("classwise_analysis: False", "classwise_analysis: true"),
            data=DATA.format(root=tmp_path / "dataset") + "  image_size: 32\n",
            augmentation=AUGMENTATION.replace("p: 0.5", "p: 1.5"),
        )
    where = {(Path(d.file).name, d.pointer) for d in info.value.diagnostics}
    assert ("training.yaml", "/training/optimizer/nesterov_typo") in where
    assert ("environment.yaml", "/environment/batch_size") in where
    assert ("logging.yaml", "/logging/metrics/classwise_analysis") in where
    assert ("augmentation.yaml", "/augmentation/train/1/p") in where
    assert exit_code_for(info.value) == 1


def test_sizes_are_checked_in_the_same_run_as_other_files_schema_problems(six_files, tmp_path):
    """A size problem (found only after resolving) comes together with a training key problem."""
    with pytest.raises(SpecError) as info:
        _load(
            six_files,
            training=TRAINING.replace("overwrite: ~", "overwrite: ~\n    nesterov_typo: 1"),
            data=DATA.format(root=tmp_path / "dataset") + "  image_size: 32\n",
        )
    assert {Path(d.file).name for d in info.value.diagnostics} == {"augmentation.yaml", "training.yaml"}


def test_an_unreadable_file_does_not_hide_the_others(six_files):
    six_files["environment"].write_text("environment: [unclosed\n")
    with pytest.raises(SpecError) as info:
        _load(six_files, logging=LOGGING.replace("classwise_analysis: False", "classwise_analysis: true"))
    files = {Path(d.file).name for d in info.value.diagnostics}
    assert files == {"environment.yaml", "logging.yaml"} and exit_code_for(info.value) == 2


# --- the peer's own files (extra check) -----------------------------------------------------------------------------


@needs_peer
def test_the_peers_training_environment_and_logging_files_load_unchanged(write_spec):
    config = load_run_config(
        write_spec(),
        training_path=PEER / "training.yaml",
        environment_path=PEER / "environment.yaml",
        logging_path=PEER / "logging.yaml",
    )
    assert config.training["batch_size"] == 8 and config.logging["model_save_options"]["validation_epoch"] == 10


@needs_peer
@pytest.mark.parametrize("recipe", sorted(p.name for p in PEER.glob("benchmark_examples/*")) if PEER.is_dir() else [])
def test_the_peers_benchmark_training_environment_and_logging_files_load(write_spec, recipe):
    folder = PEER / "benchmark_examples" / recipe
    config = load_run_config(
        write_spec(),
        training_path=folder / "training.yaml",
        environment_path=folder / "environment.yaml",
        logging_path=folder / "logging.yaml",
    )
    assert config.training["optimizer"]["name"] in ("sgd", "adamw")
    assert textwrap.dedent(config.environment["gpus"] if isinstance(config.environment["gpus"], str) else "0")


# --- environment: gpus and cache_data ------------------------------------------------------------------------------


def test_several_gpus_repeat_the_command_under_torchrun_on_those_gpus(tmp_path):
    from npc.cli.run_commands import torchrun_command

    command, env = torchrun_command([2, 3], ["train", "--model", "m.yaml", "--environment", "e.yaml"], tmp_path / "r")
    assert command[1:5] == ["-m", "torch.distributed.run", "--nproc-per-node=2", "-m"]
    assert command[5:] == ["npc", "train", "--model", "m.yaml", "--environment", "e.yaml", "--out", str(tmp_path / "r")]
    assert env == {"CUDA_VISIBLE_DEVICES": "2,3"}
    again, _ = torchrun_command([0, 1], ["train", "m.yaml", "--out", "run"], tmp_path / "ignored")
    assert again[-3:] == ["m.yaml", "--out", "run"]  # the run folder the user gave stays


def test_one_gpu_without_cuda_trains_on_the_cpu_with_a_note(capsys, monkeypatch, tmp_path):
    import torch
    from rich.console import Console

    from npc.cli.run_commands import _environment_device
    from npc.runtime.engine.distributed import Distributed

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    device = _environment_device({"gpus": "0, 1"}, Distributed(), Console(), tmp_path)
    assert device == "cpu" and "no CUDA device is available" in capsys.readouterr().out
    assert _environment_device({"gpus": None}, Distributed(), Console(), tmp_path) is None


def test_cache_data_reads_every_image_once(tmp_path):
    import torch
    from torch.utils.data import Dataset

    from npc.runtime.data import DataBundle, Preprocess, cached

    class Counting(Dataset):
        reads = 0

        def __len__(self) -> int:
            return 3

        def __getitem__(self, index: int):
            Counting.reads += 1
            return torch.full((3, 2, 2), float(index)), index

    bundle = DataBundle(
        {"train": Counting()}, 3, ["a", "b", "c"], Preprocess("rgb", 2, (0,) * 3, (1,) * 3), False, "", []
    )
    kept = cached(bundle)
    assert Counting.reads == 3 and kept.in_memory  # filled up front, before any DataLoader worker starts
    for _ in range(2):
        assert [kept.splits["train"][i][1] for i in range(3)] == [0, 1, 2]
    assert Counting.reads == 3


# --- the peer's data and inference keys ----------------------------------------------------------------------------


def test_an_inference_list_may_restate_the_input_size_but_not_change_it(six_files):
    letterbox = AUGMENTATION.replace(
        "    - {name: resize, size: [64, 64], interpolation: bilinear, max_size: ~, resize_criteria: ~}\n",
        "    - {name: resize, size: 64, resize_criteria: long}\n    - {name: pad, size: 64, fill: 114}\n",
    )
    assert _load(six_files, augmentation=letterbox).augmentation["inference"][1]["name"] == "pad"
    # the peer's ImageNet evaluation: resize larger, then centre-crop; classification evaluates at that size
    crop = AUGMENTATION.replace("size: [64, 64], interpolation", "size: [72, 72], interpolation").replace(
        "resize_criteria: ~}\n", "resize_criteria: ~}\n    - {name: centercrop, size: 56}\n"
    )
    assert _load(six_files, augmentation=crop).data["_evaluation"] == {"resize": [72, 72], "crop": [56, 56]}
    # other lists must keep the size (test_peer_evaluation.py has the rest)
    with pytest.raises(SpecError) as info:
        _load(six_files, augmentation=crop.replace("{name: centercrop, size: 56}", "{name: pad, size: 80}"))
    assert any(
        d.pointer == "/augmentation/inference/0/size" and "changes the size from 64x64 to 72x72" in d.message
        for d in info.value.diagnostics
    )


def test_null_pattern_and_pallete_and_an_id_mapping_file_under_a_home_root(
    six_files, tmp_path, monkeypatch, make_images
):
    from npc.runtime.data import build_data

    monkeypatch.setenv("HOME", str(tmp_path))
    root = tmp_path / "dataset"
    for split in ("train", "valid"):
        names = make_images(root / "images" / split, 2)
        (root / "labels").mkdir(exist_ok=True)
        (root / "labels" / f"{split}.csv").write_text("image_id,class\n" + f"{names[0]},cat\n{names[1]},dog\n")
    (root / "names.json").write_text('["cat", "dog"]')
    data = DATA.format(root="~/dataset").replace('id_mapping: ["a", "b"]', "id_mapping: names.json")
    data += "  pallete: ~\n"
    data = data.replace(
        "    test: {image: ~, label: ~}\n", "    test: {image: ~, label: ~}\n    pattern: {image: ~, label: ~}\n"
    )
    config = _load(six_files, data=data)
    bundle = build_data(config.data, ("train", "valid"), task="classification")
    assert bundle.class_names == ["cat", "dog"] and len(bundle.splits["train"]) == 2
    with pytest.raises(SpecError) as info:
        _load(six_files, data=data.replace("pallete: ~", "pallete: [[0, 0, 0]]"))
    assert [d.pointer for d in info.value.diagnostics] == ["/data/pallete"]
