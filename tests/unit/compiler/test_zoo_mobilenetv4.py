"""mobilenetv4 backbone: tiny specs compile, import and run for every task; bad rows are located."""

import pytest
import torch

from helpers import build_dict, write_spec
from npc.errors import INVALID

PARAMS = {
    "stem_out_channel": 8,
    "stem_kernel_size": 3,
    "stem_stride": 2,
    "final_conv_out_channel": 24,
    "final_conv_kernel_size": 1,
    "final_conv_stride": 1,
    "norm_type": "batch_norm",
    "act_type": "relu",
    "return_stage_idx": None,
    "layer_scale": 0.1,
}
# Every row kind: stride 2 (stem), 4 (conv), 8 (fi), 16 (uir); then attention at stride 16.
STAGES = [
    [["conv", 8, 3, 2], ["conv", 8, 1, 1]],
    [["fi", 16, 32, 3, 2]],
    [
        ["uir", 16, 48, True, 3, True, 5, 2],
        ["uir", 16, 16, False, None, False, None, 1],  # no expansion conv (hidden == in): feed-forward only
        ["mmqa", 16, 16, 2, None, True, 3, 2, 1],
    ],
]

LOSSES = {
    "classification": {"criterion": "cross_entropy"},
    "segmentation": {"criterion": "seg_cross_entropy", "ignore_index": 255},
    "detection": {"criterion": "retinanet_loss"},
}


def _spec(task, stages=STAGES, **architecture):
    params = {**PARAMS, **architecture.pop("params", {})}
    return {
        "model": {
            "task": task,
            "name": "tiny_mobilenetv4",
            "architecture": {
                "backbone": {"name": "mobilenetv4", "params": params, "stage_params": stages},
                **architecture,
            },
            "losses": [LOSSES[task]],
        }
    }


def _model(spec, tmp_path, name, num_classes=5):
    return build_dict(spec, tmp_path, name, module=f"tiny_mobilenetv4_{name}", num_classes=num_classes)


def test_classification_pools_the_final_conv_of_the_last_stage(tmp_path):
    _, model = _model(_spec("classification", head={"name": "fc"}), tmp_path, "cls")
    x = torch.randn(2, 3, 32, 32)
    assert [tuple(f.shape) for f in model.backbone(x)] == [(2, 24)]
    assert model(x)["pred"].shape == (2, 5)
    keys = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    assert keys["backbone.stages.2.3.block.conv.weight"] == (24, 16, 1, 1)  # final conv ends the last stage
    assert keys["backbone.stages.2.0.block.0.block.conv.weight"] == (16, 1, 3, 3)  # extra depthwise
    assert keys["backbone.stages.2.1.block.0.block.conv.weight"] == (16, 16, 1, 1)  # projection only
    assert "backbone.stages.2.1.block.1.block.conv.weight" not in keys
    assert keys["backbone.stages.2.2.attention.key.2.weight"] == (8, 16, 1, 1)  # one head of 16 / 2 channels
    assert keys["backbone.stages.2.2.layer_scale.gamma"] == (16,)
    assert model.backbone.stages[2][2].layer_scale.gamma.detach().tolist() == [pytest.approx(0.1)] * 16


@pytest.mark.parametrize(
    ("head", "neck"),
    [
        ({"name": "all_mlp_decoder", "params": {"intermediate_channels": 8}}, None),
        (
            {"name": "all_mlp_decoder", "params": {"intermediate_channels": 8}},
            {"name": "fpn", "params": {"num_outs": 3}},
        ),
    ],
    ids=["all_mlp_decoder", "fpn"],
)
def test_segmentation_gets_the_selected_stages(tmp_path, head, neck):
    spec = _spec("segmentation", params={"return_stage_idx": [0, 1, 2]}, head=head, **({"neck": neck} if neck else {}))
    _, model = _model(spec, tmp_path, f"seg_{head['name']}_{bool(neck)}", num_classes=3)
    x = torch.randn(1, 3, 64, 64)
    features = model.backbone(x)
    assert [tuple(f.shape) for f in features] == [(1, 8, 16, 16), (1, 16, 8, 8), (1, 24, 4, 4)]
    assert model(x)["pred"].shape == (1, 3, 16, 16)


def test_detection_defaults_to_the_last_stage(tmp_path):
    from npc.compiler import compile_graph
    from npc.compiler._graph import components
    from npc.spec import load_spec

    neck = {"name": "fpn", "params": {"num_outs": 4}}  # one level in, three pooled levels on top
    spec = _spec("detection", neck=neck, head={"name": "anchor_decoupled_head"})
    path = write_spec(spec, tmp_path, "det")
    backbone, fpn, _ = components(compile_graph(load_spec(path)))
    assert [(f.channels, f.stride) for f in backbone.built.outputs] == [(24, 16)]
    assert [(f.channels, f.stride) for f in fpn.built.outputs] == [(24, 16), (24, 32), (24, 64), (24, 128)]
    _, model = _model(spec, tmp_path, "det", num_classes=3)
    x = torch.randn(1, 3, 64, 64)
    assert [tuple(f.shape) for f in model.backbone(x)] == [(1, 24, 4, 4)]
    assert [tuple(f.shape) for f in model.neck(model.backbone(x))] == [
        (1, 24, 4, 4),
        (1, 24, 2, 2),
        (1, 24, 1, 1),
        (1, 24, 1, 1),
    ]


def test_conv_only_spec_emits_no_unused_blocks(tmp_path):
    stages = [[["conv", 8, 3, 2]], [["fi", 16, 32, 3, 2]]]
    source, model = _model(_spec("classification", stages, head={"name": "fc"}), tmp_path, "conv")
    for name in ("UniversalInvertedResidual", "MultiQueryAttention2D", "LayerScale2d", "layer_scale"):
        assert name not in source
    assert model(torch.randn(1, 3, 16, 16))["pred"].shape == (1, 5)


def test_query_pooling_restores_the_resolution(tmp_path):
    # The peer's forward fails here (it reshapes pooled queries to the unpooled size); npc follows the paper.
    stages = [[["conv", 8, 3, 2], ["mmqa", 8, 8, 2, 2, False, None, None, 1]]]
    spec = _spec("segmentation", stages, head={"name": "all_mlp_decoder", "params": {"intermediate_channels": 8}})
    _, model = _model(spec, tmp_path, "pool", num_classes=2)
    assert "backbone.stages.0.1.attention.query.1.running_mean" in model.state_dict()  # pool, norm, conv
    assert [tuple(f.shape) for f in model.backbone(torch.randn(1, 3, 32, 32))] == [(1, 24, 8, 8)]


@pytest.mark.parametrize(
    ("stages", "params", "pointer"),
    [
        ([[["conv", 8, 3, 2], ["mmqa", 16, 16, 2, None, False, None, None, 1]]], {}, "/stage_params/0/1/1"),
        ([[["uir", 8, 16, True, 3, False, None, 2]]], {}, "/stage_params/0/0/7"),
        ([[["uir", 8, 16, True, 4, True, 3, 1]]], {}, "/stage_params/0/0/4"),
        ([[["mmqa", 8, 12, 5, None, False, None, None, 1]]], {}, "/stage_params/0/0/2"),
        ([[["conv", 8, 3, 2]]], {"return_stage_idx": [1]}, "/params/return_stage_idx/0"),
    ],
    ids=["mmqa_changes_width", "uir_stride_without_middle_dw", "uir_even_residual_kernel", "heads", "stage_idx"],
)
def test_bad_rows_are_reported_at_the_offending_item(tmp_path, stages, params, pointer):
    from npc.spec import check_file

    path = write_spec(_spec("classification", stages, params=params, head={"name": "fc"}), tmp_path, "bad")
    _, diagnostics, problem = check_file(path)
    assert problem is INVALID
    assert [d.pointer for d in diagnostics] == [f"/model/architecture/backbone{pointer}"]
