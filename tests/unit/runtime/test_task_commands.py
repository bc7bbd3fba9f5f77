"""npc train / evaluate / predict for segmentation and detection through the CLI: exit codes, files, messages."""

import csv
import json
import textwrap

import numpy as np
import pytest

from helpers import REPO, TINY_RESNET_BACKBONE, run_cli, shape_png, train_metric_curve

HEADS = {
    "segmentation": """\
    head:
      name: all_mlp_decoder
      params: {intermediate_channels: 8, classifier_dropout_prob: 0.0}
  losses:
    - {criterion: seg_cross_entropy, ignore_index: 255}
""",
    "detection": """\
    neck:
      name: fpn
      params: {num_outs: 2}
    head:
      name: anchor_free_decoupled_head
  losses:
    - {criterion: yolox_loss, l1_activate_epoch: 1}
""",
    "retinanet": """\
    neck:
      name: fpn
      params: {num_outs: 2}
    head:
      name: anchor_decoupled_head
      params: {anchor_sizes: [[8], [16]], aspect_ratios: [1.0], num_layers: 1}
  losses:
    - {criterion: retinanet_loss}
""",
}
TRAINING = """\
training:
  epochs: 1
  batch_size: 8
  optimizer: {name: adamw, lr: 0.003}
"""
SHAPES = "data: {format: shapes, image_size: 32, num_train: 16, num_valid: 8}\n"


def _spec(tmp_path, task, data=SHAPES):
    model_task = "detection" if task == "retinanet" else task
    text = (
        f"model:\n  task: {model_task}\n  name: tiny_{task}\n  architecture:\n"
        + TINY_RESNET_BACKBONE
        + HEADS[task]
        + TRAINING
        + data
    )
    path = tmp_path / f"{task}.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("task", ["segmentation", "detection", "retinanet"])
def test_train_evaluate_predict(capsys, tmp_path, task):
    run = tmp_path / "run"
    code, out, err = run_cli(capsys, "train", _spec(tmp_path, task), "--out", run, "--no-tensorboard")
    assert code == 0, err
    for name in ("model.py", "resolved.yaml", "best.safetensors", "last.safetensors", "training_state.pt"):
        assert (run / name).is_file(), name
    metrics = ("valid_miou", "valid_pixel_acc") if task == "segmentation" else ("valid_map", "valid_map50")
    with (run / "metrics.csv").open() as handle:
        (row,) = list(csv.DictReader(handle))
    assert all(row[m] != "" for m in metrics)

    code, out, err = run_cli(capsys, "evaluate", run, "--format", "json")
    assert code == 0, err
    result = json.loads(out)
    assert result["task"] == ("detection" if task == "retinanet" else task) and result["samples"] == 8
    assert all(0.0 <= result[m.removeprefix("valid_")] <= 1.0 for m in metrics)
    code, out, _ = run_cli(capsys, "evaluate", run)
    assert code == 0 and ("mIoU" in out if task == "segmentation" else "mAP50" in out)

    image = shape_png(tmp_path / "shape.png")
    (tmp_path / "other").mkdir()
    twin = shape_png(tmp_path / "other" / "shape.png")  # same file name: its mask must not overwrite the first
    masks = tmp_path / "masks"
    drawn = tmp_path / "drawn"
    code, out, err = run_cli(
        capsys, "predict", run, image, twin, "--format", "json", "--masks", masks, "--min-score", "0", "--draw", drawn
    )
    assert code == 0, err
    record, _ = json.loads(out)
    from PIL import Image, ImageChops

    with Image.open(record["drawing"]) as drawing, Image.open(image) as original:
        assert record["drawing"] == str(drawn / "shape.png") and drawing.size == original.size
        if task == "segmentation" or record["detections"]:  # a mask always shows; boxes when there are any
            assert ImageChops.difference(drawing.convert("RGB"), original.convert("RGB")).getbbox() is not None
    if task == "segmentation":
        from PIL import Image

        assert sum(record["classes"].values()) == pytest.approx(1.0)
        assert Image.open(masks / "shape.png").size == (48, 48)
        assert sorted(p.name for p in masks.iterdir()) == ["shape-2.png", "shape.png"]
    else:
        assert isinstance(record["detections"], list)
        for found in record["detections"]:
            assert found["label"] in ("circle", "square", "triangle") and len(found["box"]) == 4
    code, out, _ = run_cli(capsys, "predict", run, image)
    assert code == 0 and out.startswith(str(image))


def test_detection_resumes_to_the_same_weights(tmp_path):
    import torch
    from rich.console import Console

    from npc.runtime.checkpoint import load_weights
    from npc.runtime.engine import TrainOptions, train
    from npc.spec.run_config import load_run_config

    config = load_run_config(_spec(tmp_path, "detection"), overrides={"epochs": 2})
    quiet = Console(file=open("/dev/null", "w"))  # noqa: SIM115
    train(config, TrainOptions(out_dir=tmp_path / "whole", tensorboard=False), quiet)
    train(config, TrainOptions(out_dir=tmp_path / "part", tensorboard=False, stop_after=1), quiet)
    options = TrainOptions(out_dir=tmp_path / "part", tensorboard=False, resume=tmp_path / "part")
    train(config, options, quiet)
    whole, _ = load_weights(tmp_path / "whole" / "last.safetensors")
    part, meta = load_weights(tmp_path / "part" / "last.safetensors")
    assert meta["epoch"] == 2 and "valid_map" in meta
    assert all(torch.allclose(whole[k].float(), part[k].float(), atol=1e-6) for k in whole)


def test_missing_mask_is_exit_2_naming_the_image(capsys, tmp_path):
    from PIL import Image

    (tmp_path / "d" / "img").mkdir(parents=True)
    (tmp_path / "d" / "mask").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "d" / "img" / "a.png")
    data = textwrap.dedent(f"""\
        data:
          path: {{root: {tmp_path / "d"}, train: {{image: img, label: mask}}}}
          id_mapping: [background, thing]
        """)
    code, _, err = run_cli(capsys, "train", _spec(tmp_path, "segmentation", data), "--out", tmp_path / "run")
    assert code == 2
    assert f"npc train: error: {tmp_path / 'd' / 'img' / 'a.png'}: no mask with the same name" in err


def test_bad_yolo_line_is_exit_1_with_file_and_line(capsys, tmp_path):
    from PIL import Image

    (tmp_path / "d" / "img").mkdir(parents=True)
    (tmp_path / "d" / "lab").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(tmp_path / "d" / "img" / "a.png")
    (tmp_path / "d" / "lab" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n0 0.5 oops 0.2 0.2\n")
    data = f"data:\n  path: {{root: {tmp_path / 'd'}, train: {{image: img, label: lab}}}}\n"
    code, _, err = run_cli(capsys, "train", _spec(tmp_path, "detection", data), "--out", tmp_path / "run")
    assert code == 1
    assert f"{tmp_path / 'd' / 'lab' / 'a.txt'}:2: expected an integer class and four numbers" in err


def test_data_for_another_task_is_exit_1(capsys, tmp_path):
    spec = _spec(tmp_path, "segmentation", "data: {task: detection, format: shapes}\n")
    code, _, err = run_cli(capsys, "train", spec, "--out", tmp_path / "run")
    assert code == 1 and "/data/task: the data is for detection, but model.task is segmentation" in err
    spec = _spec(tmp_path, "segmentation", "data: {format: digits}\n")
    code, _, err = run_cli(capsys, "train", spec, "--out", tmp_path / "run")
    assert code == 1 and "data.format 'digits' is not available for segmentation" in err


@pytest.mark.slow
@pytest.mark.parametrize(
    ("example", "metric", "reached"),
    [
        ("resnet-shapes-segmentation.yaml", "valid_miou", 0.8),  # predicting all background scores ~0.22
        ("resnet-shapes-detection.yaml", "valid_map50", 0.8),  # chance: ~0
    ],
)
def test_the_example_learns_the_shapes(tmp_path, example, metric, reached):
    """docs/runtime.md's figures: the example specs learn the built-in shapes well above chance on CPU."""
    values = train_metric_curve(REPO / "examples" / example, tmp_path / "run", metric, timeout=600)
    assert max(values) >= reached
