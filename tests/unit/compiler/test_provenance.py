"""Provenance: every state_dict key of a compiled model traces back to the spec node (and line) that made it,
and exported ONNX nodes carry that origin."""

import json
import subprocess
import sys

import pytest

from helpers import EXAMPLES, REPO, import_source
from npc.compiler._provenance import locate, module_path_of_onnx_node
from npc.spec import load_file

ONE_PER_TASK = {
    "classification": REPO / "examples" / "resnet18-classification.yaml",
    "segmentation": REPO / "examples" / "resnet50-segmentation.json",
    "detection": REPO / "examples" / "resnet50-retinanet-detection.yaml",
}


@pytest.mark.parametrize("task", list(ONE_PER_TASK))
def test_every_state_dict_key_locates_to_a_spec_line(task, tmp_path):
    spec, model_py, map_json = ONE_PER_TASK[task], tmp_path / "model.py", tmp_path / "map.json"
    command = [sys.executable, "-m", "npc", "compile", str(spec), "-o", str(model_py), "--provenance", str(map_json)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    provenance = json.loads(map_json.read_text())
    assert provenance["spec"] == str(spec)
    modules = provenance["modules"]
    torch = pytest.importorskip("torch")
    with torch.device("meta"):
        model = import_source(model_py.read_text(), f"prov_{task}", tmp_path).build_model(num_classes=4)
    source = load_file(spec)
    for key in model.state_dict():
        record = locate(key, modules)
        assert record is not None, key
        assert record["pointer"].startswith("/model/architecture/"), key
        assert record["line"] == source.position(record["pointer"])[0], key  # where that node is written
    stage = locate("backbone.stages.1.0.conv1.block.conv.weight", modules)
    assert stage["pointer"] == "/model/architecture/backbone/stage_params/1"


def test_onnx_node_names_map_to_module_paths():
    name = "/model/backbone/stages.0/stages.0.0/conv1/block/conv/Conv"
    assert module_path_of_onnx_node(name) == "backbone.stages.0.0.conv1.block.conv"
    assert module_path_of_onnx_node("/model/head/classifier/classifier.1/Gemm") == "head.classifier.1"
    assert module_path_of_onnx_node("Identity_3") == ""


def test_examples_are_covered():
    assert set(ONE_PER_TASK.values()) <= set(EXAMPLES)
