"""mixnet backbone: a tiny spec compiles, imports and runs for every task shape; bad group splits are located."""

import pytest
import torch

from helpers import build_dict, write_spec
from npc.errors import INVALID


def _stage(expansion, out_channels, num_blocks, kernel_sizes, exp_groups, poi_groups, strides, act, se):
    return {
        "expansion_ratio": expansion,
        "out_channels": out_channels,
        "num_blocks": num_blocks,
        "kernel_sizes": kernel_sizes,
        "num_exp_groups": exp_groups,
        "num_poi_groups": poi_groups,
        "stride": strides,
        "act_type": act,
        "se_reduction_ratio": se,
    }


# stem 8 ch /2; stage 0: no expansion, residual (8 -> 8), then a grouped expansion to 16 ch /4;
# stage 1: mixed 3/5 kernels with squeeze-excitation /8, then two residual repeats; the final 1x1 conv -> 1536.
STAGES = [
    _stage([1, 2], [8, 16], [1, 1], [[3], [3, 5]], [1, 2], [1, 2], [1, 2], ["relu", "relu"], [None, None]),
    _stage([2, 2], [16, 16], [1, 2], [[3, 5], [3]], [1, 2], [2, 1], [2, 1], ["swish", "prelu"], [2, 4]),
]
PARAMS = {"stem_channels": 8, "wid_mul": 1.0, "dep_mul": 1.0, "dropout_rate": 0.0}


def _spec(task, stages=STAGES, params=PARAMS, **architecture):
    return {
        "model": {
            "task": task,
            "name": "tiny_mixnet",
            "architecture": {
                "backbone": {"name": "mixnet", "params": params, "stage_params": stages},
                **architecture,
            },
            "losses": [{"criterion": "cross_entropy"}],
        }
    }


def _build(spec, tmp_path, name, num_classes=3):
    return build_dict(spec, tmp_path, name, module=f"tiny_mixnet_{name}", num_classes=num_classes, train=True)


def test_classification_pools_the_1536_channel_last_conv(tmp_path):
    _, model = _build(_spec("classification", head={"name": "fc", "params": {"num_layers": 1}}), tmp_path, "cls")
    model.eval()
    assert [tuple(f.shape) for f in model.backbone(torch.randn(2, 3, 32, 32))] == [(2, 1536)]
    assert model(torch.randn(2, 3, 32, 32))["pred"].shape == (2, 3)
    keys = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    assert "backbone.stages.0.0.expansion.conv.group_point_wise.0.weight" not in keys  # expansion_ratio 1
    assert keys["backbone.stages.0.1.expansion.conv.group_point_wise.1.weight"] == (8, 4, 1, 1)  # 2 groups
    assert keys["backbone.stages.0.1.depth_wise.conv.mixed_depth_wise.1.weight"] == (8, 1, 5, 5)  # 16 ch / 2 kernels
    # SE squeezes relative to the block input (16 / 2 = 8) but acts on the expanded 32 channels.
    assert keys["backbone.stages.1.0.se_block.fc1.weight"] == (8, 32, 1, 1)
    assert keys["backbone.stages.1.1.se_block.activation.weight"] == (1,)  # prelu's slope
    assert keys["backbone.stages.1.3.block.conv.weight"] == (1536, 16, 1, 1)  # closes the last stage
    norms = {(m.eps, m.momentum) for name, m in model.named_modules() if name.endswith("point_wise.norm")}
    assert norms == {(1e-3, 0.01)}


def test_dense_tasks_get_every_stage(tmp_path):
    spec = _spec(
        "segmentation",
        head={"name": "all_mlp_decoder", "params": {"intermediate_channels": 16, "classifier_dropout_prob": 0.0}},
    )
    spec["model"]["losses"] = [{"criterion": "seg_cross_entropy", "ignore_index": 255}]
    _, model = _build(spec, tmp_path, "seg")
    model.eval()
    features = model.backbone(torch.randn(1, 3, 32, 32))
    assert [tuple(f.shape) for f in features] == [(1, 16, 8, 8), (1, 1536, 4, 4)]
    assert model(torch.randn(1, 3, 32, 32))["pred"].shape == (1, 3, 8, 8)
    traced = torch.fx.symbolic_trace(model)
    x = torch.randn(1, 3, 32, 32)
    torch.testing.assert_close(traced(x)["pred"], model(x)["pred"])


def test_multipliers_scale_widths_and_repeats_before_emission(tmp_path):
    params = {"stem_channels": 16, "wid_mul": 0.5, "dep_mul": 1.5, "dropout_rate": 0.2}
    source, model = _build(_spec("classification", params=params, head={"name": "fc"}), tmp_path, "scaled")
    assert "F.dropout2d" in source and "F.dropout(" in source
    stage_1 = model.backbone.stages[1]
    assert len(stage_1) == 2 + 3 + 1  # ceil(1.5 * 1) + ceil(1.5 * 2) blocks, then the last conv
    assert model.backbone.mod1.block.conv.out_channels == 8  # 16 * 0.5
    assert stage_1[0].point_wise.norm.num_features == 8  # 16 * 0.5, a multiple of 8
    model.train()
    assert model(torch.randn(2, 3, 16, 16))["pred"].shape == (2, 3)


def test_without_expansion_squeeze_excitation_or_dropout_none_is_emitted(tmp_path):
    stages = [_stage([1], [8], [2], [[3, 5]], [1], [2], [1], ["relu"], [1])]  # SE ratio 1 means no SE
    source, model = _build(_spec("classification", stages, head={"name": "fc"}), tmp_path, "plain")
    assert "SqueezeExcitation" not in source and "self.expansion" not in source and "dropout2d" not in source
    assert model.eval()(torch.randn(1, 3, 16, 16))["pred"].shape == (1, 3)


@pytest.mark.parametrize(
    ("stages", "pointer"),
    [
        # 3 kernel sizes cannot split 8 * 2 = 16 expanded channels.
        ([_stage([2], [8], [1], [[3, 5, 7]], [1], [1], [1], ["relu"], [None])], "/stage_params/0/kernel_sizes/0"),
        # 3 groups do not divide the 8-channel input of the expansion conv.
        ([_stage([3], [8], [1], [[3]], [3], [1], [1], ["relu"], [None])], "/stage_params/0/num_exp_groups/0"),
        ([_stage([1], [12], [1], [[3]], [1], [8], [1], ["relu"], [None])], "/stage_params/0/num_poi_groups/0"),
        ([_stage([1], [8], [1], [[3, 4]], [1], [1], [1], ["relu"], [None])], "/stage_params/0/kernel_sizes/0/1"),
        (
            [{**_stage([1], [8], [1], [[3]], [1], [1], [1], ["relu"], [None]), "stride": [1, 2]}],
            "/stage_params/0/stride",
        ),
    ],
)
def test_bad_group_splits_are_reported_at_the_offending_entry(tmp_path, stages, pointer):
    from npc.spec import check_file

    path = write_spec(_spec("classification", stages, head={"name": "fc"}), tmp_path, "bad")
    _, diagnostics, problem = check_file(path)
    assert problem is INVALID
    assert [d.pointer for d in diagnostics] == [f"/model/architecture/backbone{pointer}"]
