"""mobilevit backbone: a tiny spec compiles, imports and runs; the peer's dilation quirks hold; bad stages fail."""

import pytest
import torch

from helpers import build_dict, write_spec
from npc.errors import INVALID


def _mv2(out_channels, num_blocks, stride, ratio):
    return {
        "block_type": "mv2",
        "out_channels": out_channels,
        "num_blocks": num_blocks,
        "stride": stride,
        "ir_expansion_ratio": ratio,
    }


def _mobilevit(out_channels, num_blocks, stride, dilate=False):
    return {
        "block_type": "mobilevit",
        "out_channels": out_channels,
        "num_blocks": num_blocks,
        "stride": stride,
        "ir_expansion_ratio": 2,
        "attention_channels": 16,
        "ffn_intermediate_channels": 24,
        "dilate": dilate,
    }


# stem 16 ch /2; mv2 without expansion conv (ratio 1); mv2 /4; mobilevit /8 (inverted residual first); a
# mobilevit stage with stride 1 (no inverted residual, width kept).
STAGES = [_mv2(16, 1, 1, 1), _mv2(16, 2, 2, 2), _mobilevit(24, 2, 2), _mobilevit(24, 1, 1)]
PARAMS = {"patch_size": 2, "num_attention_heads": 2, "output_expansion_ratio": 4}


def _spec(stages=STAGES, **params):
    return {
        "model": {
            "task": "classification",
            "name": "tiny_mobilevit",
            "architecture": {
                "backbone": {"name": "mobilevit", "params": {**PARAMS, **params}, "stage_params": stages},
                "head": {"name": "fc", "params": {"num_layers": 1}},
            },
            "losses": [{"criterion": "cross_entropy"}],
        }
    }


def _build(spec, tmp_path, name):
    return build_dict(spec, tmp_path, name, module=f"tiny_mobilevit_{name}", num_classes=5)


def test_classification_pools_the_widened_last_stage(tmp_path):
    source, model = _build(_spec(), tmp_path, "cls")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert [tuple(f.shape) for f in model.backbone(x)] == [(2, 96)]  # 4 x 24 after the final 1x1 conv
        assert model(x)["pred"].shape == (2, 5)
    keys = model.state_dict()
    # ratio 1: no expansion conv, so the depthwise conv is block.0
    assert keys["backbone.encoder.blocks.0.0.block.0.block.conv.weight"].shape == (16, 1, 3, 3)
    assert keys["backbone.encoder.blocks.2.0.block.0.block.conv.weight"].shape == (32, 16, 1, 1)
    block = "backbone.encoder.blocks.2.1"
    assert keys[f"{block}.local_rep.1.block.conv.weight"].shape == (16, 24, 1, 1)  # no norm, no bias
    assert f"{block}.local_rep.1.block.norm.weight" not in keys
    assert keys[f"{block}.global_rep.2.weight"].shape == (16,)  # the LayerNorm after the 2 layers
    assert keys[f"{block}.global_rep.1.channel_mlp.ffn.dense1.weight"].shape == (24, 16)
    assert keys[f"{block}.fusion.block.conv.weight"].shape == (24, 48, 3, 3)
    assert list(model.backbone.encoder["blocks"][3]) == [model.backbone.encoder["blocks"][3][0]]  # no IR
    assert "dilate" not in source  # no dilation code when no stage dilates


def test_without_fusion_and_with_a_wide_expansion(tmp_path):
    source, model = _build(_spec(use_fusion_layer=False, output_expansion_ratio=100), tmp_path, "nofuse")
    assert "fusion" not in source
    assert not any("fusion" in key for key in model.state_dict())
    with torch.no_grad():
        assert [tuple(f.shape) for f in model.backbone(torch.randn(1, 3, 32, 32))] == [(1, 960)]  # capped


def test_dilation_follows_the_peer(tmp_path):
    stages = [_mv2(16, 1, 2, 2), _mobilevit(24, 1, 2, dilate=True), _mobilevit(32, 1, 2, dilate=True)]
    stages.append(_mobilevit(32, 1, 2))  # not dilated, but after a dilated stage: dilated and not strided
    _, model = _build(_spec(stages), tmp_path, "dilate")
    blocks = model.backbone.encoder["blocks"]
    depthwise = [blocks[i][0].block[1].block.conv for i in (1, 2, 3)]
    assert [(conv.stride, conv.dilation) for conv in depthwise] == [
        ((1, 1), (1, 1)),
        ((1, 1), (3, 3)),
        ((1, 1), (5, 5)),
    ]
    assert [blocks[i][0].use_residual for i in (1, 2, 3)] == [False, False, False]  # asked to stride or widened
    with torch.no_grad():  # 32 px: /2 stem, /2 mv2, then the resolution is kept at 8 x 8
        assert model.backbone.encoder["blocks"](torch.randn(1, 16, 16, 16)).shape == (1, 32, 8, 8)
        assert model(torch.randn(1, 3, 32, 32))["pred"].shape == (1, 5)


@pytest.mark.parametrize(
    ("stages", "params", "pointer"),
    [
        ([_mv2(16, 1, 1, 1), _mobilevit(24, 1, 1)], {}, "/stage_params/1/out_channels"),
        ([_mobilevit(24, 1, 2)], {"num_attention_heads": 3}, "/stage_params/0/attention_channels"),
        ([{**_mv2(16, 1, 1, 1), "dilate": True}], {}, "/stage_params/0/dilate"),
    ],
)
def test_bad_stages_are_reported_at_the_offending_entry(tmp_path, stages, params, pointer):
    from npc.spec import check_file

    path = write_spec(_spec(stages, **params), tmp_path, "bad")
    _, diagnostics, problem = check_file(path)
    assert problem is INVALID
    assert [d.pointer for d in diagnostics] == [f"/model/architecture/backbone{pointer}"]
