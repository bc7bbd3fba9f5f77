"""YOLO-Fastest-v2 trio (shufflenetv2 → lightfpn → yolo_fastest_head_v2): tiny specs compile, import and run.

shufflenetv2 has fixed widths (0.5x is the smallest), so "tiny" means a small input and a narrow neck.
"""

import math

import pytest
import torch

from helpers import build_dict, write_spec
from npc.errors import INVALID

ANCHORS = [[10.0, 13.0], [30.0, 61.0]]  # one anchor per level


def _spec(task, **architecture):
    architecture.setdefault("backbone", {"name": "shufflenetv2", "params": {"model_size": "0.5x"}})
    losses = {
        "classification": {"criterion": "cross_entropy"},
        "segmentation": {"criterion": "seg_cross_entropy", "ignore_index": 255},
        "detection": {"criterion": "yolofastest_loss", "anchors": ANCHORS},
    }
    return {
        "model": {"task": task, "name": f"tiny_fastest_{task}", "architecture": architecture, "losses": [losses[task]]}
    }


def _detection_spec(anchors=ANCHORS, **architecture):
    architecture.setdefault("neck", {"name": "lightfpn", "params": {"out_channels": 8}})
    architecture.setdefault("head", {"name": "yolo_fastest_head_v2", "params": {"anchors": anchors}})
    spec = _spec("detection", **architecture)
    spec["model"]["losses"][0]["anchors"] = anchors
    return spec


def _model(spec, tmp_path, name, num_classes):
    return build_dict(spec, tmp_path, name, module=f"tiny_fastest_{name}", num_classes=num_classes)


def test_detection_predicts_box_objectness_and_classes_per_anchor(tmp_path):
    anchors = [[10.0, 13.0, 16.0, 30.0], [30.0, 61.0, 62.0, 45.0]]  # two anchors per level
    _, model = _model(_detection_spec(anchors), tmp_path, "det", num_classes=3)
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        features = model.backbone(x)
        assert [tuple(f.shape) for f in features] == [(2, 96, 4, 6), (2, 192, 2, 3)]
        assert [tuple(f.shape) for f in model.neck(features)] == [(2, 8, 4, 6), (2, 8, 2, 3)]
        pred = model(x)["pred"]
        traced = torch.fx.symbolic_trace(model)(x)["pred"]  # NetsPresso exports through torch.fx
    assert [tuple(p.shape) for p in pred] == [(2, 2, 4 + 1 + 3, 4, 6), (2, 2, 4 + 1 + 3, 2, 3)]
    for ours, fx in zip(pred, traced, strict=True):
        torch.testing.assert_close(fx, ours)
    for level in pred:  # the class logits are per cell: both anchors of a cell get the same ones
        torch.testing.assert_close(level[:, 0, 5:], level[:, 1, 5:])
    prior = -math.log(99)  # class and objectness scores start at probability 0.01
    for conv in [*model.head.cls_head.cls_logits, *model.head.cls_head.obj]:
        torch.testing.assert_close(conv.bias, torch.full_like(conv.bias, prior))
    keys = model.state_dict()
    assert keys["neck.conv_C2.block.conv.weight"].shape == (8, 96 + 192, 1, 1)
    assert keys["head.cls_head.obj.1.weight"].shape == (2, 8, 1, 1)
    assert keys["head.reg_head.bbox_reg.0.weight"].shape == (2 * 4, 8, 1, 1)
    assert "head.cls_head.layer.0.0.pointwise.block.act" not in str(model)  # no activation after pointwise
    assert "backbone.stage2.1.branch_proj.0.block.conv.weight" not in keys  # only the first unit projects
    assert keys["backbone.stage4.0.branch_proj.1.block.conv.weight"].shape == (96, 96, 1, 1)


def test_shuffle_unit_passes_the_even_channels_through(tmp_path):
    _, model = _model(_detection_spec(), tmp_path, "shuffle", num_classes=2)
    unit = model.backbone.stage3[1]  # a stride-1 unit: 96 channels in and out
    x = torch.randn(1, 96, 4, 4)
    with torch.no_grad():
        y = unit(x)
        torch.testing.assert_close(y[:, :48], x[:, 0::2])
        torch.testing.assert_close(y[:, 48:], unit.branch_main(x[:, 1::2]))


def test_classification_pools_the_last_stage(tmp_path):
    source, model = _model(_spec("classification", head={"name": "fc"}), tmp_path, "cls", num_classes=5)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert [tuple(f.shape) for f in model.backbone(x)] == [(2, 192)]
        assert model(x)["pred"].shape == (2, 5)
    assert "AdaptiveAvgPool2d" in source


def test_segmentation_gets_the_last_two_stages(tmp_path):
    head = {"name": "all_mlp_decoder", "params": {"intermediate_channels": 16, "classifier_dropout_prob": 0.0}}
    source, model = _model(_spec("segmentation", head=head), tmp_path, "seg", num_classes=3)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert [tuple(f.shape) for f in model.backbone(x)] == [(1, 96, 4, 4), (1, 192, 2, 2)]
        assert model(x)["pred"].shape == (1, 3, 4, 4)
    assert "AdaptiveAvgPool2d" not in source


RESNET = {
    "name": "resnet",
    "params": {"block_type": "basicblock", "return_stage_idx": [0, 2]},  # strides 4 and 16: not x2 apart
    "stage_params": [{"channels": 8, "num_blocks": 1}] * 3,
}


@pytest.mark.parametrize(
    ("architecture", "pointer", "message"),
    [
        ({"backbone": RESNET}, "/model/architecture/neck", "strides must differ by exactly 2"),
        ({"neck": None}, "/model/architecture/head", "same channels on both levels"),  # 96 and 192 channels
    ],
)
def test_unbuildable_combinations_are_located(tmp_path, architecture, pointer, message):
    from npc.spec import check_file

    spec = _detection_spec(**architecture)
    spec["model"]["architecture"] = {k: v for k, v in spec["model"]["architecture"].items() if v is not None}
    _, diagnostics, problem = check_file(write_spec(spec, tmp_path, "bad"))
    assert problem is INVALID
    assert [d.pointer for d in diagnostics] == [pointer]
    assert message in diagnostics[0].message


@pytest.mark.parametrize(
    ("anchors", "pointer"),
    [
        ([[10.0, 13.0], [30.0, 61.0], [5.0, 5.0]], "/params/anchors"),
        ([[10.0, 13.0], [30.0, 61.0, 62.0, 45.0]], "/params/anchors/1"),
        ([[10.0, 13.0], [30.0, 61.0, 62.0]], "/params/anchors/1"),
    ],
)
def test_bad_anchors_are_reported_at_the_offending_level(tmp_path, anchors, pointer):
    from npc.spec import check_file

    _, diagnostics, problem = check_file(write_spec(_detection_spec(anchors), tmp_path, "bad"))
    assert problem is INVALID
    assert f"/model/architecture/head{pointer}" in [d.pointer for d in diagnostics]
