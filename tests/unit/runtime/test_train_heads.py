"""npc train / evaluate / predict for the heads beyond RetinaNet and YOLOX: YOLOv9's yolo_detection_head,
yolo_fastest_head_v2, rtdetr_head (with denoising training) and the pidnet segmentation model.

Each spec is its model at a tiny width on 64-pixel shapes, so that a run of a few epochs takes a second or two;
docs/runtime.md ("Training the YOLOv9, YOLO-Fastest, RT-DETR and PIDNet heads") has measured runs at a useful size.
"""

import csv
import json
import math

import pytest
import torch

from helpers import run_cli, shape_png, train_metric_curve
from npc.runtime.engine.load_model import check_output, training_targets_feeder
from npc.runtime.errors import RunError

MODELS = {
    "yolo_detection_head": """\
  task: detection
  architecture:
    backbone:
      name: gelan
      params: {stem_out_channels: 8, return_stage_idx: [1, 2, 3]}
      stage_params:
        - [[conv, 8, 3, 2], [elan, 8, 8, false]]
        - [[aconv, 16], [repncspelan, 16, 8, false, 1]]
        - [[aconv, 16], [repncspelan, 16, 8, false, 1]]
        - [[aconv, 16], [repncspelan, 16, 8, false, 1]]
    neck:
      name: yolov9fpn
      params:
        repeat_num: 1
        spp_channels: 16
        n4_channels: 16
        p3_channels: 16
        p3_to_p4_channels: 8
        p4_channels: 16
        p4_to_p5_channels: 8
        p5_channels: 16
    head:
      name: yolo_detection_head
      params: {reg_max: 8}
  postprocessor:
    params: {score_thresh: 0.001, nms_thresh: 0.7, reg_max: 8}
  losses:
    - {criterion: yolov9_loss, reg_max: 8}
""",
    "yolo_fastest_head_v2": """\
  task: detection
  architecture:
    backbone:
      name: shufflenetv2
      params: {model_size: 0.5x}
    neck:
      name: lightfpn
      params: {out_channels: 32}
    head:
      name: yolo_fastest_head_v2
      params:
        anchors: &anchors ANCHORS
  postprocessor:
    params: {anchors: *anchors, score_thresh: 0.0, nms_thresh: 0.45}
  losses:
    - {criterion: yolofastest_loss, anchors: *anchors}
""",
    "rtdetr_head": """\
  task: detection
  architecture:
    backbone:
      name: resnet
      params: {block_type: basicblock, norm_type: batch_norm, return_stage_idx: [1, 2, 3]}
      stage_params:
        - {channels: 8, num_blocks: 1}
        - {channels: 8, num_blocks: 1}
        - {channels: 16, num_blocks: 1}
        - {channels: 16, num_blocks: 1}
    neck:
      name: rtdetr_hybrid_encoder
      params: {hidden_dim: 16, num_attention_heads: 2, dim_feedforward: 32, depth_mult: 0.34}
    head:
      name: rtdetr_head
      params:
        hidden_dim: 16
        num_attention_heads: 2
        num_queries: 20
        num_decoder_layers: 2
        num_decoder_points: 2
        dim_feedforward: 32
        num_denoising: 20
        label_noise_ratio: 0.5
        use_aux_loss: true
  postprocessor:
    params: {num_top_queries: 20}
  losses:
    - {criterion: detr_loss, alpha: 0.75}
""",
    "pidnet": """\
  task: segmentation
  architecture:
    full: {name: pidnet, m: 1, n: 1, channels: 16, ppm_channels: 32, head_channels: 32}
  losses:
    - {criterion: pidnet_loss, ignore_index: 255}
""",
}
# yolo_fastest_head_v2's anchors (width, height in pixels) for the shapes (sides 20-40% of the image) at 64 and 128
ANCHORS = {
    64: "[[12.0, 12.0, 16.0, 16.0, 20.0, 20.0], [20.0, 20.0, 24.0, 24.0, 28.0, 28.0]]",
    128: "[[24.0, 24.0, 32.0, 32.0, 40.0, 40.0], [40.0, 40.0, 48.0, 48.0, 56.0, 56.0]]",
}
# epochs and learning rate where not (2, 0.003): yolov9_loss rises over its first steps (its class targets grow
# as the boxes improve), so it trains an epoch longer at a higher learning rate to get past that rise
RUNS = {"yolo_detection_head": (3, 0.01)}
FAST_DATA = "{format: shapes, image_size: 64, num_train: 32, num_valid: 8}"
# docs/runtime.md's measured runs: the same models on the whole built-in set (512 train / 128 valid images)
MEASURED_TRAINING = """\
training:
  epochs: 10
  batch_size: 32
  seed: 1
  optimizer: {name: adamw, lr: 0.003, weight_decay: 0.0005}
  scheduler: {name: cosine_no_sgdr, warmup_epochs: 1, min_lr: 0.00001}
  max_norm: 5.0
"""
MEASURED_SIZE = {"yolo_fastest_head_v2": 128}  # at 64 pixels its stride-16/32 grids are 4x4 and 2x2 cells


def _spec(tmp_path, name, epochs=2, lr=0.003, *, measured=False):
    size = MEASURED_SIZE.get(name, 64) if measured else 64
    model = MODELS[name].replace("ANCHORS", ANCHORS[size])
    training = (
        MEASURED_TRAINING
        if measured
        else f"training:\n  epochs: {epochs}\n  batch_size: 8\n  optimizer: {{name: adamw, lr: {lr}}}\n"
    )
    data = f"data: {{format: shapes, image_size: {size}}}\n" if measured else f"data: {FAST_DATA}\n"
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"model:\n  name: shapes_{name}\n{model}{training}{data}")
    return path


@pytest.mark.parametrize("name", MODELS)
def test_train_evaluate_predict(capsys, tmp_path, name):
    """The loss is finite and falls, evaluate reports the task's metric, predict decodes an image."""
    epochs, lr = RUNS.get(name, (2, 0.003))
    run = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", _spec(tmp_path, name, epochs, lr), "--out", run, "--no-tensorboard")
    assert code == 0, err
    with (run / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    losses = [float(row["train_loss"]) for row in rows]
    assert len(losses) == epochs and all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0], losses
    segmentation = name == "pidnet"
    metric = "miou" if segmentation else "map50"
    assert rows[-1][f"valid_{metric}"] != ""

    code, out, err = run_cli(capsys, "evaluate", run, "--format", "json")
    assert code == 0, err
    result = json.loads(out)
    assert result["samples"] == 8 and 0.0 <= result[metric] <= 1.0 and math.isfinite(result["loss"])

    image = shape_png(tmp_path / "shape.png")
    masks = tmp_path / "masks"
    code, out, err = run_cli(capsys, "predict", run, image, "--format", "json", "--masks", masks, "--min-score", "0")
    assert code == 0, err
    (record,) = json.loads(out)
    if segmentation:
        assert sum(record["classes"].values()) == pytest.approx(1.0) and (masks / "shape.png").is_file()
    else:
        assert record["detections"], "with --min-score 0 every kept box is listed"
        for found in record["detections"]:
            assert found["label"] in ("circle", "square", "triangle") and len(found["box"]) == 4


def test_rtdetr_trains_with_denoising_queries(tmp_path):
    """The ground truth reaches the head before a training forward pass, so the loss sees denoising outputs."""
    from npc.runtime.engine.load_model import build, compile_source, import_model
    from npc.spec.run_config import load_run_config

    config = load_run_config(_spec(tmp_path, "rtdetr_head"))
    (tmp_path / "model.py").write_text(compile_source(config))
    model = build(import_model(tmp_path / "model.py"), 3, tmp_path / "model.py").train()
    images = torch.rand(2, 3, 64, 64)
    targets = [
        {"boxes": torch.tensor([[4.0, 4.0, 30.0, 30.0]]), "labels": torch.tensor([1])},
        {"boxes": torch.tensor([[10.0, 20.0, 50.0, 60.0], [0.0, 0.0, 8.0, 8.0]]), "labels": torch.tensor([0, 2])},
    ]
    assert model(images)["dn_meta"] is None  # nothing fed: no denoising queries
    training_targets_feeder(model)(targets, (64, 64))
    out = model(images)
    assert out["dn_meta"]["dn_num_group"] == 20 // 2 and len(out["dn_aux_pred"]) == 2
    assert [len(i) for i in out["dn_meta"]["dn_positive_idx"]] == [10, 20]  # each box once per group
    assert model(images)["dn_meta"] is None  # the targets serve one forward pass only


@pytest.mark.parametrize(
    ("head", "out", "expected"),
    [
        (
            "rtdetr_head",
            {"pred": [torch.zeros(2, 8, 4, 4)]},
            "rtdetr_head should return pred: (B, queries, 4 + classes)",
        ),
        ("rtdetr_head", {"pred": torch.zeros(2, 10, 9)}, "rtdetr_head: forward()['pred'] has shape (2, 10, 9)"),
        ("yolo_fastest_head_v2", {"pred": [torch.zeros(2, 3, 9, 4, 4)]}, "expected (B, anchors, 8, H, W)"),
        ("yolo_detection_head", {"pred": [torch.zeros(2, 65, 4, 4)]}, "expected (B, 4 x reg_max + 3, H, W)"),
        ("my_head", {"boxes": torch.zeros(2, 4)}, "cannot read the outputs of the head my_head"),
    ],
)
def test_output_that_does_not_fit_names_the_head_and_what_is_supported(head, out, expected):
    with pytest.raises(RunError) as error:
        check_output(out, 3, 2, "model.py", "detection", head)
    assert expected in error.value.message
    if "should return" in expected or "cannot read" in expected:
        assert "yolo_detection_head" in error.value.message and "anchor_decoupled_head" in error.value.message


def test_a_model_without_a_known_head_passes_when_a_layout_fits():
    check_output({"pred": torch.zeros(2, 10, 7)}, 3, 2, "model.py", "detection", None)  # rtdetr_head's
    check_output({"pred": [torch.zeros(2, 67, 4, 4)]}, 3, 2, "model.py", "detection", None)  # yolo_detection_head's


def test_a_pidnet_spec_without_losses_trains_its_p_and_d_branches(tmp_path):
    from npc.runtime.engine.load_model import head_name
    from npc.runtime.losses import build_loss
    from npc.spec.run_config import load_run_config

    spec = _spec(tmp_path, "pidnet")
    spec.write_text(spec.read_text().replace("  losses:\n    - {criterion: pidnet_loss, ignore_index: 255}\n", ""))
    config = load_run_config(spec)
    assert not config.spec.losses and head_name(config) == "pidnet"
    loss, notes = build_loss(config.spec.losses, task="segmentation", head=head_name(config))
    assert loss.names == ["pidnet_loss"] and "pidnet_loss with ignore_index 255" in notes[0]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "metric", "reached"),
    [  # docs/runtime.md's figures (best after 10 epochs): mAP@.5 81.8%, 68.9%, 37.0%; mIoU 56.6%
        ("yolo_detection_head", "valid_map50", 0.6),
        ("yolo_fastest_head_v2", "valid_map50", 0.5),
        ("rtdetr_head", "valid_map50", 0.25),
        ("pidnet", "valid_miou", 0.4),  # a model answering "background" everywhere: ~22%
    ],
)
def test_the_measured_run_learns_the_shapes(tmp_path, name, metric, reached):
    values = train_metric_curve(_spec(tmp_path, name, measured=True), tmp_path / "run", metric)
    assert max(values) >= reached and max(values) > values[0]
