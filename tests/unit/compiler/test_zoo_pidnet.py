"""pidnet full model: both variants compile, import and run; the emitted model subclasses the family's class."""

import torch

from helpers import build_dict


def _spec(**params):
    return {
        "model": {
            "task": "segmentation",
            "name": "tiny_pidnet",
            "architecture": {
                "full": {"name": "pidnet", "channels": 8, "ppm_channels": 8, "head_channels": 12, **params}
            },
            "losses": [{"criterion": "pidnet_loss", "ignore_index": 255}],
        }
    }


def _build(spec, tmp_path, name, **options):
    return build_dict(spec, tmp_path, name, module=f"tiny_pidnet_{name}", **options)


def _output_shapes(model, size):
    with torch.no_grad():
        return {key: tuple(value.shape) for key, value in model(torch.randn(1, 3, size, size)).items()}


def test_light_variant_predicts_at_one_eighth(tmp_path):
    source, model = _build(_spec(m=2, n=1), tmp_path, "light")
    assert "class TinyPidnet(PIDNet):" in source and "DAPPM" not in source and "class Bag" not in source
    assert _output_shapes(model, 64) == {"extra_p": (1, 3, 8, 8), "extra_d": (1, 1, 8, 8), "pred": (1, 3, 8, 8)}
    keys = model.state_dict()
    assert keys["conv1.0.block.conv.bias"].shape == (8,)  # the stem convs keep a bias before the BatchNorm
    assert keys["layer3_d.downsample.block.conv.weight"].shape == (8, 16, 1, 1)  # one bare block, no index
    assert keys["layer4_d.0.conv3.block.conv.weight"].shape == (16, 8, 1, 1)  # Bottleneck, expansion 2
    assert keys["spp.scale_process.2.weight"].shape == (32, 8, 3, 3)  # 4 grouped branches
    assert keys["dfm.conv_p.0.weight"].shape == (32, 32, 1, 1)
    assert keys["seghead_d.conv2.bias"].shape == (1,)
    # A first BasicBlock keeps its ReLU even alone (n=1); the last block of a longer layer drops it.
    assert isinstance(model.layer3[0].final_act, torch.nn.ReLU)
    assert [type(block.final_act) for block in model.layer1] == [torch.nn.ReLU, torch.nn.Identity]
    assert [type(block.final_act) for block in model.layer5] == [torch.nn.Identity, torch.nn.Identity]


def test_full_variant_uses_dappm_and_bag(tmp_path):
    source, model = _build(_spec(m=3, n=2), tmp_path, "full")
    assert "PAPPM" not in source and "LightBag" not in source
    assert _output_shapes(model, 48) == {"extra_p": (1, 3, 6, 6), "extra_d": (1, 1, 6, 6), "pred": (1, 3, 6, 6)}
    keys = model.state_dict()
    assert keys["spp.process4.2.weight"].shape == (8, 8, 3, 3)
    assert keys["dfm.conv.2.weight"].shape == (32, 32, 3, 3)
    assert keys["layer4_d.conv1.block.conv.weight"].shape == (16, 16, 3, 3)  # a bare BasicBlock here
    assert "layer3_d.downsample.block.conv.weight" not in keys  # 2c -> 2c: identity shortcut
    assert [type(block.final_act) for block in model.layer1] == [torch.nn.ReLU, torch.nn.ReLU, torch.nn.Identity]


def test_fused_full_model_predicts_the_same(tmp_path):
    torch.manual_seed(0)  # unseeded, one draw in many came out at 2e-4: float32 folding through PIDNet's depth
    _, model = _build(_spec(), tmp_path, "fuse", fuse=True)
    for module in model.modules():  # non-trivial statistics, so folding them matters
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        before = model(x)["pred"]
        after = model.fuse()(x)["pred"]
    torch.testing.assert_close(after, before, rtol=1e-3, atol=1e-3)
