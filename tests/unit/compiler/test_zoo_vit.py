"""vit backbone: a tiny spec compiles, imports and runs; the class token and the position table behave as the peer's."""

import pytest
import torch

from helpers import build_dict, write_spec
from npc.errors import INVALID


def _spec(**params):
    backbone = {
        "patch_size": 8,
        "attention_channels": 16,
        "num_blocks": 2,
        "num_attention_heads": 2,
        "ffn_intermediate_channels": 32,
        "vocab_size": 64,
        **params,
    }
    return {
        "model": {
            "task": "classification",
            "name": "tiny_vit",
            "architecture": {
                "backbone": {"name": "vit", "params": backbone, "stage_params": None},
                "head": {"name": "fc", "params": {"num_layers": 1}},
            },
            "losses": [{"criterion": "cross_entropy"}],
        }
    }


def _build(tmp_path, name, **params):
    return build_dict(_spec(**params), tmp_path, name, num_classes=5)


def test_class_token_model_runs_and_keeps_the_peer_keys(tmp_path):
    _, model = _build(tmp_path, "tiny_vit_cls")
    x = torch.randn(2, 3, 32, 32)
    assert [tuple(f.shape) for f in model.backbone(x)] == [(2, 16)]
    assert model(x)["pred"].shape == (2, 5)
    keys = model.state_dict()
    assert keys["backbone.patch_embed.patch_emb.block.conv.weight"].shape == (16, 3, 9, 9)  # even patch: odd kernel
    assert keys["backbone.patch_embed.cls_token"].shape == (1, 1, 16)
    assert keys["backbone.patch_embed.pos_embed.pe"].shape == (1, 64, 16)  # a saved buffer, vocab_size long
    assert keys["backbone.encoder.blocks.1.channel_mlp.ffn.dense2.weight"].shape == (16, 32)


def test_without_class_token_the_tokens_are_averaged(tmp_path):
    source, model = _build(tmp_path, "tiny_vit_mean", use_cls_token=False, patch_size=5)
    assert "cls_token" not in source
    assert model.state_dict()["backbone.patch_embed.patch_emb.block.conv.weight"].shape == (16, 3, 5, 5)
    x = torch.randn(1, 3, 20, 20)
    tokens = model.backbone.norm(model.backbone.encoder["blocks"](model.backbone.patch_embed(x)))
    assert tokens.shape == (1, 16, 16)  # 4 x 4 patches, no class token
    torch.testing.assert_close(model.backbone(x)[0], tokens.mean(dim=1))


def test_position_codes_are_sines_and_cosines(tmp_path):
    _, model = _build(tmp_path, "tiny_vit_pe")
    pe = model.backbone.patch_embed.pos_embed.pe[0]
    torch.testing.assert_close(pe[:, 0], torch.sin(torch.arange(64.0)))
    torch.testing.assert_close(pe[:, 1], torch.cos(torch.arange(64.0)))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"attention_channels": 18, "num_attention_heads": 4}, "divisible"),
        ({"attention_channels": 15, "num_attention_heads": 3}, "even"),
    ],
)
def test_bad_widths_are_reported_at_attention_channels(tmp_path, params, message):
    from npc.spec import check_file

    path = write_spec(_spec(**params), tmp_path, "bad")
    _, diagnostics, problem = check_file(path)
    assert problem is INVALID
    assert [d.pointer for d in diagnostics] == ["/model/architecture/backbone/params/attention_channels"]
    assert message in diagnostics[0].message
