"""Graph pictures: annotated DOT/Mermaid, parameter counts when torch is there, SVG/PNG through Graphviz `dot`."""

import shutil
import subprocess
import sys

import pytest

from helpers import REPO
from npc.cli.exits import exit_code_for
from npc.compiler import _pictures, compile_spec
from npc.compiler._pictures import PictureError, annotated_dot, annotated_mermaid, write_graph
from npc.spec import load_spec

GOLDEN = REPO / "tests" / "specs" / "golden"
DETECTION = GOLDEN / "tiny-resnet-fpn-detection.json"
CLASSIFICATION = GOLDEN / "tiny-resnet-classification.yaml"
HAS_DOT = shutil.which("dot") is not None


def _graph(path=DETECTION):
    return compile_spec(load_spec(path)).graph


def parameter_counts(graph, num_classes=10):
    """The runtime's counts (the labels' numbers); the compiler itself never imports torch."""
    from npc.runtime.tools import parameter_counts as count

    return count(graph, num_classes=num_classes)


def test_the_module_does_not_import_torch():
    code = "import sys; import npc.compiler._pictures; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_dot_labels_nodes_and_edges():
    graph = _graph()
    dot = annotated_dot(graph, counts=parameter_counts(graph))
    assert dot.startswith('digraph "tiny_retina" {')
    assert "subgraph cluster_backbone {" in dot  # the stages drawn inside their backbone
    assert 'label="stage 0\\nchannels=8, num_blocks=1\\nout 8ch /4\\n5,744 params"' in dot
    assert "block_type=basicblock, return_stage_idx=[1, 2]" in dot
    assert "neck: fpn\\nnum_outs=3, add_extra_convs=true\\n" in dot
    assert 'neck -> head [label="3 maps: 32ch /8, /16, /32"]' in dot  # every feature the edge passes
    assert 'backbone_stage2 -> neck [label="32ch /16"]' in dot
    assert annotated_dot(graph, counts=parameter_counts(graph)) == dot  # deterministic


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


def test_without_counts_labels_omit_them():
    graph = _graph()
    dot = annotated_dot(graph)
    mermaid = annotated_mermaid(graph)
    assert "params" not in dot and "parameters" not in dot and "params" not in mermaid
    assert "channels=8, num_blocks=1" in dot and "neck: fpn" in dot


def test_npc_graph_without_torch_draws_without_counts(tmp_path):
    """A process whose `import torch` fails stands in for an install without the runtime extra."""
    (tmp_path / "torch.py").write_text("raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n")
    out = tmp_path / "graph.dot"
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    command = [sys.executable, "-m", "npc", "graph", str(DETECTION), "-o", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "params" not in out.read_text() and "neck: fpn" in out.read_text()


def test_mermaid_has_a_subgraph_per_backbone():
    graph = _graph()
    text = annotated_mermaid(graph, counts=parameter_counts(graph))
    assert text.startswith("---\ntitle: ") and "\nflowchart LR\n" in text
    assert 'subgraph backbone_box["backbone: resnet<br>' in text
    assert '  neck -->|"3 maps: 32ch /8, /16, /32"| head' in text


@pytest.mark.parametrize("suffix", [".dot", ".gv", ".mmd", ".json"])
def test_text_files(tmp_path, suffix):
    out = tmp_path / f"graph{suffix}"
    write_graph(_graph(CLASSIFICATION), out)
    text = out.read_text(encoding="utf-8")
    assert {".dot": "digraph", ".gv": "digraph", ".mmd": "flowchart LR", ".json": '"nodes"'}[suffix] in text
    assert [p.name for p in tmp_path.iterdir()] == [out.name]


@pytest.mark.skipif(not HAS_DOT, reason="Graphviz `dot` is not installed")
def test_svg_and_png_through_graphviz(tmp_path):
    pytest.importorskip("torch")
    svg, png = tmp_path / "g.svg", tmp_path / "g.png"
    write_graph(_graph(), svg, counts=parameter_counts(_graph()))
    write_graph(_graph(), png, counts=parameter_counts(_graph()))
    text = svg.read_text(encoding="utf-8")
    assert "<svg" in text and "stage 0" in text and "5,744 params" in text and "3 maps: 32ch /8" in text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_graphviz_is_a_clear_usage_error(tmp_path, monkeypatch):
    monkeypatch.setattr(_pictures.shutil, "which", lambda name: None)
    out = tmp_path / "g.svg"
    with pytest.raises(PictureError) as error:
        write_graph(_graph(), out, counts=parameter_counts(_graph()))
    assert exit_code_for(error.value) == 2
    assert "graphviz" in error.value.message.lower() and ".dot" in error.value.message and ".mmd" in error.value.message
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_unknown_suffix(tmp_path):
    with pytest.raises(PictureError, match=r"cannot tell the picture format from '.jpg'"):
        write_graph(_graph(), tmp_path / "g.jpg")
