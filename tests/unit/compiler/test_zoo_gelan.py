"""gelan backbone: tiny specs with every row kind compile, import and run; bad rows are located."""

import pytest
import torch

from helpers import build_dict, write_spec
from npc.errors import INVALID

# stem 8 ch /2; stage 0: conv /2, ELAN with odd part width; stage 1: AConv /2, RepNCSP-ELAN with identity
# branches; stage 2: ADown /2, SPP-ELAN with its default hidden width.
STAGES = [
    [["conv", 16, 3, 2], ["elan", 16, 10, True]],
    [["aconv", 24], ["repncspelan", 24, 16, True, 2]],
    [["adown", 32], ["sppelan", 32, None]],
]


def _spec(task, stages=STAGES, params=None, **architecture):
    backbone = {
        "name": "gelan",
        "params": {"stem_out_channels": 8, "act_type": "relu", **(params or {})},
        "stage_params": stages,
    }
    return {
        "model": {
            "task": task,
            "name": "tiny_gelan",
            "architecture": {"backbone": backbone, **architecture},
            "losses": [{"criterion": "cross_entropy"}],
        }
    }


def _build(spec, tmp_path, name, num_classes):
    return build_dict(spec, tmp_path, name, module=f"tiny_gelan_{name}", num_classes=num_classes)


def test_classification_pools_the_last_stage(tmp_path):
    _, model = _build(_spec("classification", head={"name": "fc"}), tmp_path, "cls", num_classes=5)
    assert [tuple(f.shape) for f in model.backbone(torch.randn(2, 3, 64, 64))] == [(2, 32)]
    assert model(torch.randn(2, 3, 64, 64))["pred"].shape == (2, 5)
    keys = model.state_dict()
    # ELAN with part 10: halves of 5, so the fusing conv reads 10 + 2 * 5 channels; use_identity is ignored.
    assert keys["backbone.stages.0.1.conv2.block.conv.weight"].shape == (5, 5, 3, 3)
    assert keys["backbone.stages.0.1.conv4.block.conv.weight"].shape == (16, 20, 1, 1)
    # RepNCSP inside RepNCSP-ELAN (part 16): 8 -> 4 hidden, two bottlenecks, each RepConv with an identity norm.
    csp = "backbone.stages.1.1.conv2.0"
    assert keys[f"{csp}.conv1.block.conv.weight"].shape == (4, 8, 1, 1)
    assert keys[f"{csp}.m.1.conv1.rbr_identity.weight"].shape == (4,)
    assert keys["backbone.stages.2.0.conv1.block.conv.weight"].shape == (16, 12, 3, 3)  # ADown halves
    assert keys["backbone.stages.2.1.conv5.block.conv.weight"].shape == (32, 64, 1, 1)  # SPP-ELAN: 4 x 16
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert {(m.eps, m.momentum) for m in norms} == {(1e-3, 0.03)}
    assert not any(isinstance(m, torch.nn.SiLU) for m in model.modules())


def test_only_the_blocks_used_are_emitted(tmp_path):
    stages = [[["conv", 16, 3, 2], ["elan", 16, 16, False]]]
    source, model = _build(_spec("classification", stages, head={"name": "fc"}), tmp_path, "small", num_classes=2)
    assert "class ELAN" in source
    for name in ("RepNCSPELAN", "RepConv", "AConv", "ADown", "SPPELAN", "return_stage_idx"):
        assert name not in source
    assert model(torch.randn(1, 3, 16, 16))["pred"].shape == (1, 2)


def test_detection_returns_the_selected_stages(tmp_path):
    head = {
        "name": "anchor_decoupled_head",
        "params": {"anchor_sizes": [[16], [32]], "aspect_ratios": [1.0], "num_layers": 1},
    }
    spec = _spec("detection", params={"return_stage_idx": [1, 2]}, neck={"name": "fpn", "params": {"num_outs": 2}})
    spec["model"]["architecture"]["head"] = head
    spec["model"]["losses"] = [{"criterion": "retinanet_loss"}]
    _, model = _build(spec, tmp_path, "det", num_classes=3)
    features = model.backbone(torch.randn(1, 3, 64, 64))
    assert [tuple(f.shape) for f in features] == [(1, 24, 8, 8), (1, 32, 4, 4)]


@pytest.mark.parametrize(
    ("stages", "pointer"),
    [
        ([[["conv", 15, 3, 2], ["adown", 16]]], "/stage_params/0/1"),  # odd input to ADown
        ([[["adown", 18], ["adown", 9]]], "/stage_params/0/1/1"),  # odd ADown output
        ([[["repncspelan", 16, 2, False, 1]]], "/stage_params/0/0/2"),  # too narrow for RepNCSP
        ([[["elan", 16, 16]]], "/stage_params/0/0"),  # use_identity missing
        ([[["pool", 16]]], "/stage_params/0/0/0"),  # unknown row kind
    ],
)
def test_bad_rows_are_reported_at_the_offending_entry(tmp_path, stages, pointer):
    from npc.spec import check_file

    path = write_spec(_spec("classification", stages, head={"name": "fc"}), tmp_path, "bad")
    _, diagnostics, problem = check_file(path)
    assert problem is INVALID
    assert [d.pointer for d in diagnostics] == [f"/model/architecture/backbone{pointer}"]
