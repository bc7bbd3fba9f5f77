"""An exported ONNX file runs on its own: `npc predict MODEL.onnx` / `npc evaluate MODEL.onnx` through onnxruntime
give what the torch run gives; the file's metadata carries task, classes, size, preprocessing and the spec."""

import hashlib
import json

import pytest
import torch

from helpers import TINY_RESNET_BACKBONE, run_cli, shape_png

pytest.importorskip("onnxruntime")

from npc.runtime.tools.export import flatten_outputs, inference_outputs, output_skeleton  # noqa: E402
from npc.runtime.tools.onnx_model import _rebuild, read_npc_metadata  # noqa: E402

HEADS = {
    "classification": "    head:\n      name: fc\n      params: {num_layers: 1}\n",
    "segmentation": "    head:\n      name: all_mlp_decoder\n      params: {intermediate_channels: 8}\n",
    "detection": (
        "    neck:\n      name: fpn\n      params: {num_outs: 2}\n    head:\n      name: anchor_free_decoupled_head\n"
    ),
}
DATA = {
    "classification": "data: {format: digits, image_size: 16}\n",
    "segmentation": "data: {format: shapes, image_size: 32, num_train: 16, num_valid: 8}\n",
    "detection": "data: {format: shapes, image_size: 32, num_train: 16, num_valid: 8}\n",
}
TRAINING = "training:\n  epochs: 1\n  batch_size: 8\n  optimizer: {name: adamw, lr: 0.003}\n"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """task -> (run folder, its fp32 ONNX export): one tiny 1-epoch run per task, trained once for the module."""
    from npc.cli import main

    folder = tmp_path_factory.mktemp("onnx-runs")
    out = {}
    for task, head in HEADS.items():
        spec = folder / f"{task}.yaml"
        header = f"model:\n  task: {task}\n  name: tiny_{task}\n  architecture:\n"
        spec.write_text(header + TINY_RESNET_BACKBONE + head + TRAINING)
        spec.write_text(spec.read_text() + DATA[task])
        run = folder / f"run-{task}"
        assert main(["train", str(spec), "--out", str(run), "--no-tensorboard"]) == 0
        onnx_file = folder / f"{task}.onnx"
        assert main(["export", str(run), "-o", str(onnx_file)]) == 0
        out[task] = run, onnx_file
    return out


@pytest.mark.parametrize("task", list(HEADS))
def test_the_metadata_carries_what_predict_needs(runs, task):
    run, onnx_file = runs[task]
    record = read_npc_metadata(onnx_file)
    assert record["task"] == task
    assert record["spec_sha256"] == hashlib.sha256((run / "resolved.yaml").read_bytes()).hexdigest()
    assert record["spec_text"] == (run / "resolved.yaml").read_text()
    assert record["preprocess"]["image_size"] == record["input_size"][0] == (16 if task == "classification" else 32)
    assert len(record["preprocess"]["mean"]) == 3 and len(record["preprocess"]["std"]) == 3
    assert len(record["class_names"]) == record["num_classes"]


@pytest.mark.parametrize("task", list(HEADS))
def test_onnx_evaluate_gives_the_torch_metrics(capsys, runs, task):
    run, onnx_file = runs[task]
    code, out, err = run_cli(capsys, "evaluate", run, "--format", "json")
    assert code == 0, err
    torch_result = json.loads(out)
    code, out, err = run_cli(capsys, "evaluate", onnx_file, "--format", "json")
    assert code == 0, err
    onnx_result = json.loads(out)
    assert onnx_result["samples"] == torch_result["samples"] and onnx_result["loss"] is None
    for metric in torch_result["metrics"]:
        assert onnx_result[metric] == pytest.approx(torch_result[metric], abs=1e-3), metric
    code, out, _ = run_cli(capsys, "evaluate", onnx_file)
    assert code == 0 and "loss" not in out


@pytest.mark.parametrize("task", list(HEADS))
def test_onnx_predict_gives_the_torch_predictions(capsys, runs, tmp_path, task):
    run, onnx_file = runs[task]
    image = shape_png(tmp_path / "shape.png")
    args = [image, "--format", "json", "--min-score", "0", "--top-k", "3"]
    code, out, err = run_cli(capsys, "predict", run, *args)
    assert code == 0, err
    (want,) = json.loads(out)
    masks = ["--masks", tmp_path / "masks"] if task == "segmentation" else []
    code, out, err = run_cli(capsys, "predict", onnx_file, *args, *masks)
    assert code == 0, err
    (got,) = json.loads(out)
    if task == "classification":
        assert [r["label"] for r in got["top_k"]] == [r["label"] for r in want["top_k"]]
        assert [r["score"] for r in got["top_k"]] == pytest.approx([r["score"] for r in want["top_k"]], abs=1e-4)
    elif task == "segmentation":
        assert got["classes"] == pytest.approx(want["classes"], abs=1e-3)
        assert (tmp_path / "masks" / "shape.png").is_file()
    else:
        top = sorted(want["detections"], key=lambda d: -d["score"])[:5]
        found = sorted(got["detections"], key=lambda d: -d["score"])[:5]
        assert [d["label"] for d in found] == [d["label"] for d in top]
        for a, b in zip(found, top):
            assert a["box"] == pytest.approx(b["box"], abs=0.5) and a["score"] == pytest.approx(b["score"], abs=1e-3)


def test_an_onnx_file_npc_did_not_write_is_refused(capsys, tmp_path):
    plain = tmp_path / "plain.onnx"
    torch.onnx.export(torch.nn.Conv2d(3, 2, 1), (torch.zeros(1, 3, 8, 8),), str(plain), dynamo=False)
    image = shape_png(tmp_path / "shape.png")
    code, _, err = run_cli(capsys, "predict", plain, image)
    assert code == 2 and "not an ONNX file written by npc export" in err and "Traceback" not in err
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a protobuf")
    code, _, err = run_cli(capsys, "evaluate", broken)
    assert code == 2 and "broken.onnx: not a readable ONNX model" in err


def test_torch_options_with_an_onnx_file_are_usage_errors(capsys, runs, tmp_path):
    _, onnx_file = runs["classification"]
    code, _, err = run_cli(capsys, "predict", onnx_file, shape_png(tmp_path / "s.png"), "--weights", "w.safetensors")
    assert code == 2 and "--weights: not for an ONNX file" in err


# --- outputs an inference file leaves out --------------------------------------------------------------------------


def test_none_and_training_only_outputs_are_left_out_and_come_back_as_none():
    tensor = torch.zeros(1, 2)
    output = {"pred": tensor, "aux_pred": [tensor], "dn_meta": None, "levels": [tensor, tensor]}
    kept = inference_outputs(output)
    assert list(kept) == ["pred", "levels"] and [n for n, _ in flatten_outputs(output)] == [
        "pred",
        "aux_pred.0",
        "levels.0",
        "levels.1",
    ]
    skeleton = output_skeleton({**kept, "extra": None})
    assert skeleton == {"pred": "pred", "levels": ["levels.0", "levels.1"], "extra": None}
    rebuilt = _rebuild({**skeleton, "aux_pred": ["aux_pred.0"]}, dict(flatten_outputs(kept)))
    assert rebuilt["aux_pred"] == [None] and rebuilt["extra"] is None and rebuilt["levels"][1] is tensor
