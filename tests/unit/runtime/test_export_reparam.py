"""Re-parameterisation before export: GELAN/YOLOv9 RepConv blocks (3x3 + 1x1 + identity BN) merge into one 3x3 conv
that computes what the three branches did, and npc export's ONNX files carry the merged blocks, verified on the
data's images when it has them (a broken merge is refused)."""

from pathlib import Path

import pytest
import torch
from torch import nn

from helpers import run_cli
from npc import zoo
from npc.runtime.checkpoint import save_weights
from npc.runtime.tools import ExportOptions, export_target, merge_repconv_
from npc.runtime.tools.export import export_path
from npc.runtime.tools.summary import build_model, load_target


def _gelan_spec(tmp_path, use_identity: bool):
    """gelan_tiny with depth-1 RepNCSPELAN stages, with or without the identity branch."""
    text = zoo.path_of("gelan_tiny-classification").read_text()
    text = text.replace("false, 3]", f"{str(use_identity).lower()}, 1]")
    spec = tmp_path / f"gelan-{use_identity}.yaml"
    spec.write_text(text)
    return spec


def _gelan(tmp_path, use_identity: bool):
    return load_target(_gelan_spec(tmp_path, use_identity))


def _trained_like(model: nn.Module) -> nn.Module:
    """Non-trivial BatchNorm statistics and affine terms (fresh ones are the identity and would hide a mistake), and
    convs initialised to keep the signal's scale: with PyTorch's default init an untrained GELAN shrinks it ~100x a
    stage, so its output hardly depends on the input, or on the RepConvs (a broken merge went unseen)."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, generator=generator)
            if isinstance(module, nn.BatchNorm2d):
                n = module.num_features
                module.running_mean.copy_(torch.randn(n, generator=generator) * 0.3)
                module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(n, generator=generator) * 0.2)
    return model.eval()


@pytest.mark.parametrize("use_identity", [False, True])
def test_merged_repconv_computes_what_the_branches_did(tmp_path, use_identity):
    torch.manual_seed(0)
    model = _trained_like(build_model(_gelan(tmp_path, use_identity), 5))
    identities = sum(getattr(m, "rbr_identity", None) is not None for m in model.modules())
    assert (identities > 0) == use_identity
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        before = model(x)["pred"]
    params_before = sum(p.numel() for p in model.parameters())
    assert merge_repconv_(model) == 6  # 3 RepNCSPELAN stages x 2 RepNCSP x 1 RepConv (depth 1)
    assert not any(type(m).__name__ == "RepConv" for m in model.modules())
    assert sum(p.numel() for p in model.parameters()) < params_before
    with torch.no_grad():
        after = model(x)["pred"]
    assert (before[0] - before[1]).abs().max() > 1e-2, "the check needs outputs that depend on the input"
    assert (after - before).abs().max() <= 1e-5


def test_onnx_export_merges_and_verifies(tmp_path):
    report = export_target(
        _gelan(tmp_path, True), tmp_path / "gelan.onnx", ExportOptions(input_size=(64, 64)), num_classes=5
    )
    assert report.reparameterised == 6 and any("merged 6 RepConv" in note for note in report.notes)
    fx = export_target(
        _gelan(tmp_path, True), tmp_path / "gelan.pt", ExportOptions(format="fx", input_size=(64, 64)), num_classes=5
    )
    assert fx.reparameterised == 0, "fx files keep the training structure (they are also used to train)"


def _digits(tmp_path) -> Path:
    data = tmp_path / "digits.yaml"
    data.write_text("data: {format: digits, image_size: 32}\n")  # built-in: no files to read
    return data


def _weights(tmp_path) -> Path:
    """Trained-like weights for the gelan spec with the identity branch, 5 classes."""
    torch.manual_seed(0)
    weights = tmp_path / "gelan.safetensors"
    save_weights(weights, _trained_like(build_model(_gelan(tmp_path, True), 5)).state_dict(), {"num_classes": 5})
    return weights


def test_the_merged_file_is_verified_on_real_images(tmp_path):
    pytest.importorskip("onnxruntime")
    spec, out = _gelan_spec(tmp_path, True), tmp_path / "gelan.onnx"
    report = export_path(spec, out, ExportOptions(), weights=_weights(tmp_path), data=_digits(tmp_path))
    assert report.reparameterised == 6 and report.verified_images == 4
    assert report.verified_on.startswith("4 validation images from digits") and report.max_abs_diff <= report.atol


def test_a_broken_merge_is_refused_on_real_images(tmp_path, monkeypatch, capsys):
    """The merge is checked, not trusted: a merged kernel off by 0.01 at its centre taps fails the verification on
    the data's images, and nothing is written (exit 1)."""
    from npc.runtime.tools import fuse

    real = fuse._merged_kernel

    def off_centre(*branches):
        weight, bias = real(*branches)
        weight = weight.clone()
        weight[:, :, 1, 1] += 0.01
        return weight, bias

    monkeypatch.setattr(fuse, "_merged_kernel", off_centre)
    spec, data, out = _gelan_spec(tmp_path, True), _digits(tmp_path), tmp_path / "gelan.onnx"
    code, _, err = run_cli(capsys, "export", spec, "--weights", _weights(tmp_path), "--data", data, "-o", out)
    assert code == 1 and "gelan.onnx: not written" in err and "pred differ(s)" in err
    assert "on 4 validation images from digits" in err
    assert not out.exists()
