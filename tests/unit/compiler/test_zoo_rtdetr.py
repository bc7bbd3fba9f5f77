"""rtdetr_hybrid_encoder neck and rtdetr_head on a tiny resnet: compile, import, forward; bad wiring is located."""

import pytest
import torch

from helpers import build_dict, write_spec
from npc.errors import INVALID

NECK = {
    "hidden_dim": 16,
    "use_encoder_idx": [2],
    "num_encoder_layers": 1,
    "num_attention_heads": 2,
    "dim_feedforward": 32,
    "expansion": 0.5,
    "depth_mult": 0.34,  # round(3 * 0.34) = 1 RepVGG block per fusion
}
HEAD = {
    "hidden_dim": 16,
    "num_attention_heads": 2,
    "num_queries": 10,
    "num_decoder_layers": 2,
    "num_decoder_points": 2,
    "dim_feedforward": 32,
    "num_denoising": 6,
}


def _spec(return_stage_idx=(1, 2, 3), neck=None, head=None):
    return {
        "model": {
            "task": "detection",
            "name": "tiny_rtdetr",
            "architecture": {
                "backbone": {
                    "name": "resnet",
                    "params": {"block_type": "basicblock", "return_stage_idx": list(return_stage_idx)},
                    "stage_params": [{"channels": c, "num_blocks": 1} for c in (8, 8, 16, 16)],
                },
                "neck": {"name": "rtdetr_hybrid_encoder", "params": {**NECK, **(neck or {})}},
                "head": {"name": "rtdetr_head", "params": {**HEAD, **(head or {})}},
            },
        }
    }


def _build(tmp_path, name, **overrides):
    return build_dict(_spec(**overrides), tmp_path, name, module=f"tiny_rtdetr_{name}", train=True)


def test_eval_forward_returns_the_top_queries(tmp_path):
    _, model = _build(tmp_path, "eval")
    model.eval()
    with torch.no_grad():
        features = model.neck(model.backbone(torch.randn(1, 3, 64, 64)))
        out = model.head(features)
    assert [tuple(f.shape) for f in features] == [(1, 16, 8, 8), (1, 16, 4, 4), (1, 16, 2, 2)]
    assert tuple(out["pred"].shape) == (1, 10, 4 + 3)  # boxes (cx, cy, w, h), then class logits
    assert out["aux_pred"] is None and out["dn_aux_pred"] is None and out["dn_meta"] is None
    boxes = out["pred"][..., :4]
    assert bool(((boxes >= 0) & (boxes <= 1)).all())
    keys = model.state_dict()
    assert keys["head.denoising_class_embed.weight"].shape == (3 + 1, 16)  # one padding row
    assert keys["neck.fpn_blocks.0.conv1.block.conv.weight"].shape == (8, 32, 1, 1)  # int(16 * 0.5)
    assert "neck.fpn_blocks.0.bottlenecks.1.conv1.block.conv.weight" not in keys


def test_training_forward_adds_aux_and_denoising_outputs(tmp_path):
    _, model = _build(tmp_path, "train")
    model.train()
    gt = [
        {"boxes": torch.tensor([[4.0, 8.0, 30.0, 40.0]]), "labels": torch.tensor([2])},
        {"boxes": torch.tensor([[0.0, 0.0, 16.0, 16.0], [20.0, 20.0, 60.0, 50.0]]), "labels": torch.tensor([0, 1])},
    ]
    model.head.set_training_targets({"img_size": 64, "gt": gt})
    out = model(torch.randn(2, 3, 64, 64))
    # 6 denoising queries over at most 2 boxes per image: 3 groups of a positive and a negative copy each.
    assert out["dn_meta"]["dn_num_split"] == [2 * 2 * 3, 10]
    assert tuple(out["pred"].shape) == (2, 10, 7)
    assert len(out["aux_pred"]) == 2  # the first decoder layer's and the encoder's predictions
    assert [tuple(p["pred_boxes"].shape) for p in out["dn_aux_pred"]] == [(2, 12, 4)] * 2
    out["pred"].sum().backward()
    # The targets are used once: the next training forward has no denoising queries.
    assert model(torch.randn(1, 3, 64, 64))["dn_meta"] is None


def test_switches_leave_no_dead_code(tmp_path):
    neck = {"num_encoder_layers": 0, "expansion": 1.0}
    source, model = _build(tmp_path, "plain", neck=neck, head={"num_denoising": 0, "use_aux_loss": False})
    assert "class TransformerEncoder" not in source
    assert "set_training_targets" not in source and "def _aux" not in source
    keys = model.state_dict()
    assert not any(key.startswith(("neck.encoder", "head.denoising")) for key in keys)
    assert "neck.fpn_blocks.0.conv3.block.conv.weight" not in keys  # hidden width == hidden_dim: Identity
    out = model.train()(torch.randn(1, 3, 64, 64))
    assert out["aux_pred"] is None and tuple(out["pred"].shape) == (1, 10, 7)


def test_fixed_anchors_and_extra_levels(tmp_path):
    source, model = _build(tmp_path, "fixed", head={"num_levels": 4, "eval_spatial_size": [64, 64]})
    keys = model.state_dict()
    assert keys["head.input_proj.3.conv.weight"].shape == (16, 16, 3, 3)  # stride-2 conv on the last map
    assert "head.anchors" not in keys
    assert tuple(model.head.anchors.shape) == (1, 64 + 16 + 4 + 1, 4)
    with torch.no_grad():
        assert tuple(model.eval()(torch.randn(1, 3, 64, 64))["pred"].shape) == (1, 10, 7)


@pytest.mark.parametrize(
    ("overrides", "pointer", "message"),
    [
        ({"neck": {"use_encoder_idx": [3]}}, "/model/architecture/neck/params/use_encoder_idx/0", "out of range"),
        ({"return_stage_idx": (1, 3), "neck": {"use_encoder_idx": [1]}}, "/model/architecture/neck", "double"),
        ({"return_stage_idx": (2, 3), "neck": {"use_encoder_idx": [1]}}, "/model/architecture/head", "exactly 3"),
    ],
)
def test_bad_wiring_is_reported_at_its_pointer(tmp_path, overrides, pointer, message):
    from npc.spec import check_file

    path = write_spec(_spec(**overrides), tmp_path, "bad")
    _, diagnostics, problem = check_file(path)
    assert problem is INVALID
    assert [d.pointer for d in diagnostics] == [pointer]
    assert message in diagnostics[0].message
