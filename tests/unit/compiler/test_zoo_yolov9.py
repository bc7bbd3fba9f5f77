"""yolov9fpn neck and yolo_detection_head on a tiny gelan: compile, import, one forward; bad wiring is located."""

import pytest
import torch

from helpers import build_dict, compile_problem, write_spec
from npc.errors import INVALID

# stem 8 ch /2; stages at strides 4, 8, 16, 32; the last three go to the neck.
STAGES = [
    [["conv", 16, 3, 2], ["elan", 16, 16, False]],
    [["aconv", 16], ["repncspelan", 16, 16, False, 1]],
    [["aconv", 24], ["repncspelan", 24, 24, False, 1]],
    [["aconv", 32], ["repncspelan", 32, 32, False, 1]],
]
NECK = {
    "repeat_num": 1,
    "act_type": "silu",
    "use_aux_loss": False,
    "bu_type": "aconv",
    "spp_channels": 32,
    "n4_channels": 24,
    "p3_channels": 16,
    "p3_to_p4_channels": 12,
    "p4_channels": 24,
    "p4_to_p5_channels": 16,
    "p5_channels": 32,
}


def _spec(return_stage_idx=(1, 2, 3), neck=None, head=None):
    return {
        "model": {
            "task": "detection",
            "name": "tiny_yolov9",
            "architecture": {
                "backbone": {
                    "name": "gelan",
                    "params": {"stem_out_channels": 8, "return_stage_idx": list(return_stage_idx)},
                    "stage_params": STAGES,
                },
                "neck": {"name": "yolov9fpn", "params": {**NECK, **(neck or {})}},
                "head": {"name": "yolo_detection_head", "params": {"reg_max": 4, **(head or {})}},
            },
            "losses": [{"criterion": "yolov9_loss", "reg_max": 4}],
        }
    }


def _build(spec, tmp_path, name, num_classes):
    return build_dict(spec, tmp_path, name, module=f"tiny_yolov9_{name}", num_classes=num_classes)


def test_three_levels_in_three_predictions_out(tmp_path):
    source, model = _build(_spec(), tmp_path, "aconv", num_classes=3)
    assert "class ADown" not in source
    with torch.no_grad():
        features = model.neck(model.backbone(torch.randn(1, 3, 32, 32)))
        pred = model.head(features)["pred"]
    assert [tuple(f.shape) for f in features] == [(1, 16, 4, 4), (1, 24, 2, 2), (1, 32, 1, 1)]
    assert [tuple(p.shape) for p in pred] == [(1, 4 * 4 + 3, 4, 4), (1, 19, 2, 2), (1, 19, 1, 1)]
    keys = model.state_dict()
    # Every level's branches are sized from the first level (16 channels): box branch max(16 // 4 -> 4, 4 * 4),
    # class branch max(16, min(2 * 3, 128)).
    assert keys["head.heads.2.reg_convs.0.block.conv.weight"].shape == (16, 32, 3, 3)
    assert keys["head.heads.2.reg_convs.1.block.conv.weight"].shape == (16, 4, 3, 3)  # 4 groups
    assert keys["head.heads.2.cls_convs.0.block.conv.weight"].shape == (16, 32, 3, 3)
    bins = dict(model.named_parameters())["head.heads.0.anchor2vec.anchor2vec.weight"]
    assert not bins.requires_grad and bins.flatten().tolist() == [0.0, 1.0, 2.0, 3.0]
    # The top-down fusion reads the upsampled SPP output first, then P4.
    assert keys["neck.td_fusion_block_1.conv1.block.conv.weight"].shape == (24, 32 + 24, 1, 1)


def test_adown_and_many_classes_widen_as_the_peer_does(tmp_path):
    spec = _spec(neck={"bu_type": "adown"}, head={"use_group": False, "act_type": "relu"})
    source, model = _build(spec, tmp_path, "adown", num_classes=40)
    assert "class ADown" in source and "class AConv" in source  # AConv still downsamples in the backbone
    keys = model.state_dict()
    assert keys["neck.bu_conv_p3_to_p4.conv1.block.conv.weight"].shape == (6, 8, 3, 3)  # ADown halves
    assert keys["head.heads.0.cls_convs.0.block.conv.weight"].shape == (80, 16, 3, 3)  # 2 * 40 classes
    assert keys["head.heads.0.reg_convs.1.block.conv.weight"].shape == (16, 16, 3, 3)  # no groups
    with torch.no_grad():
        pred = model(torch.randn(1, 3, 32, 32))["pred"]
    assert [tuple(p.shape) for p in pred] == [(1, 56, 4, 4), (1, 56, 2, 2), (1, 56, 1, 1)]


@pytest.mark.parametrize(
    ("return_stage_idx", "message"),
    [((2, 3), "exactly three feature maps"), ((0, 2, 3), "twice as coarse")],
)
def test_the_neck_rejects_other_inputs_at_its_own_pointer(tmp_path, return_stage_idx, message):
    path = write_spec(_spec(return_stage_idx), tmp_path, "bad")
    pointer, problem = compile_problem(path)  # npc validate reports it (it runs channel/stride inference)
    assert pointer == "/model/architecture/neck" and message in problem


def test_odd_widths_under_adown_are_reported_at_the_param(tmp_path):
    from npc.spec import check_file

    path = write_spec(_spec(neck={"bu_type": "adown", "p3_to_p4_channels": 11}), tmp_path, "odd")
    _, diagnostics, problem = check_file(path)
    assert problem is INVALID
    assert [d.pointer for d in diagnostics] == ["/model/architecture/neck/params/p3_to_p4_channels"]
