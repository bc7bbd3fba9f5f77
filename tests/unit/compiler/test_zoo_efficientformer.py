"""efficientformer backbone: a tiny spec compiles, imports and runs for classification and dense tasks; the peer's
block layout, its GroupNorm-fed stages and its four-stage rule are kept."""

import pytest
import torch

from helpers import build_dict, write_spec
from npc.errors import INVALID

STAGES = [{"num_blocks": 1, "channels": 4}, {"num_blocks": 1, "channels": 8}]
STAGES += [{"num_blocks": 1, "channels": 8}, {"num_blocks": 2, "channels": 16}]
PARAMS = {"num_attention_heads": 2, "attention_channels": 8, "attention_value_expansion_ratio": 2, "vit_num": 1}
HEADS = {
    "classification": ({"name": "fc"}, "cross_entropy"),
    "segmentation": ({"name": "all_mlp_decoder", "params": {"intermediate_channels": 8}}, "seg_cross_entropy"),
}


def _spec(task, stages=STAGES, **params):
    head, loss = HEADS[task]
    backbone = {"name": "efficientformer", "params": {**PARAMS, **params}, "stage_params": stages}
    return {
        "model": {
            "task": task,
            "name": "tiny_efficientformer",
            "architecture": {"backbone": backbone, "head": head},
            "losses": [{"criterion": loss}],
        }
    }


def test_classification_averages_the_normed_tokens(tmp_path):
    _, model = build_dict(_spec("classification"), tmp_path, "tiny_ef_cls")
    x = torch.randn(2, 3, 64, 64)
    assert [tuple(f.shape) for f in model.backbone(x)] == [(2, 16)]
    assert model(x)["pred"].shape == (2, 3)
    keys = model.state_dict()
    # Stage 3: a pooling block, the flatten layer, then the attention block at index 2.
    assert keys["backbone.encoder.blocks.6.2.token_mixer.value.weight"].shape == (16, 16)  # 8 x expansion 2
    assert keys["backbone.encoder.blocks.6.2.token_mixer.attention_biases"].shape == (2, 49)
    assert keys["backbone.encoder.blocks.5.proj.block.conv.bias"].shape == (16,)
    assert not any(key.startswith("backbone.encoder.norm") for key in keys)


def test_dense_tasks_normalise_each_stage_and_feed_the_norm_forward(tmp_path):
    _, model = build_dict(_spec("segmentation"), tmp_path, "tiny_ef_seg")
    x = torch.randn(1, 3, 64, 96)
    features = model.backbone(x)
    assert [tuple(f.shape) for f in features] == [(1, 4, 16, 24), (1, 8, 8, 12), (1, 8, 4, 6), (1, 16, 2, 3)]
    encoder = model.backbone.encoder
    with torch.no_grad():  # the second stage starts from the first stage's *normalised* output
        second = encoder.norm2(encoder.blocks[2](encoder.blocks[1](features[0])))
    torch.testing.assert_close(features[1], second)
    assert model(x)["pred"].shape == (1, 3, 16, 24)
    assert "backbone.norm.weight" in model.state_dict()  # unused here, but in the peer's checkpoints


def test_without_attention_blocks_no_attention_code_is_emitted(tmp_path):
    source, model = build_dict(_spec("classification", vit_num=0), tmp_path, "tiny_ef_noattn")
    assert "MultiHeadAttention" not in source and "Meta3D" not in source
    assert model(torch.randn(1, 3, 32, 32))["pred"].shape == (1, 3)


@pytest.mark.parametrize(
    ("stages", "params", "pointer"),
    [
        (STAGES[:3], {}, "/stage_params"),
        (STAGES, {"vit_num": 3}, "/params/vit_num"),
        (STAGES, {"attention_channels": 9}, "/params/attention_channels"),
    ],
)
def test_bad_specs_are_reported_at_the_offending_key(tmp_path, stages, params, pointer):
    from npc.spec import check_file

    _, diagnostics, problem = check_file(write_spec(_spec("classification", stages, **params), tmp_path, "bad"))
    assert problem is INVALID
    assert [d.pointer for d in diagnostics] == [f"/model/architecture/backbone{pointer}"]
