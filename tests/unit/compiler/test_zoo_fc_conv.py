"""fc_conv head: state_dict keys/shapes as the peer's FCConv builds them, one forward, and its spec checks.

There is no peer config for fc_conv, so the expected keys are written from the peer's FCConv: ``num_layers - 1``
ConvLayers (1x1 conv without bias, norm, act), a Dropout, then a ConvLayer with a biased 1x1 conv and nothing else,
all in ``classifier``.
"""

import pytest
import torch

from helpers import build_dict, write_spec
from npc.errors import INVALID

WIDTH = 16  # the tiny resnet's pooled feature width


def _spec(head_params):
    return {
        "model": {
            "task": "classification",
            "name": "tiny_fc_conv",
            "architecture": {
                "backbone": {
                    "name": "resnet",
                    "params": {"block_type": "basicblock"},
                    "stage_params": [{"channels": WIDTH, "num_blocks": 1}],
                },
                "head": {"name": "fc_conv", "params": head_params},
            },
            "losses": [{"criterion": "cross_entropy"}],
        }
    }


def _head(tmp_path, name, head_params, num_classes=5):
    return build_dict(_spec(head_params), tmp_path, name, num_classes=num_classes)[1]


def _head_keys(model):
    return {k.removeprefix("head."): tuple(v.shape) for k, v in model.state_dict().items() if k.startswith("head.")}


def _norm_keys(prefix, channels):
    stats = {f"{prefix}.{name}": (channels,) for name in ("weight", "bias", "running_mean", "running_var")}
    return {**stats, f"{prefix}.num_batches_tracked": ()}


def test_hidden_layers_match_the_peer_keys_and_run(tmp_path):
    model = _head(
        tmp_path,
        "fc_conv_hidden",
        {"num_layers": 3, "intermediate_channels": 8, "act_type": "hard_swish", "dropout_prob": 0.1},
    )
    assert _head_keys(model) == {
        "classifier.0.block.conv.weight": (8, WIDTH, 1, 1),
        **_norm_keys("classifier.0.block.norm", 8),
        "classifier.1.block.conv.weight": (8, 8, 1, 1),
        **_norm_keys("classifier.1.block.norm", 8),
        # classifier.2 is the Dropout
        "classifier.3.block.conv.weight": (5, 8, 1, 1),
        "classifier.3.block.conv.bias": (5,),
    }
    head_params = sum(p.numel() for name, p in model.named_parameters() if name.startswith("head."))
    assert head_params == 8 * WIDTH + 2 * 8 + 8 * 8 + 2 * 8 + 5 * 8 + 5
    assert isinstance(model.head.classifier[0].block.act, torch.nn.Hardswish)
    assert model(torch.randn(2, 3, 32, 32))["pred"].shape == (2, 5)


def test_classifier_only_keeps_the_peer_index(tmp_path):
    model = _head(tmp_path, "fc_conv_single", {"num_layers": 1, "dropout_prob": 0.0}, num_classes=3)
    assert _head_keys(model) == {
        "classifier.1.block.conv.weight": (3, WIDTH, 1, 1),
        "classifier.1.block.conv.bias": (3,),
    }
    assert model(torch.randn(1, 3, 32, 32))["pred"].shape == (1, 3)


def test_null_act_and_norm_mean_relu_and_batch_norm(tmp_path):
    model = _head(
        tmp_path, "fc_conv_nulls", {"num_layers": 2, "intermediate_channels": 4, "act_type": None, "norm_type": None}
    )
    block = model.head.classifier[0].block
    assert isinstance(block.norm, torch.nn.BatchNorm2d) and isinstance(block.act, torch.nn.ReLU)


@pytest.mark.parametrize(
    ("head_params", "pointer"),
    [
        ({"num_layers": 2}, "/params/intermediate_channels"),
        ({"num_layers": 2, "intermediate_channels": 4, "norm_type": "instance_norm"}, "/params/norm_type"),
    ],
)
def test_unbuildable_params_are_located(tmp_path, head_params, pointer):
    from npc.spec import check_file

    path = write_spec(_spec(head_params), tmp_path, "bad")
    _, diagnostics, problem = check_file(path)
    assert problem is INVALID
    assert [d.pointer for d in diagnostics] == [f"/model/architecture/head{pointer}"]
