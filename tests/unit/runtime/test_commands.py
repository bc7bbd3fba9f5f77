"""The train / evaluate / predict commands: exit codes, messages without tracebacks, lazy torch import."""

import json
import subprocess
import sys

import numpy as np
import pytest

from helpers import run_cli
from npc.cli.exits import clean_message as _clean

ONE_EPOCH = "epochs: 1\nbatch_size: 128\noptimizer: {name: adamw, lr: 0.01}"
DIGITS_16 = "format: digits\nimage_size: 16"


def test_registering_the_commands_does_not_import_torch():
    code = (
        "import sys; from npc.cli import _build_parser; _build_parser(); "
        "from npc.cli import run_commands; from npc.spec import run_config; print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_missing_spec_is_exit_2(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", tmp_path / "nope.yaml")
    assert code == 2 and "nope.yaml: cannot read file" in err


def test_bad_training_section_is_exit_1_with_position(capsys, write_spec):
    spec = write_spec("epochs: -1\noptimizer: {name: adam, lr: 0}")
    code, _, err = run_cli(capsys, "train", spec)
    assert code == 1
    assert f"{spec}:20:3: /training/epochs: must be >= 1, got -1" in err
    assert "/training/optimizer/lr: must be > 0, got 0" in err


def test_bad_data_folder_is_exit_2_naming_it(capsys, write_spec, tmp_path, tiny_model_py):
    spec = write_spec(ONE_EPOCH, f"path: {{root: {tmp_path}, train: {{image: missing}}}}")
    code, _, err = run_cli(capsys, "train", spec, "--model-py", tiny_model_py, "--out", tmp_path / "run")
    assert code == 2
    assert f"npc train: error: data.path.train.image: folder not found: {tmp_path / 'missing'}" in err


def test_corrupt_image_in_a_worker_is_reported_cleanly(capsys, write_spec, tmp_path, tiny_model_py, make_images):
    for name in ("a", "b"):
        make_images(tmp_path / "imgs" / name, 3)
    (tmp_path / "imgs" / "b" / "img_1.png").write_bytes(b"not an image")
    spec = write_spec(
        ONE_EPOCH + "\nnum_workers: 1", f"path: {{root: {tmp_path / 'imgs'}, train: {{image: .}}}}\nimage_size: 16"
    )
    code, _, err = run_cli(
        capsys, "train", spec, "--model-py", tiny_model_py, "--out", tmp_path / "run", "--no-tensorboard"
    )
    assert code == 1
    assert f"npc train: error: {tmp_path / 'imgs' / 'b' / 'img_1.png'}: cannot decode image" in err
    assert "Original Traceback" not in err


def test_clean_keeps_the_message_of_a_worker_error():
    wrapped = (
        "Caught DataError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
        '  File "x.py", line 1, in f\nnpc.runtime._errors.DataError: /d/a.png: cannot decode image (bad)\n'
    )
    assert _clean(wrapped) == "/d/a.png: cannot decode image (bad)"
    assert _clean("plain message") == "plain message"


def test_cuda_when_there_is_none_is_exit_2(capsys, write_spec, tmp_path, tiny_model_py, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    spec = write_spec(ONE_EPOCH, DIGITS_16)
    code, _, err = run_cli(capsys, "train", spec, "--model-py", tiny_model_py, "--device", "cuda", "--out", tmp_path)
    assert code == 2 and "no CUDA device" in err


def test_missing_checkpoint_names_the_path(capsys, write_spec, tmp_path, tiny_model_py):
    spec = write_spec(ONE_EPOCH, DIGITS_16, use_pretrained=True, path=str(tmp_path / "w.safetensors"))
    code, _, err = run_cli(capsys, "train", spec, "--model-py", tiny_model_py, "--out", tmp_path / "run")
    assert code == 2 and f"{tmp_path / 'w.safetensors'}: weights file not found" in err


def test_use_pretrained_without_a_path_trains_from_scratch_with_a_note(capsys, write_spec, tmp_path, tiny_model_py):
    spec = write_spec(ONE_EPOCH, DIGITS_16, use_pretrained=True)
    code, out, _ = run_cli(
        capsys, "train", spec, "--model-py", tiny_model_py, "--out", tmp_path / "run", "--no-tensorboard"
    )
    assert code == 0
    assert "npc has no weight hub" in out and "starts from scratch" in out


@pytest.fixture
def trained_run(write_spec, tmp_path, tiny_model_py, capsys):
    spec = write_spec(ONE_EPOCH.replace("epochs: 1", "epochs: 2"), DIGITS_16)
    code, out, _ = run_cli(
        capsys, "train", spec, "--model-py", tiny_model_py, "--out", tmp_path / "run", "--no-tensorboard", "--seed", "5"
    )
    assert code == 0, out
    assert "\x1b[" not in out  # not a terminal: no live progress bar, no colour codes
    assert "training summary" in out
    return tmp_path / "run"


def test_evaluate_and_predict_a_run_folder(capsys, trained_run, tmp_path):
    from PIL import Image
    from sklearn.datasets import load_digits

    code, out, _ = run_cli(capsys, "evaluate", trained_run, "--format", "json")
    assert code == 0
    result = json.loads(out)
    rows = (trained_run / "metrics.csv").read_text().splitlines()
    best = max(float(r.split(",")[3]) for r in rows[1:])
    assert result["top1"] == pytest.approx(best, abs=1e-5) and result["samples"] == 360
    code, out, _ = run_cli(capsys, "evaluate", trained_run)
    assert "top-1" in out and "top-5" in out

    digits = load_digits()
    picture = (digits.images[0] / 16 * 255).astype(np.uint8)  # a "0", bright ink on black, as in the data set
    Image.fromarray(picture).resize((32, 32), Image.Resampling.NEAREST).save(tmp_path / "zero.png")
    code, out, _ = run_cli(capsys, "predict", trained_run, tmp_path / "zero.png", "--format", "json", "--top-k", "3")
    assert code == 0
    (record,) = json.loads(out)
    assert record["image"] == str(tmp_path / "zero.png")
    assert len(record["top_k"]) == 3 and 0 < record["score"] <= 1
    assert record["label"] in [str(i) for i in range(10)]
    code, out, _ = run_cli(capsys, "predict", trained_run, tmp_path / "zero.png")
    assert out.startswith(f"{tmp_path / 'zero.png'}\t")


def test_predict_errors(capsys, trained_run, tmp_path):
    code, _, err = run_cli(capsys, "predict", trained_run, tmp_path / "missing.png")
    assert code == 2 and "missing.png: image not found" in err
    code, _, err = run_cli(capsys, "evaluate", trained_run, "--weights", tmp_path / "nope.safetensors")
    assert code == 2 and "nope.safetensors: weights file not found" in err
    code, _, err = run_cli(capsys, "evaluate", tmp_path)
    assert code == 2 and "not an npc train run folder" in err
    from PIL import Image

    picture = tmp_path / "digit.png"
    Image.new("RGB", (16, 16)).save(picture)
    code, _, err = run_cli(capsys, "predict", trained_run, picture, "--draw", tmp_path / "drawn")
    assert code == 2 and "--draw: a classification has nothing to draw" in err
    assert not (tmp_path / "drawn").exists()


@pytest.mark.parametrize(
    ("forward", "message"),
    [
        ("return {'pred': x.reshape(x.shape[0], 999)}", "the forward pass failed on a batch of shape (128, 3, 16, 16)"),
        ("return self.fc(x.mean(dim=(2, 3)))", "forward() must return a dict with 'pred'"),
        (
            "return {'pred': self.fc(x.mean(dim=(2, 3)))[:, :2]}",
            "forward()['pred'] has shape (128, 2); expected (128, 10)",
        ),
    ],
)
def test_a_model_that_does_not_fit_is_reported(capsys, write_spec, tmp_path, forward, message):
    model_py = tmp_path / "bad_model.py"
    model_py.write_text(
        "import torch\nfrom torch import nn\n\n\nclass M(nn.Module):\n    def __init__(self, n):\n"
        "        super().__init__()\n        self.fc = nn.Linear(3, n)\n\n    def forward(self, x):\n"
        f"        {forward}\n\n\ndef build_model(num_classes):\n    return M(num_classes)\n"
    )
    spec = write_spec(ONE_EPOCH, DIGITS_16)
    code, _, err = run_cli(capsys, "train", spec, "--model-py", model_py, "--out", tmp_path / "run", "--no-tensorboard")
    assert code == 1
    assert message in err
    assert f"{tmp_path / 'run' / 'model.py'}:" in err


def test_a_model_file_that_fails_to_import_is_named(capsys, write_spec, tmp_path):
    model_py = tmp_path / "broken.py"
    model_py.write_text("import torch\n\ndef build_model(num_classes):\n    return torch.nn.Linear(1,\n")
    code, _, err = run_cli(
        capsys, "train", write_spec(ONE_EPOCH, DIGITS_16), "--model-py", model_py, "--out", tmp_path / "run"
    )
    assert code == 1 and f"{tmp_path / 'run' / 'model.py'}:4: importing the model failed: SyntaxError" in err


def test_a_spec_reading_inferred_values_trains_and_its_resolved_yaml_trains_again(capsys, tmp_path):
    """`=backbone.channels[-1] // 2` through `npc train`: the compiled head gets 4, and resolved.yaml (a spec
    npc train accepts again, with `vars` gone) holds that number instead of a formula that needed the vars."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "vars: {width: 8}\n"
        "model:\n  task: classification\n  name: inferred\n  architecture:\n"
        "    backbone:\n      name: resnet\n      params: {block_type: basicblock, norm_type: batch_norm}\n"
        "      stage_params: [{channels: =width, num_blocks: 1}]\n"
        "    head:\n      name: fc\n"
        "      params: {num_layers: 2, act_type: relu, intermediate_channels: '=backbone.channels[-1] // 2'}\n"
        "training: {epochs: 1, batch_size: 128, optimizer: {name: adamw, lr: 0.01}}\n"
        "data: {format: digits, image_size: 16}\n"
    )
    run = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", spec, "--out", run, "--no-tensorboard")
    assert code == 0, err
    assert "intermediate_channels=4," in (run / "model.py").read_text()
    from npc.spec import load_file

    resolved = load_file(run / "resolved.yaml").data
    assert resolved["model"]["architecture"]["head"]["params"]["intermediate_channels"] == 4
    code, _, err = run_cli(capsys, "train", run / "resolved.yaml", "--out", tmp_path / "again", "--no-tensorboard")
    assert code == 0, err
