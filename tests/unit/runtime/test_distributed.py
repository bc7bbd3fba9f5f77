"""``torchrun --nproc-per-node 2 -m npc train``: two CPU processes (gloo, loopback) end with the weights of one.

The reference is the same spec trained in this process. The comparison is exact up to float rounding because the
test removes the two things that legitimately differ between one process and two:

* BatchNorm statistics: each process normalises over its own half of the batch (SyncBatchNorm runs on GPUs only),
  so the model here normalises with GroupNorm (per sample) and has no dropout;
* DistributedSampler's padding: with a train split that does not divide by the process count it repeats samples
  to even the shares (digits' 1,437 train images: one a epoch). The digits here are written as an image folder of
  160 images, a holdout of 32 and 128 to train: 64 per process.

Measured: max |difference| ~2e-7 (float32 sums in another order); the tolerance is 1e-5. The run is cut after
epoch 1 and resumed under torchrun for epoch 2 (a constant learning rate, so the schedule does not depend on
``--epochs``), which also checks resuming under DDP.
"""

import csv
import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from rich.console import Console

from npc.runtime.checkpoint import load_training_state, load_weights
from npc.runtime.engine import TrainOptions, train
from npc.spec.run_config import load_run_config

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch without torch.distributed")

NO_BATCHNORM = '''\
"""The conftest's tiny model with GroupNorm for BatchNorm and without dropout: one process and two compute alike."""

import torch
from torch import nn


class Backbone(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.norm = nn.GroupNorm(2, 8)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = torch.relu(self.norm(self.conv(x)))
        return [torch.relu(self.conv2(x)).mean(dim=(2, 3))]


class Head(nn.Module):
    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.classifier = nn.Linear(16, num_classes)

    def forward(self, features: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"pred": self.classifier(features[-1])}


class Tiny(nn.Module):
    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.backbone = Backbone()
        self.head = Head(num_classes)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.head(self.backbone(x))


def build_model(num_classes: int) -> nn.Module:
    return Tiny(num_classes)
'''
TRAINING = """
epochs: 2
batch_size: 48  # 24 per process: two full steps and a short one (16 each) per epoch
seed: 5
optimizer: {name: adamw, lr: 0.01}
scheduler: ~
ema: {name: constant_decay, decay: 0.9}
max_norm: 1.0
"""
TOLERANCE = 1e-5  # float32 rounding of sums taken in another order; measured ~2e-7


def _digit_folder(root, per_class: int = 16):
    """sklearn's digits as an image folder: ``per_class`` 8x8 grey PNGs per class."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    for label in range(10):
        folder = root / str(label)
        folder.mkdir(parents=True)
        chosen = np.flatnonzero(digits.target == label)[:per_class]
        for index in chosen:
            pixels = (digits.images[index] * (255 / 16)).astype(np.uint8)
            Image.fromarray(pixels, mode="L").convert("RGB").save(folder / f"{index}.png")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _torchrun(*args, cwd) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    if sys.platform.startswith("linux"):
        env["GLOO_SOCKET_IFNAME"] = "lo"  # loopback: the test needs no network
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr"]
    command += ["127.0.0.1", "--master-port", str(_free_port()), "-m", "npc", "train", *map(str, args)]
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_two_processes_end_with_the_weights_of_one(tmp_path, write_spec):
    _digit_folder(tmp_path / "digits")
    (tmp_path / "model.py").write_text(NO_BATCHNORM)
    data = f"format: image_folder\npath: {{root: {tmp_path / 'digits'}, train: {{image: .}}}}\nimage_size: 16"
    spec = write_spec(TRAINING, textwrap.dedent(data))
    console = Console(file=open(os.devnull, "w"), width=200)  # noqa: SIM115
    options = TrainOptions(out_dir=tmp_path / "one", model_py=tmp_path / "model.py", tensorboard=False)
    train(load_run_config(spec), options, console)

    common = (spec, "--model-py", tmp_path / "model.py", "--out", tmp_path / "two")
    first = _torchrun(*common, "--epochs", "1", cwd=tmp_path)
    assert first.count("epoch   1/1") == 1  # only rank 0 prints
    assert "2 processes (gloo, 24 images each per step)" in first
    _torchrun(*common, "--resume", tmp_path / "two", cwd=tmp_path)

    one, _ = load_weights(tmp_path / "one" / "last.safetensors")
    two, meta = load_weights(tmp_path / "two" / "last.safetensors")
    assert meta["epoch"] == 2 and one.keys() == two.keys()
    worst = max(float((one[k] - two[k]).abs().max()) for k in one)
    assert worst <= TOLERANCE, f"max |weight difference| {worst:.3g} > {TOLERANCE}"
    state_one, state_two = load_training_state(tmp_path / "one"), load_training_state(tmp_path / "two")
    for key, value in state_one["model"].items():  # the trained (not averaged) weights too
        torch.testing.assert_close(state_two["model"][key], value, rtol=0, atol=TOLERANCE, msg=key)

    # rank 0 alone wrote the run folder: the files of a one-process run, one TensorBoard log, one row per epoch
    names = sorted(p.name for p in (tmp_path / "two").iterdir())
    assert names == sorted([*(p.name for p in (tmp_path / "one").iterdir()), "tb"])
    assert len(list((tmp_path / "two" / "tb").glob("events.out.tfevents.*"))) == 2  # one per launch
    rows = list(csv.DictReader(open(tmp_path / "two" / "metrics.csv")))
    rows_one = list(csv.DictReader(open(tmp_path / "one" / "metrics.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    for row, row_one in zip(rows, rows_one, strict=True):  # the loss summed over both processes; same evaluation
        assert float(row["train_loss"]) == pytest.approx(float(row_one["train_loss"]), abs=1e-5)
        assert row["valid_top1"] == row_one["valid_top1"]
    assert not list(tmp_path.glob("runs"))  # no process fell back to a default run folder


def test_a_batch_that_does_not_divide_over_the_processes_is_refused():
    from npc.runtime.engine.distributed import Distributed, per_rank_batch
    from npc.runtime.errors import RunError

    assert per_rank_batch(48, Distributed(0, 2, 0)) == 24
    with pytest.raises(RunError, match="batch_size 50 is the global batch .* 3 processes"):
        per_rank_batch(50, Distributed(1, 3, 1))


def test_torchrun_without_out_is_a_usage_error(monkeypatch, tmp_path, write_spec, capsys):
    from npc.cli import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.chdir(tmp_path)
    assert main(["train", str(write_spec("epochs: 1"))]) == 2
    assert "npc train [rank 1]: error: under torchrun, give the run folder with --out" in capsys.readouterr().err


def test_rtdetr_trains_under_torchrun_when_one_process_gets_no_boxes(tmp_path):
    """RT-DETR's denoising embedding takes no part in a step without boxes. Four images, one with a box, one per
    process per step: in the step holding the box the other process has none, and DDP must not wait for a
    gradient of that embedding (find_unused_parameters for heads fed with training targets)."""
    from PIL import Image
    from test_train_heads import MODELS

    from npc.runtime.data.shapes import generate_shapes

    shapes = generate_shapes(4, 64, seed=1)
    for folder in ("images", "labels"):
        (tmp_path / folder).mkdir()
    for index, picture in enumerate(shapes.images):
        Image.fromarray(picture).save(tmp_path / "images" / f"{index}.png")
        (tmp_path / "labels" / f"{index}.txt").write_text("0 0.5 0.5 0.3 0.3\n" if index == 0 else "")
    spec = tmp_path / "rtdetr.yaml"
    spec.write_text(
        "model:\n  name: ddp_rtdetr\n"
        + MODELS["rtdetr_head"]
        + "training: {epochs: 2, batch_size: 2, seed: 1, num_workers: 0, optimizer: {name: adamw, lr: 0.001}}\n"
        + f"data:\n  path: {{root: {tmp_path}, train: {{image: images, label: labels}},"
        + " valid: {image: images, label: labels}}\n  id_mapping: [shape]\n  image_size: 64\n"
    )
    output = _torchrun(spec, "--out", tmp_path / "run", "--no-tensorboard", cwd=tmp_path)
    assert "2 processes (gloo, 1 images each per step)" in output
    assert load_training_state(tmp_path / "run")["epoch"] == 2


def test_a_model_with_parameters_a_training_step_never_reaches_trains_under_torchrun(tmp_path):
    """EfficientFormer keeps its final norm (the peer's state_dict) though a detection neck reads the stages, so a
    training step leaves it without a gradient. DDP would wait for it forever; npc train finds such parameters on a
    meta copy first and turns on find_unused_parameters."""
    from PIL import Image

    from npc.runtime.data.shapes import generate_shapes

    shapes = generate_shapes(4, 64, seed=1)
    for folder in ("images", "labels"):
        (tmp_path / folder).mkdir()
    for index, picture in enumerate(shapes.images):
        Image.fromarray(picture).save(tmp_path / "images" / f"{index}.png")
        (tmp_path / "labels" / f"{index}.txt").write_text("0 0.5 0.5 0.3 0.3\n")
    spec = tmp_path / "efficientformer.yaml"
    spec.write_text(
        textwrap.dedent(
            """\
            model:
              task: detection
              name: ddp_efficientformer
              architecture:
                backbone:
                  name: efficientformer
                  params: {num_attention_heads: 2, attention_channels: 8, attention_value_expansion_ratio: 2,
                           vit_num: 1}
                  stage_params: [{num_blocks: 1, channels: 4}, {num_blocks: 1, channels: 8},
                                 {num_blocks: 1, channels: 8}, {num_blocks: 1, channels: 16}]
                neck: {name: fpn, params: {num_outs: 4, start_level: 0, end_level: -1, add_extra_convs: false}}
                head: {name: anchor_decoupled_head, params: {num_layers: 1}}
              losses:
                - criterion: retinanet_loss
            training: {epochs: 1, batch_size: 2, seed: 1, num_workers: 0, optimizer: {name: adamw, lr: 0.001}}
            """
        )
        + f"data:\n  path: {{root: {tmp_path}, train: {{image: images, label: labels}},"
        + " valid: {image: images, label: labels}}\n  id_mapping: [shape]\n  image_size: 64\n"
    )
    output = _torchrun(spec, "--out", tmp_path / "run", "--no-tensorboard", cwd=tmp_path)
    assert "2 processes (gloo, 1 images each per step)" in output
    assert load_training_state(tmp_path / "run")["epoch"] == 1


BREAKS_FILES = '''
_broken = False


def _break_victims() -> None:
    """The model's first forward (after every process checked the data) breaks the files named in VICTIMS."""
    global _broken
    if not _broken:
        _broken = True
        for path in open(VICTIMS).read().split():
            open(path, "wb").write(bytes([0x89, 0x50, 0x4E, 0x47, 13, 10, 26, 10]) + bytes(64))


class Breaking(Tiny):
    def forward(self, x):
        _break_victims()
        return super().forward(x)


def build_model(num_classes: int) -> nn.Module:
    return Breaking(num_classes)
'''


def test_files_either_process_drops_under_skip_are_all_recorded(tmp_path, write_spec):
    """Under torchrun each process reads its own share of the files; bad_samples.json (rank 0's) lists the drops
    of both. Six files break after the data check, so both processes meet some whatever the permutation."""
    _digit_folder(tmp_path / "digits", per_class=8)
    victims = sorted((tmp_path / "digits").rglob("*.png"))[::13][:6]
    (tmp_path / "victims.txt").write_text("\n".join(map(str, victims)))
    model = NO_BATCHNORM + BREAKS_FILES.replace("VICTIMS", repr(str(tmp_path / "victims.txt")))
    (tmp_path / "model.py").write_text(model)
    data = f"format: image_folder\npath: {{root: {tmp_path / 'digits'}, train: {{image: .}}}}\nimage_size: 16"
    training = "epochs: 2\nbatch_size: 16\nnum_workers: 0\noptimizer: {name: adamw, lr: 0.01}"
    spec = write_spec(training, data)
    out = tmp_path / "run"
    _torchrun(spec, "--model-py", tmp_path / "model.py", "--out", out, "--on-bad-sample", "skip", cwd=tmp_path)
    recorded = {entry["path"] for entry in json.loads((out / "bad_samples.json").read_text())["skipped"]}
    assert recorded == {str(path) for path in victims}
