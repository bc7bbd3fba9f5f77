"""Graph pictures: annotated DOT/Mermaid, parameter counts when torch is there, SVG/PNG through Graphviz `dot`."""

import shutil
import subprocess
import sys

import pytest

from helpers import REPO
from npc.compiler import _pictures, compile_spec
from npc.compiler._pictures import PictureError, annotated_dot, annotated_mermaid, parameter_counts, write_graph
from npc.spec import load_spec

GOLDEN = REPO / "tests" / "specs" / "golden"
DETECTION = GOLDEN / "tiny-resnet-fpn-detection.json"
CLASSIFICATION = GOLDEN / "tiny-resnet-classification.yaml"
HAS_DOT = shutil.which("dot") is not None


def _graph(path=DETECTION):
    return compile_spec(load_spec(path)).graph


def test_the_module_does_not_import_torch():
    code = "import sys; import npc.compiler._pictures; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_dot_labels_nodes_and_edges():
    pytest.importorskip("torch")
    dot = annotated_dot(_graph())
    assert dot.startswith('digraph "tiny_retina" {')
    assert "subgraph cluster_backbone {" in dot  # the stages drawn inside their backbone
    assert 'label="stage 0\\nchannels=8, num_blocks=1\\nout 8ch /4\\n5,744 params"' in dot
    assert "block_type=basicblock, return_stage_idx=[1, 2]" in dot
    assert "neck: fpn\\nnum_outs=3, add_extra_convs=true\\n" in dot
    assert 'neck -> head [label="3 maps: 32ch /8, /16, /32"]' in dot  # every feature the edge passes
    assert 'backbone_stage2 -> neck [label="32ch /16"]' in dot
    assert annotated_dot(_graph()) == dot  # deterministic


def test_counts_add_up_to_the_model():
    torch = pytest.importorskip("torch")
    graph = _graph()
    counts = parameter_counts(graph)
    assert counts["total"] == counts["backbone"] + counts["neck"] + counts["head"]
    stages = sum(counts[f"backbone.stage{i}"] for i in range(3))
    assert stages + counts["backbone.other"] == counts["backbone"]
    namespace = {}
    exec(compile_spec(load_spec(DETECTION)).source, namespace)
    with torch.device("meta"):
        model = namespace["build_model"](num_classes=10)
    assert counts["total"] == sum(p.numel() for p in model.parameters())
    assert parameter_counts(graph, num_classes=3)["head"] < counts["head"]


def test_without_torch_labels_omit_the_counts(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    graph = _graph()
    assert parameter_counts(graph) is None
    dot = annotated_dot(graph)
    mermaid = annotated_mermaid(graph)
    assert "params" not in dot and "parameters" not in dot and "params" not in mermaid
    assert "channels=8, num_blocks=1" in dot


def test_with_params_false_skips_building():
    dot = annotated_dot(_graph(), with_params=False)
    assert "params" not in dot and "neck: fpn" in dot


def test_mermaid_has_a_subgraph_per_backbone():
    pytest.importorskip("torch")
    text = annotated_mermaid(_graph())
    assert text.startswith("---\ntitle: ") and "\nflowchart LR\n" in text
    assert 'subgraph backbone_box["backbone: resnet<br>' in text
    assert '  neck -->|"3 maps: 32ch /8, /16, /32"| head' in text


@pytest.mark.parametrize("suffix", [".dot", ".gv", ".mmd", ".json"])
def test_text_files(tmp_path, suffix):
    out = tmp_path / f"graph{suffix}"
    write_graph(_graph(CLASSIFICATION), out, with_params=False)
    text = out.read_text(encoding="utf-8")
    assert {".dot": "digraph", ".gv": "digraph", ".mmd": "flowchart LR", ".json": '"nodes"'}[suffix] in text
    assert [p.name for p in tmp_path.iterdir()] == [out.name]


@pytest.mark.skipif(not HAS_DOT, reason="Graphviz `dot` is not installed")
def test_svg_and_png_through_graphviz(tmp_path):
    pytest.importorskip("torch")
    svg, png = tmp_path / "g.svg", tmp_path / "g.png"
    write_graph(_graph(), svg, with_params=True)
    write_graph(_graph(), png, with_params=True)
    text = svg.read_text(encoding="utf-8")
    assert "<svg" in text and "stage 0" in text and "5,744 params" in text and "3 maps: 32ch /8" in text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_graphviz_is_a_clear_usage_error(tmp_path, monkeypatch):
    monkeypatch.setattr(_pictures.shutil, "which", lambda name: None)
    out = tmp_path / "g.svg"
    with pytest.raises(PictureError) as error:
        write_graph(_graph(), out, with_params=True)
    assert error.value.exit_code == 2
    assert "graphviz" in error.value.message.lower() and ".dot" in error.value.message and ".mmd" in error.value.message
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_unknown_suffix(tmp_path):
    with pytest.raises(PictureError, match=r"cannot tell the picture format from '.jpg'"):
        write_graph(_graph(), tmp_path / "g.jpg", with_params=False)
