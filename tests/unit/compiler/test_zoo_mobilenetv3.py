"""mobilenetv3 backbone: a tiny spec compiles, imports and runs for every task shape; bad stage lists are located."""

import pytest
import torch

from helpers import build_dict, write_spec
from npc.errors import INVALID


def _stage(in_channels, out_channels, expanded, strides, use_se, act="hard_swish"):
    blocks = len(strides)
    return {
        "in_channels": in_channels,
        "kernel_sizes": [3] * blocks,
        "expanded_channels": expanded,
        "out_channels": out_channels,
        "use_se": use_se,
        "act_type": [act] * blocks,
        "stride": strides,
    }


# stem 8 ch; stage 0: no expansion conv (8 -> 8), SE, stride 2; stage 1: expand, stride 2, then a residual block.
STAGES = [
    _stage([8], [8], [8], [2], [True], act="relu"),
    _stage([8, 12], [12, 12], [24, 36], [2, 1], [False, True]),
]


def _spec(task, stages=STAGES, **architecture):
    return {
        "model": {
            "task": task,
            "name": "tiny_mobilenetv3",
            "architecture": {
                "backbone": {"name": "mobilenetv3", "params": None, "stage_params": stages},
                **architecture,
            },
            "losses": [{"criterion": "cross_entropy"}],
        }
    }


def _build(spec, tmp_path, name, num_classes):
    return build_dict(spec, tmp_path, name, module=f"tiny_mobilenetv3_{name}", num_classes=num_classes)


def test_classification_pools_the_widened_last_stage(tmp_path):
    spec = _spec("classification", head={"name": "fc", "params": {"num_layers": 1}})
    _, model = _build(spec, tmp_path, "cls", num_classes=5)
    features = model.backbone(torch.randn(2, 3, 32, 32))
    assert [tuple(f.shape) for f in features] == [(2, 12 * 6)]  # the final 1x1 conv widens 6x
    assert model(torch.randn(2, 3, 32, 32))["pred"].shape == (2, 5)
    keys = model.state_dict()
    # Stage 0 has no expansion conv (8 == 8): depthwise, SE, projection.
    assert keys["backbone.stages.0.0.block.1.fc1.weight"].shape == (8, 8, 1, 1)  # squeeze to max(8, 8 // 4 -> 8)
    assert "backbone.stages.0.0.block.3.block.conv.weight" not in keys
    # 36 // 4 = 9 rounds to 8, more than 10% down, so the squeeze width goes up to 16 (the peer's make_divisible).
    assert keys["backbone.stages.1.1.block.2.fc1.weight"].shape == (16, 36, 1, 1)
    assert keys["backbone.stages.1.2.block.conv.weight"].shape == (72, 12, 1, 1)  # final conv ends the last stage
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert {(m.eps, m.momentum) for m in norms} == {(1e-3, 0.01)}


def test_dense_tasks_get_every_stage(tmp_path):
    spec = _spec(
        "segmentation",
        head={"name": "all_mlp_decoder", "params": {"intermediate_channels": 16, "classifier_dropout_prob": 0.0}},
    )
    spec["model"]["losses"] = [{"criterion": "seg_cross_entropy", "ignore_index": 255}]
    _, model = _build(spec, tmp_path, "seg", num_classes=3)
    features = model.backbone(torch.randn(1, 3, 32, 32))
    assert [tuple(f.shape) for f in features] == [(1, 8, 8, 8), (1, 72, 4, 4)]
    assert model(torch.randn(1, 3, 32, 32))["pred"].shape == (1, 3, 8, 8)


def test_without_squeeze_excitation_no_se_code_is_emitted(tmp_path):
    stages = [_stage([8], [16], [32], [2], [False], act="relu6")]
    source, model = _build(_spec("classification", stages, head={"name": "fc"}), tmp_path, "nose", num_classes=2)
    assert "SqueezeExcitation" not in source and "use_se" not in source
    assert model(torch.randn(1, 3, 16, 16))["pred"].shape == (1, 2)


@pytest.mark.parametrize(
    ("stages", "pointer"),
    [
        ([_stage([8], [8], [8], [2], [True]), _stage([9], [8], [8], [1], [True])], "/stage_params/1/in_channels/0"),
        ([{**_stage([8, 8], [8, 8], [8, 8], [1, 1], [True, True]), "use_se": [True]}], "/stage_params/0/use_se"),
    ],
)
def test_inconsistent_stages_are_reported_at_the_offending_entry(tmp_path, stages, pointer):
    from npc.spec import check_file

    path = write_spec(_spec("classification", stages, head={"name": "fc"}), tmp_path, "bad")
    _, diagnostics, problem = check_file(path)
    assert problem is INVALID
    assert [d.pointer for d in diagnostics] == [f"/model/architecture/backbone{pointer}"]
