"""The YOLOX trio (cspdarknet → yolopafpn → anchor_free_decoupled_head): tiny builds, one forward, spec checks.

The six peer configs are checked key by key in test_peer_parity.py; here: other widths and depths build, the
outputs have YOLOX's layout, the depthwise variant only appears when asked for, and unbuildable combinations are
reported at the right place.
"""

import pytest
import torch

from helpers import build_dict, compile_dict, compile_problem, write_spec
from npc.errors import INVALID

NUM_CLASSES = 3


def _spec(*, task="detection", depthwise=False, dep_mul=0.33, wid_mul=0.125, act_type="silu", backbone=None):
    shared = {"depthwise": depthwise, "dep_mul": dep_mul, "act_type": act_type}
    architecture = {"backbone": backbone or {"name": "cspdarknet", "params": {**shared, "wid_mul": wid_mul}}}
    if task == "detection":
        architecture["neck"] = {"name": "yolopafpn", "params": shared}
        architecture["head"] = {
            "name": "anchor_free_decoupled_head",
            "params": {"depthwise": depthwise, "act_type": act_type},
        }
    else:
        architecture["head"] = {"name": "fc", "params": {}}
    return {"model": {"task": task, "name": "tiny_yolox", "architecture": architecture}}


def _compile(tmp_path, name, **kwargs):
    return compile_dict(_spec(**kwargs), tmp_path, name)


def _model(tmp_path, name, **kwargs):
    return build_dict(_spec(**kwargs), tmp_path, name, num_classes=NUM_CLASSES)[1]


def test_tiny_depthwise_detector_runs_with_yolox_layout(tmp_path):
    model = _model(tmp_path, "yolox_tiny_dw", depthwise=True)  # base width 8, base depth 1
    with torch.no_grad():
        pred = model(torch.randn(1, 3, 64, 64))["pred"]
    # Per level: 4 box values, 1 objectness, then the classes; strides 8, 16, 32.
    assert [tuple(p.shape) for p in pred] == [(1, 4 + 1 + NUM_CLASSES, s, s) for s in (8, 4, 2)]
    keys = model.state_dict()
    assert tuple(keys["backbone.stem.conv.block.conv.weight"].shape) == (8, 12, 3, 3)  # Focus: 4 x 3 channels in
    assert tuple(keys["backbone.dark2.0.depthwise.block.conv.weight"].shape) == (8, 1, 3, 3)
    assert tuple(keys["backbone.dark5.1.conv2.block.conv.weight"].shape) == (128, 4 * 64, 1, 1)  # SPP concat
    assert tuple(keys["neck.C3_n4.conv3.block.conv.weight"].shape) == (128, 128, 1, 1)
    assert tuple(keys["head.stems.2.block.conv.weight"].shape) == (32, 128, 1, 1)  # to the first level's width
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert {(m.eps, m.momentum) for m in norms} == {(1e-3, 0.03)}
    prior = -torch.log(torch.tensor(99.0))
    torch.testing.assert_close(model.head.obj_preds[0].bias, prior.reshape(1))


def test_depths_follow_the_peer_rounding(tmp_path):
    model = _model(tmp_path, "yolox_depths", dep_mul=0.1, act_type="relu")
    # Backbone: max(round(0.3), 1) = 1 bottleneck (3 in dark3/dark4); neck: round(0.3) = 0 bottlenecks.
    assert [len(stage[-1].m) for stage in (model.backbone.dark2, model.backbone.dark3, model.backbone.dark5)] == [
        1,
        3,
        1,
    ]
    assert len(model.neck.C3_p4.m) == 0
    assert isinstance(model.backbone.stem.conv.block.act, torch.nn.ReLU)
    with torch.no_grad():
        assert len(model(torch.randn(1, 3, 32, 32))["pred"]) == 3


def test_plain_variant_emits_no_separable_conv_and_traces(tmp_path):
    source, model = build_dict(_spec(), tmp_path, "yolox_plain", num_classes=NUM_CLASSES)
    assert "DepthwiseSeparableConv" not in source
    traced = torch.fx.symbolic_trace(model)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        for ours, theirs in zip(traced(x)["pred"], model(x)["pred"], strict=True):
            torch.testing.assert_close(ours, theirs)


def test_classification_pools_dark5(tmp_path):
    model = _model(tmp_path, "yolox_cls", task="classification", wid_mul=0.25)
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32))["pred"].shape == (2, NUM_CLASSES)
    assert model.head is not None and model.backbone.dark5[0].block.conv.out_channels == 256


def test_too_narrow_backbone_is_located(tmp_path):
    from npc.spec import check_file

    path = write_spec(_spec(wid_mul=0.01), tmp_path, "narrow")  # int(0.01 * 64) == 0 channels
    _, diagnostics, problem = check_file(path)
    assert problem is INVALID
    assert [d.pointer for d in diagnostics] == ["/model/architecture/backbone/params/wid_mul"]


@pytest.mark.parametrize(
    ("return_stage_idx", "dilate_last", "message"),
    [
        ([2, 3], False, "exactly three feature maps, got 2"),
        ([1, 2, 3], True, "twice the stride"),  # strides 8, 16, 16
    ],
)
def test_neck_rejects_levels_it_cannot_fuse(tmp_path, return_stage_idx, dilate_last, message):
    stages = [{"channels": 4, "num_blocks": 1} for _ in range(4)]
    stages[-1]["replace_stride_with_dilation"] = dilate_last
    resnet = {
        "name": "resnet",
        "params": {"block_type": "bottleneck", "return_stage_idx": return_stage_idx},
        "stage_params": stages,
    }
    pointer, problem = compile_problem(write_spec(_spec(backbone=resnet), tmp_path, "bad_levels"))
    assert pointer == "/model/architecture/neck" and message in problem
