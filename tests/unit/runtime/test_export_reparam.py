"""Re-parameterisation before export: GELAN/YOLOv9 RepConv blocks (3x3 + 1x1 + identity BN) merge into one 3x3 conv
that computes what the three branches did, and npc export's ONNX files carry the merged blocks."""

import pytest
import torch
from torch import nn

from npc import zoo
from npc.runtime.tools import ExportOptions, export_target, merge_repconv_
from npc.runtime.tools.summary import build_model, load_target


def _gelan(tmp_path, use_identity: bool):
    """gelan_tiny with depth-1 RepNCSPELAN stages, with or without the identity branch."""
    text = zoo.path_of("gelan_tiny-classification").read_text()
    text = text.replace("false, 3]", f"{str(use_identity).lower()}, 1]")
    spec = tmp_path / f"gelan-{use_identity}.yaml"
    spec.write_text(text)
    return load_target(spec)


def _trained_like(model: nn.Module) -> nn.Module:
    """Non-trivial BatchNorm statistics and affine terms (fresh ones are the identity and would hide a mistake)."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in model.modules():
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
    assert before.abs().max() > 1e-2, "the check needs outputs that are not all zero"
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
