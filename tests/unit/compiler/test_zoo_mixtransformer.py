"""mixtransformer backbone (SegFormer's MiT): a tiny spec compiles, imports and runs for classification and
segmentation; sequence reduction and the peer's key layout are kept; bad stages are located."""

import pytest
import torch

from helpers import build_dict, write_spec
from npc.errors import INVALID


def _stage(width, heads, patch, stride, ratio, blocks=1):
    return {
        "num_blocks": blocks,
        "sequence_reduction_ratio": ratio,
        "attention_chananels": width,
        "embedding_patch_sizes": patch,
        "embedding_strides": stride,
        "num_attention_heads": heads,
    }


STAGES = [_stage(8, 1, 7, 4, 2, blocks=2), _stage(12, 2, 3, 2, 1)]
SEGMENTATION_HEAD = {"name": "all_mlp_decoder", "params": {"intermediate_channels": 16}}


def _spec(task, head, stages=STAGES):
    loss = "cross_entropy" if task == "classification" else "seg_cross_entropy"
    return {
        "model": {
            "task": task,
            "name": "tiny_mit",
            "architecture": {
                "backbone": {"name": "mixtransformer", "params": {"ffn_act_type": "relu"}, "stage_params": stages},
                "head": head,
            },
            "losses": [{"criterion": loss}],
        }
    }


def test_segmentation_gets_every_stage(tmp_path):
    _, model = build_dict(_spec("segmentation", SEGMENTATION_HEAD), tmp_path, "tiny_mit_seg")
    x = torch.randn(1, 3, 32, 48)
    assert [tuple(f.shape) for f in model.backbone(x)] == [(1, 8, 8, 12), (1, 12, 4, 6)]
    assert model(x)["pred"].shape == (1, 3, 8, 12)
    keys = model.state_dict()
    assert keys["backbone.encoder_modules.0.patch_embed.proj.weight"].shape == (8, 3, 7, 7)
    assert keys["backbone.encoder_modules.0.encoder.blocks.1.token_mixer.sr.weight"].shape == (8, 8, 2, 2)
    assert not any("encoder_modules.1" in key and ".sr" in key for key in keys)  # ratio 1: full attention
    assert keys["backbone.encoder_modules.1.encoder.blocks.0.channel_mlp.dwconv.dwconv.weight"].shape == (48, 1, 3, 3)


def test_classification_averages_the_last_stage(tmp_path):
    _, model = build_dict(_spec("classification", {"name": "fc"}), tmp_path, "tiny_mit_cls")
    x = torch.randn(2, 3, 32, 32)
    last = model.backbone.encoder_modules[1](model.backbone.encoder_modules[0](x))
    torch.testing.assert_close(model.backbone(x)[0], last.mean(dim=(2, 3)))
    assert model(x)["pred"].shape == (2, 3)


def test_pose_estimation_is_rejected(tmp_path):
    from npc.spec import check_file

    spec = _spec("pose_estimation", {"name": "rtmcc"})
    _, diagnostics, problem = check_file(write_spec(spec, tmp_path, "pose"))
    assert problem is INVALID
    assert any("pose_estimation" in d.message and "mixtransformer" in d.message for d in diagnostics)


def test_width_not_divisible_by_heads_is_reported_at_the_stage(tmp_path):
    from npc.spec import check_file

    stages = [STAGES[0], _stage(10, 4, 3, 2, 1)]
    _, diagnostics, problem = check_file(write_spec(_spec("classification", {"name": "fc"}, stages), tmp_path, "bad"))
    assert problem is INVALID
    assert [d.pointer for d in diagnostics] == ["/model/architecture/backbone/stage_params/1/attention_chananels"]


@pytest.mark.parametrize("spelling", ["encoder_chananels", "attention_channels"])
def test_only_the_spelling_the_peer_reads_is_accepted(tmp_path, spelling):
    from npc.spec import check_file

    stage = {**STAGES[0]}
    stage[spelling] = stage.pop("attention_chananels")
    _, _, problem = check_file(write_spec(_spec("classification", {"name": "fc"}, [stage]), tmp_path, "spelling"))
    assert problem is INVALID
