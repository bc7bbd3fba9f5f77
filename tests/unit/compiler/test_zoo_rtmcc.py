"""rtmcc head: a tiny pose spec compiles, imports and runs; flags emit only what they need; bad params are located."""

import pytest
import torch

from helpers import build_dict, compile_problem, write_spec
from npc.errors import INVALID

# One mobilenetv3 stage at stride 4 (stem 2 x block 2) whose last map is widened to 8 * 6 = 48 channels.
BACKBONE = {
    "name": "mobilenetv3",
    "params": None,
    "stage_params": [
        {
            "in_channels": [8],
            "kernel_sizes": [3],
            "expanded_channels": [16],
            "out_channels": [8],
            "use_se": [False],
            "act_type": ["relu"],
            "stride": [2],
        }
    ],
}
HEAD = {
    "conv_kernel": 3,
    "attention_channels": 16,
    "attention_act_type": "silu",
    "attention_pos_enc": False,
    "s": 8,
    "expansion_factor": 1.5,
    "dropout_rate": 0.0,
    "drop_path": 0.0,
    "use_rel_bias": False,
    "simcc_split_ratio": 1.5,
    "target_size": [16, 12],  # (height, width): a 4 x 3 map at stride 4
    "backbone_stride": 4,
}


def _spec(**head):
    return {
        "model": {
            "task": "pose_estimation",
            "name": "tiny_rtmpose",
            "architecture": {"backbone": BACKBONE, "head": {"name": "rtmcc", "params": {**HEAD, **head}}},
            "losses": [{"criterion": "rtmcc_loss"}],
        }
    }


def _model(tmp_path, name, num_classes=5, **head):
    return build_dict(_spec(**head), tmp_path, name, module=f"tiny_rtmcc_{name}", num_classes=num_classes, train=True)


def test_predicts_x_then_y_bins_per_keypoint(tmp_path):
    source, model = _model(tmp_path, "plain")
    for absent in ("rotary_position_encoding", "relative_position_bias", "drop_path", "Dropout"):
        assert absent not in source
    keys = {key: tuple(value.shape) for key, value in model.state_dict().items() if key.startswith("head.")}
    assert keys == {
        "head.final_layer.weight": (5, 48, 3, 3),
        "head.final_layer.bias": (5,),
        "head.mlp.0.g": (1,),
        "head.mlp.1.weight": (16, 12),  # 4 x 3 map flattened
        "head.gau.gamma": (2, 8),
        "head.gau.beta": (2, 8),
        "head.gau.o.weight": (16, 24),  # hidden width int(16 * 1.5)
        "head.gau.uv.weight": (2 * 24 + 8, 16),
        "head.gau.ln.g": (1,),
        "head.gau.res_scale.scale": (16,),
        "head.cls_x.weight": (18, 16),  # int(12 * 1.5) x bins
        "head.cls_y.weight": (24, 16),  # int(16 * 1.5) y bins
    }
    with torch.no_grad():
        output = model.eval()(torch.randn(2, 3, 16, 12))
    assert {key: tuple(value.shape) for key, value in output.items()} == {"pred": (2, 5, 18 + 24)}
    assert "def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:" in source


def test_every_option_builds_and_trains(tmp_path):
    options = {"use_rel_bias": True, "attention_pos_enc": True, "dropout_rate": 0.1, "drop_path": 0.2}
    _, model = _model(tmp_path, "options", num_classes=3, attention_act_type="relu", **options)
    gau = model.head.gau
    assert gau.w.shape == (2 * 3 - 1,)  # one bias per keypoint offset
    bias = gau.relative_position_bias(3)
    assert torch.equal(bias[0, 1], gau.w[3]) and torch.equal(bias[1, 0], gau.w[1])  # w[j - i + K - 1]
    assert torch.equal(torch.diagonal(bias), gau.w[2].expand(3))
    model.train()(torch.randn(2, 3, 16, 12))["pred"].sum().backward()
    assert gau.w.grad is not None


def test_one_keypoint_with_relative_bias_works(tmp_path):
    _, model = _model(tmp_path, "single", num_classes=1, use_rel_bias=True)  # the peer fails here (empty slice)
    assert model.eval()(torch.randn(1, 3, 16, 12))["pred"].shape == (1, 1, 42)


def test_a_wrong_backbone_stride_is_reported_at_the_param(tmp_path):
    pointer, problem = compile_problem(write_spec(_spec(backbone_stride=2, target_size=[16, 12]), tmp_path, "stride"))
    assert pointer == "/model/architecture/head/params/backbone_stride" and "at stride 4" in problem


@pytest.mark.parametrize(
    ("head", "pointer"),
    [
        ({"conv_kernel": 4}, "/params/conv_kernel"),
        ({"target_size": [16, 10]}, "/params/target_size/1"),
        ({"attention_pos_enc": True, "s": 7}, "/params/s"),
        ({"expansion_factor": 0.01}, "/params/expansion_factor"),
    ],
)
def test_bad_params_are_reported_at_the_param(tmp_path, head, pointer):
    from npc.spec import check_file

    _, diagnostics, problem = check_file(write_spec(_spec(**head), tmp_path, "bad"))
    assert problem is INVALID
    assert [d.pointer for d in diagnostics] == [f"/model/architecture/head{pointer}"]
