"""`npc summary`: per-node shapes, parameters and FLOPs; totals equal the peer's parameter counts."""

import json

import pytest

from helpers import REPO, ZOO_SPECS, compiles, peer_results, run_cli
from npc.cli import main
from npc.runtime.tools.summary import load_target, summarize_target

GOLDEN = REPO / "tests" / "specs" / "golden"
CLASSIFICATION = GOLDEN / "tiny-resnet-classification.yaml"
DETECTION = GOLDEN / "tiny-resnet-fpn-detection.json"
CASES = [path for path in ZOO_SPECS if compiles(path)]


@pytest.mark.parametrize("config", CASES, ids=[p.stem for p in CASES])
def test_totals_equal_the_peer_parameter_counts(config):
    expected = peer_results()[config.stem]
    summary = summarize_target(load_target(config), expected["input"][2:], num_classes=10)
    assert summary.params == expected["params"]
    assert summary.trainable == expected["trainable"]
    # The component rows (and the "other" row, if any) add up to the totals; stage rows to their component.
    top = [row for row in summary.rows if row.depth == 0]
    assert sum(row.params for row in top) == summary.params
    assert sum(row.flops for row in top) == summary.flops
    assert json.loads(json.dumps(summary.output)) == expected["output"]


def test_rows_follow_the_graph_with_stage_shapes_and_flops():
    summary = summarize_target(load_target(DETECTION), (64, 64), num_classes=10)
    nodes = [row.node for row in summary.rows]
    assert nodes == [
        "backbone",
        "backbone.stage0",
        "backbone.stage1",
        "backbone.stage2",
        "backbone.other",
        "neck",
        "head",
    ]
    rows = {row.node: row for row in summary.rows}
    assert rows["backbone.stage0"].output == [1, 8, 16, 16]  # stride 4
    assert rows["backbone.stage2"].output == [1, 32, 4, 4]  # stride 16
    assert rows["backbone"].output == [[1, 16, 8, 8], [1, 32, 4, 4]]  # return_stage_idx [1, 2]
    assert rows["head"].output["cls_logits"] == [[1, 192, 10], [1, 48, 10], [1, 12, 10]]
    stages = [rows[f"backbone.stage{i}"] for i in range(3)] + [rows["backbone.other"]]
    assert sum(r.params for r in stages) == rows["backbone"].params
    assert sum(r.flops for r in stages) == rows["backbone"].flops
    assert all(row.flops > 0 for row in summary.rows)
    assert summary.macs == summary.flops // 2
    assert summary.ran_on == "meta"


def test_flops_match_the_convolution_arithmetic():
    summary = summarize_target(load_target(CLASSIFICATION), (32, 32), num_classes=10)
    head = next(row for row in summary.rows if row.node == "head")
    # fc head: 16 -> 32 -> 10 linear layers, batch 1: 2 * (16*32 + 32*10) FLOPs.
    assert head.flops == 2 * (16 * 32 + 32 * 10)


def test_table_output(capsys):
    code, out, _ = run_cli(capsys, "summary", DETECTION, "--input-size", "64", "64")
    assert code == 0
    for text in ("backbone.stage1", "stem and other layers", "fpn", "total", "1×3×64×64", "cls_logits"):
        assert text in out
    total = load_target(DETECTION)
    assert f"{summarize_target(total, (64, 64), 10).params:,}" in out


def test_json_output_and_num_classes(capsys):
    code, out, _ = run_cli(capsys, "summary", CLASSIFICATION, "--input-size", "32", "32", "--num-classes", "7")
    assert code == 0
    code, out, _ = run_cli(
        capsys, "summary", CLASSIFICATION, "--input-size", "32", "32", "--num-classes", "7", "--format", "json"
    )
    data = json.loads(out)
    assert data["input"] == [1, 3, 32, 32] and data["num_classes"] == 7
    assert data["output"] == {"pred": [1, 7]}
    assert data["macs"] == data["flops"] // 2
    assert sum(r["params"] for r in data["rows"] if r["depth"] == 0) == data["params"]


def test_a_compiled_model_py_without_its_spec(capsys, tmp_path):
    model_py = tmp_path / "model.py"
    assert main(["compile", str(DETECTION), "-o", str(model_py)]) == 0
    capsys.readouterr()
    code, out, _ = run_cli(capsys, "summary", model_py, "--input-size", "64", "64", "--format", "json")
    assert code == 0
    data = json.loads(out)
    from_spec = summarize_target(load_target(DETECTION), (64, 64), 10)
    assert data["params"] == from_spec.params and data["flops"] == from_spec.flops
    assert data["task"] == "detection"
    assert [r["node"] for r in data["rows"]] == [row.node for row in from_spec.rows]


def test_a_model_that_cannot_run_on_meta_runs_on_the_cpu(capsys, tmp_path):
    model_py = tmp_path / "item_model.py"
    model_py.write_text(
        "import torch\nfrom torch import nn\n\n\n"
        "class M(nn.Module):\n"
        "    def __init__(self, num_classes):\n"
        "        super().__init__()\n"
        "        self.depth = int(torch.linspace(0, 3, 4)[-1].item())  # fails on meta\n"
        "        self.backbone = nn.Conv2d(3, 4, 3)\n"
        "        self.head = nn.Linear(4, num_classes)\n\n"
        "    def forward(self, x):\n"
        "        return {'pred': self.head(self.backbone(x).mean((2, 3)))}\n\n\n"
        "def build_model(num_classes):\n    return M(num_classes)\n"
    )
    code, out, _ = run_cli(capsys, "summary", model_py, "--input-size", "8", "8", "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert data["ran_on"] == "cpu" and data["params"] == 3 * 4 * 9 + 4 + 4 * 10 + 10
    assert [r["node"] for r in data["rows"]] == ["backbone", "head"]
    assert data["flops"] == 2 * (4 * 3 * 9 * 6 * 6) + 2 * 4 * 10


def test_errors_are_messages_not_tracebacks(capsys, tmp_path):
    code, _, err = run_cli(capsys, "summary", tmp_path / "missing.yaml")
    assert code == 2 and "missing.yaml" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text(CLASSIFICATION.read_text().replace("block_type: basicblock", "block_type: basicblok"))
    code, _, err = run_cli(capsys, "summary", bad)
    assert code == 1 and "did you mean 'basicblock'" in err
    with pytest.raises(SystemExit) as exit_info:
        main(["summary", str(CLASSIFICATION), "--input-size", "0", "64"])
    assert exit_info.value.code == 2 and "expected a positive integer" in capsys.readouterr().err
    picky = tmp_path / "picky.py"
    picky.write_text(
        "from torch import nn\n\n\n"
        "class M(nn.Module):\n"
        "    def forward(self, x):\n"
        "        if x.shape[-1] % 32:\n"
        "            raise ValueError('width must be a multiple of 32')\n"
        "        return {'pred': x}\n\n\n"
        "def build_model(num_classes):\n    return M()\n"
    )
    code, _, err = run_cli(capsys, "summary", picky, "--input-size", "8", "8")
    assert code == 1 and "forward pass on a 1x3x8x8 input failed: ValueError: width must be" in err
    assert "try another --input-size" in err
