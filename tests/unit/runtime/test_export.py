"""`npc export` (ONNX + onnxruntime, torch.export, torch.fx; verified, atomic) and BatchNorm folding."""

import json
from pathlib import Path

import pytest
import torch
from torch import nn

import npc.compiler
from helpers import REPO, compile_file, run_cli, write_spec
from npc.runtime.checkpoint import save_weights
from npc.runtime.tools import export as _export
from npc.runtime.tools.export import ExportOptions, export_path, flatten_outputs, infer_num_classes
from npc.runtime.tools.fuse import fuse_bn_
from npc.runtime.tools.summary import build_model, load_target

GOLDEN = REPO / "tests" / "specs" / "golden"
SPECS = {
    "classification": GOLDEN / "tiny-resnet-classification.yaml",
    "segmentation": GOLDEN / "tiny-resnet-segmentation.yaml",
    "detection": GOLDEN / "tiny-resnet-fpn-detection.json",
}
SIZE = (64, 64)
TOLERANCE = 1e-4


def _randomise_norms(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BatchNorm statistics and affine terms, as trained weights have (fresh ones fold to identity)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                n = module.num_features
                module.running_mean.copy_(torch.randn(n, generator=generator) * 0.5)
                module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
                module.weight.copy_(torch.randn(n, generator=generator) * 0.5 + 1)
                module.bias.copy_(torch.randn(n, generator=generator) * 0.2)
    return model.eval()


def _trained_like(task: str, tmp_path, num_classes: int = 5, metadata: dict | None = None):
    """(spec, weights file, the eager model those weights give)."""
    target = load_target(SPECS[task])
    torch.manual_seed(0)
    model = _randomise_norms(build_model(target, num_classes))
    weights = tmp_path / f"{task}.safetensors"
    save_weights(weights, model.state_dict(), metadata or {})
    return SPECS[task], weights, model


def _eager(model, x):
    with torch.no_grad():
        return flatten_outputs(model.eval()(x))


# --- ONNX -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", list(SPECS))
def test_onnx_export_agrees_with_onnxruntime(task, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    spec, weights, model = _trained_like(task, tmp_path)
    out = tmp_path / f"{task}.onnx"
    report = export_path(spec, out, ExportOptions(format="onnx", input_size=SIZE), weights=weights)
    assert report.max_abs_diff <= TOLERANCE and report.num_classes == 5  # the class count read off the shapes
    assert out.is_file() and sorted(p.name for p in tmp_path.iterdir()) == sorted([out.name, weights.name])
    print(f"{task}: onnx max abs diff {report.max_abs_diff:.3g}")

    # Independently of the tool's own check: batch 3 (dynamic batch), named outputs, the eager values.
    x = torch.randn(3, 3, *SIZE, generator=torch.Generator().manual_seed(7))
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    got = session.run(None, {"input": x.numpy()})
    expected = _eager(model, x)
    assert names == [name for name, _ in expected]
    for (name, want), have in zip(expected, got):
        torch.testing.assert_close(torch.from_numpy(have), want, atol=TOLERANCE, rtol=TOLERANCE, msg=name)
    meta = {p.key: p.value for p in __import__("onnx").load(str(out)).metadata_props}
    assert json.loads(meta["npc"])["num_classes"] == 5


def test_detection_outputs_are_flattened_by_name(tmp_path):
    pytest.importorskip("onnxruntime")
    spec, weights, _ = _trained_like("detection", tmp_path)
    report = export_path(spec, tmp_path / "det.onnx", ExportOptions(input_size=SIZE), weights=weights)
    assert list(report.outputs) == [
        "anchors",
        "cls_logits.0",
        "cls_logits.1",
        "cls_logits.2",
        "bbox_regression.0",
        "bbox_regression.1",
        "bbox_regression.2",
    ]
    assert report.outputs["anchors"] == [252, 4] and report.outputs["cls_logits.0"] == [1, 192, 5]


def test_fixed_batch_onnx_has_a_fixed_input_shape(tmp_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    spec, weights, _ = _trained_like("classification", tmp_path)
    out = tmp_path / "fixed.onnx"
    export_path(spec, out, ExportOptions(input_size=SIZE, dynamic_batch=False, opset=13), weights=weights)
    proto = onnx.load(str(out))
    dims = [d.dim_value or d.dim_param for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 64, 64]
    assert {o.domain: o.version for o in proto.opset_import}[""] == 13


# The last stage of these backbones works on tokens and turns them back into a map for the neck.
MIT_STAGE = {"num_blocks": 1, "num_attention_heads": 1, "attention_chananels": 8}
TOKEN_BACKBONES = {
    "efficientformer": {
        "name": "efficientformer",
        "params": {"num_attention_heads": 2, "attention_channels": 8, "attention_value_expansion_ratio": 2},
        "stage_params": [{"num_blocks": 1, "channels": c} for c in (4, 8, 8, 16)],
    },
    "mixtransformer": {
        "name": "mixtransformer",
        "stage_params": [
            {**MIT_STAGE, "embedding_patch_sizes": 7, "embedding_strides": 4, "sequence_reduction_ratio": 2},
            {**MIT_STAGE, "embedding_patch_sizes": 3, "embedding_strides": 2, "sequence_reduction_ratio": 1},
        ],
    },
}


@pytest.mark.parametrize("backbone", list(TOKEN_BACKBONES))
def test_a_token_stage_under_a_reshaping_head_keeps_the_batch_free(backbone, tmp_path):
    """Exported at batch 2, RetinaNet's reshape(B, -1, K) of the level from the token stage kept B = 2 in the ONNX
    file while the map came back through unflatten (zoo efficientformer-l1-detection's refusal); verified at 1."""
    pytest.importorskip("onnxruntime")
    levels = len(TOKEN_BACKBONES[backbone]["stage_params"])
    architecture = {
        "backbone": TOKEN_BACKBONES[backbone],
        "neck": {"name": "fpn", "params": {"num_outs": levels}},
        "head": {
            "name": "anchor_decoupled_head",
            "params": {"anchor_sizes": [[32 * 2**i] for i in range(levels)], "aspect_ratios": [1.0], "num_layers": 1},
        },
    }
    losses = [{"criterion": "retinanet_loss"}]
    spec = {"model": {"task": "detection", "name": "tiny_retina", "architecture": architecture, "losses": losses}}
    report = export_path(write_spec(spec, tmp_path, backbone), tmp_path / "m.onnx", ExportOptions(input_size=SIZE))
    assert report.dynamic_batch and report.input[0] == 1
    assert report.outputs[f"cls_logits.{levels - 1}"][0] == 1


# --- torch.export and torch.fx ------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", list(SPECS))
def test_exported_program_round_trip(task, tmp_path):
    spec, weights, model = _trained_like(task, tmp_path)
    out = tmp_path / f"{task}.pt2"
    report = export_path(spec, out, ExportOptions(format="exported-program", input_size=SIZE), weights=weights)
    assert report.max_abs_diff <= TOLERANCE and report.verified_with == "torch.export.load"
    loaded = torch.export.load(out).module()
    x = torch.randn(2, 3, *SIZE)
    with torch.no_grad():
        got = loaded(x)
    assert isinstance(got, dict)  # the same dict the eager model returns
    for (name, want), (_, have) in zip(_eager(model, x), flatten_outputs(got)):
        torch.testing.assert_close(have, want, atol=TOLERANCE, rtol=TOLERANCE, msg=name)


@pytest.mark.parametrize("task", list(SPECS))
def test_fx_graph_module_round_trip(task, tmp_path):
    spec, weights, model = _trained_like(task, tmp_path)
    out = tmp_path / f"{task}.pt"
    report = export_path(spec, out, ExportOptions(format="fx", input_size=SIZE), weights=weights)
    assert report.max_abs_diff <= TOLERANCE
    loaded = torch.load(out, weights_only=False)
    assert isinstance(loaded, torch.fx.GraphModule)
    x = torch.randn(2, 3, *SIZE)
    with torch.no_grad():
        got = flatten_outputs(loaded(x))
    for (name, want), (_, have) in zip(_eager(model, x), got):
        torch.testing.assert_close(have, want, atol=TOLERANCE, rtol=TOLERANCE, msg=name)


# --- verification, atomic writes, errors -----------------------------------------------------------------------------


def test_a_failed_verification_leaves_no_file(tmp_path, monkeypatch):
    spec, weights, _ = _trained_like("classification", tmp_path)
    out = tmp_path / "model.pt2"
    out.write_text("previous")

    def off_by_one(*args):
        run, how = real(*args)
        return (lambda x: [(name, value + 1) for name, value in run(x)]), how

    real = _export._exported_program
    monkeypatch.setattr(_export, "_exported_program", off_by_one)
    with pytest.raises(_export.VerificationError, match=r"model.pt2: not written: .*pred differ"):
        export_path(spec, out, ExportOptions(format="exported-program", input_size=SIZE), weights=weights)
    assert out.read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([out.name, weights.name])  # no temp file left


# --- what the export is verified on -------------------------------------------------------------------------------


def _digits(tmp_path, side: int) -> Path:
    """A data file naming the built-in digits (no files to read) prepared at ``side``."""
    data = tmp_path / f"digits{side}.yaml"
    data.write_text(f"data: {{format: digits, image_size: {side}}}\n")
    return data


def _run_folder(tmp_path, data: str) -> Path:
    """What npc export reads of an npc train run folder: model.py, best.safetensors and resolved.yaml's data."""
    spec = SPECS["classification"]
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.py").write_text(compile_file(spec))
    (run / "resolved.yaml").write_text(spec.read_text() + data)
    model = _randomise_norms(build_model(load_target(run), 10))
    save_weights(run / "best.safetensors", model.state_dict(), {"num_classes": 10})
    return run


def test_with_data_the_export_is_verified_on_its_first_validation_images(capsys, tmp_path):
    pytest.importorskip("onnxruntime")
    spec, weights, _ = _trained_like("classification", tmp_path)
    data = _digits(tmp_path, 48)
    report = export_path(spec, tmp_path / "m.onnx", ExportOptions(), weights=weights, data=data)
    assert report.verified_images == 4 and report.verified_on.startswith("4 validation images from digits")
    assert report.input == [1, 3, 48, 48]  # without --input-size: the size the images come at
    assert report.max_abs_diff <= TOLERANCE
    out = tmp_path / "cli.onnx"
    code, stdout, err = run_cli(capsys, "export", spec, "--weights", weights, "--data", data, "-o", out)
    assert code == 0 and "on 4 validation images from digits" in stdout, err
    code, _, err = run_cli(
        capsys, "export", spec, "--weights", weights, "--data", data, "-o", out, "--input-size", 8, 8
    )
    assert code == 2 and "come at 48x48; give --input-size 48 48" in err


def test_a_run_folder_is_verified_on_its_own_data_or_says_why_not(capsys, tmp_path):
    pytest.importorskip("onnxruntime")
    run = _run_folder(tmp_path, "data: {format: digits, image_size: 32}\n")
    out = tmp_path / "m.onnx"
    code, stdout, err = run_cli(capsys, "export", run, "-o", out)
    assert code == 0 and "on 4 validation images from digits" in stdout and "1×3×32×32" in stdout, err
    code, stdout, err = run_cli(capsys, "export", run, "-o", out, "--input-size", 64, 64)
    assert code == 0 and "on a 1×3×64×64 random input" in stdout
    assert "the run's images come at 32x32, not at 64x64" in err
    (run / "resolved.yaml").write_text(
        SPECS["classification"].read_text() + f"data: {{format: image_folder, path: {{root: {tmp_path / 'gone'}}}}}\n"
    )
    code, stdout, err = run_cli(capsys, "export", run, "-o", out)
    assert code == 0 and "random input" in stdout and "the run's data does not read" in err


def test_verification_catches_a_wrong_batch_dimension():
    expected = [("pred", torch.zeros(1, 10))]
    with pytest.raises(_export.VerificationError, match="shape"):
        _export._compare(expected, [("pred", torch.zeros(2, 10))], 1e-4, 1e-4)
    max_abs, _, bad = _export._compare(expected, [("pred", torch.full((1, 10), 1e-3))], 1e-4, 1e-4)
    assert bad == ["pred"] and max_abs == pytest.approx(1e-3)


def test_cli_export_prints_the_verification(capsys, tmp_path):
    pytest.importorskip("onnxruntime")
    spec, weights, _ = _trained_like("classification", tmp_path, metadata={"num_classes": 5})
    out = tmp_path / "model.onnx"
    code, stdout, _ = run_cli(capsys, "export", spec, "--weights", weights, "-o", out, "--input-size", 64, 64)
    assert code == 0 and out.is_file()
    assert "wrote" in stdout and "verified with onnxruntime" in stdout and "max abs diff" in stdout
    assert "pred: 1×5" in stdout
    code, stdout, _ = run_cli(
        capsys,
        "export",
        spec,
        "--weights",
        weights,
        "-o",
        tmp_path / "m.pt2",
        "--input-size",
        64,
        64,
        "--format",
        "json",
    )
    report = json.loads(stdout)
    assert code == 0 and report["format"] == "exported-program" and report["max_abs_diff"] <= TOLERANCE


def test_cli_errors(capsys, tmp_path):
    spec, weights, _ = _trained_like("classification", tmp_path)
    code, _, err = run_cli(
        capsys, "export", spec, "--weights", tmp_path / "nope.safetensors", "-o", tmp_path / "x.onnx"
    )
    assert code == 2 and "weights file not found" in err
    code, _, err = run_cli(capsys, "export", spec, "--weights", weights, "-o", tmp_path / "x.pt", "--opset", 13)
    assert code == 2 and "--opset applies to --to onnx only" in err
    other = SPECS["segmentation"]
    code, _, err = run_cli(capsys, "export", other, "--weights", weights, "-o", tmp_path / "x.pt2", "--num-classes", 5)
    assert code == 1 and "x.pt2" not in {p.name for p in tmp_path.iterdir()}
    code, _, err = run_cli(capsys, "export", spec, "--weights", weights, "-o", tmp_path / "x.pt2", "--num-classes", 3)
    assert code == 1 and "another shape" in err


def test_missing_onnx_packages_are_named(tmp_path, monkeypatch, capsys):
    spec, weights, _ = _trained_like("classification", tmp_path)
    monkeypatch.setitem(__import__("sys").modules, "onnxruntime", None)
    code, _, err = run_cli(
        capsys, "export", spec, "--weights", weights, "-o", tmp_path / "x.onnx", "--input-size", 32, 32
    )
    assert code == 2 and "onnxruntime" in err and "pip install" in err
    assert not (tmp_path / "x.onnx").exists()


def test_dynamo_exporter_without_onnxscript_says_so(tmp_path, monkeypatch, capsys):
    pytest.importorskip("onnxruntime")
    spec, weights, _ = _trained_like("classification", tmp_path)
    monkeypatch.setitem(__import__("sys").modules, "onnxscript", None)
    argv = ["export", spec, "--weights", weights, "-o", tmp_path / "x.onnx", "--exporter", "dynamo"]
    code, _, err = run_cli(capsys, *argv)
    assert code == 2 and "needs the onnxscript package" in err


def test_num_classes_from_the_weight_shapes(tmp_path):
    target = load_target(SPECS["detection"])
    for n in (1, 7, 80):
        state = build_model(target, n).state_dict()
        assert infer_num_classes(target, state) == n


# --- fusing BatchNorm -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", list(SPECS))
def test_fused_equals_unfused(task):
    target = load_target(SPECS[task])
    torch.manual_seed(0)
    model = _randomise_norms(build_model(target, 4))
    x = torch.randn(2, 3, *SIZE)
    before = _eager(model, x)
    folded = fuse_bn_(model)
    assert folded > 0
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    for (name, want), (_, have) in zip(before, _eager(model, x)):
        torch.testing.assert_close(have, want, atol=1e-5, rtol=1e-5, msg=name)


def test_fx_finds_pairs_outside_sequentials_and_leaves_shared_outputs_alone():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv_a, self.norm_a = nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4)
            self.conv_b, self.norm_b = nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4)  # conv_b's output is read twice

        def forward(self, x):
            x = torch.relu(self.norm_a(self.conv_a(x)))
            y = self.conv_b(x)
            return self.norm_b(y) + y

    model = _randomise_norms(Net())
    x = torch.randn(1, 3, 8, 8)
    want = model(x)
    assert fuse_bn_(model) == 1
    assert isinstance(model.norm_a, nn.Identity) and isinstance(model.norm_b, nn.BatchNorm2d)
    torch.testing.assert_close(model(x), want, atol=1e-5, rtol=1e-5)


def test_the_emittable_fuse_source_folds_convlayers():
    """The ``fuse()`` that ``npc compile --fuse`` emits (the template's own text, no Jinja in it)."""
    template = Path(npc.compiler.__file__).parent / "templates" / "block_fuse.py.jinja"
    namespace = {"torch": torch, "nn": nn}
    exec(template.read_text(encoding="utf-8"), namespace)
    target = load_target(SPECS["segmentation"])
    torch.manual_seed(0)
    model = _randomise_norms(build_model(target, 3))
    x = torch.randn(1, 3, *SIZE)
    want = _eager(model, x)
    namespace["fuse_bn_"](model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    for (name, expected), (_, got) in zip(want, _eager(model, x)):
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5, msg=name)


def test_export_with_fuse_matches_the_unfused_eager_model(tmp_path):
    pytest.importorskip("onnxruntime")
    spec, weights, _ = _trained_like("detection", tmp_path)
    options = ExportOptions(format="onnx", input_size=SIZE, fuse=True)
    report = export_path(spec, tmp_path / "fused.onnx", options, weights=weights)
    assert report.fused > 0 and report.max_abs_diff <= TOLERANCE


def test_compile_fuse_emits_a_fuse_method(tmp_path):
    import inspect

    from helpers import import_source
    from npc.compiler import compile_spec
    from npc.spec import load_spec

    if "fuse" not in inspect.signature(compile_spec).parameters:
        pytest.skip("npc compile --fuse is not wired into the compiler yet")
    plain = compile_spec(load_spec(SPECS["detection"])).source
    source = compile_spec(load_spec(SPECS["detection"]), fuse=True).source
    assert "def fuse(self)" in source and "def fuse_bn_(" in source and "def fuse" not in plain
    module = import_source(source, "fused_tiny_detection", tmp_path)
    torch.manual_seed(0)
    model = _randomise_norms(module.build_model(num_classes=4))
    x = torch.randn(2, 3, *SIZE)
    want = _eager(model, x)
    assert model.fuse() is model
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    for (name, expected), (_, got) in zip(want, _eager(model, x)):
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5, msg=name)
    torch.fx.symbolic_trace(model)  # still traceable, so still exportable


def test_onnx_nodes_carry_the_spec_pointer_and_line_that_made_them(tmp_path):
    onnx = pytest.importorskip("onnx")
    spec, weights, _ = _trained_like("classification", tmp_path)
    out = tmp_path / "model.onnx"
    export_path(spec, out, ExportOptions(format="onnx", input_size=SIZE), weights=weights)
    proto = onnx.load(out)
    stamped = {node.name: node.doc_string for node in proto.graph.node if node.doc_string}
    convs = [name for name in stamped if name.endswith("/Conv")]
    assert convs and all(stamped[name].startswith(f"npc: {spec}:") for name in convs)
    stage = next(name for name in convs if "/stages.1/" in name)
    assert "/model/architecture/backbone/stage_params/1 (resnet)" in stamped[stage]
    metadata = json.loads({p.key: p.value for p in proto.metadata_props}["npc"])
    assert metadata["provenance"]["head"]["pointer"] == "/model/architecture/head"
