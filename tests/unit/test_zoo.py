"""The zoo ships with npc: 48 canonical specs, reachable by name from every command, measured by `npc list --zoo`.

Parity of each zoo model with NetsPresso Trainer (keys, shapes, outputs) is tests/unit/compiler/test_peer_parity.py;
that the peer's own files compile to the same models is tests/unit/spec/test_peer_configs.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from helpers import REPO, ZOO_SPECS, peer_results, run_cli
from npc import zoo
from npc.spec.convert import convert, form_of


def test_the_zoo_has_one_spec_per_measured_peer_config():
    assert len(ZOO_SPECS) == 48
    assert list(zoo.names()) == sorted(peer_results())
    assert zoo.path_of("yolox-s-detection") == REPO / "zoo" / "yolox-s-detection.yaml"


@pytest.mark.parametrize("spec", ZOO_SPECS, ids=lambda p: p.stem)
def test_zoo_specs_are_in_canonical_form(spec: Path):
    text = spec.read_text()
    assert convert(text, str(spec), form_of(spec)) == text, f"run `npc fmt {spec}`"


@pytest.fixture
def in_tmp(tmp_path):
    cwd = os.getcwd()
    os.chdir(tmp_path)
    yield tmp_path
    os.chdir(cwd)


def test_a_zoo_name_compiles_to_a_module_named_after_it_in_the_current_folder(capsys, in_tmp):
    code, _, err = run_cli(capsys, "compile", "resnet18-classification")
    assert code == 0, err
    source = (in_tmp / "resnet18-classification.py").read_text()
    assert "class ResNet" in source and "def build_model" in source
    assert not (REPO / "zoo" / "resnet18-classification.py").exists()


def test_zoo_names_work_for_validate_graph_and_diff(capsys):
    code, out, _ = run_cli(capsys, "validate", "yolox-nano-detection", "vit-tiny-classification")
    assert code == 0 and out.count(": ok") == 2
    code, out, _ = run_cli(capsys, "graph", "yolox-s-detection", "--format", "json")
    assert code == 0 and json.loads(out)
    code, out, _ = run_cli(capsys, "diff", "yolox-s-detection", "yolox-m-detection")
    assert code == 1 and "+++ yolox-m-detection" in out  # the two zoo models differ in width and depth


def test_an_unknown_name_gets_did_you_mean_and_exit_2(capsys):
    code, out, err = run_cli(capsys, "compile", "yolox-s-detectoin", "-o", "-")
    assert code == 2 and out == ""
    assert "no zoo model is called 'yolox-s-detectoin'" in err and "did you mean yolox-s-detection" in err
    code, _, err = run_cli(capsys, "summary", "resnet18-clasification")
    assert code == 2 and "did you mean resnet18-classification" in err


def test_a_file_of_the_same_name_wins_over_the_zoo(capsys, in_tmp):
    (in_tmp / "resnet18-classification").write_text("model: {task: detection}\n")
    code, _, err = run_cli(capsys, "validate", "resnet18-classification")
    assert code == 1 and "resnet18-classification" in err  # the local file, which is invalid


def test_print_spec_and_fmt_print_the_zoo_spec_without_touching_the_package(capsys):
    shipped = (REPO / "zoo" / "yolox-s-detection.yaml").read_text()
    assert run_cli(capsys, "compile", "yolox-s-detection", "--print-spec")[:2] == (0, shipped)
    assert run_cli(capsys, "fmt", "yolox-s-detection")[:2] == (0, shipped)
    code, out, _ = run_cli(capsys, "fmt", "yolox-s-detection", "--to", "npc")
    assert code == 0 and out.startswith("model")
    code, _, err = run_cli(capsys, "migrate", "--in-place", "yolox-s-detection")
    assert code == 2
    assert (REPO / "zoo" / "yolox-s-detection.yaml").read_text() == shipped


def test_summary_and_check_weights_take_a_zoo_name(capsys):
    code, out, err = run_cli(capsys, "summary", "mobilevit-s-classification", "--format", "json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["input"] == [1, 3, 256, 256]  # the model's own default input: 224 does not fit its patches
    assert summary["params"] == peer_results()["mobilevit-s-classification"]["params"]


@pytest.mark.slow
def test_list_zoo_measures_every_model_as_the_peer_did_and_docs_hold_the_table(capsys):
    """`npc list --zoo` totals equal the facts for all 48; docs/models.md holds the same table."""
    from npc.compiler import _docs
    from npc.runtime.tools.zoo_table import zoo_markdown, zoo_rows

    rows = zoo_rows()
    facts = peer_results()
    mismatches = [
        (row.name, row.params, facts[row.name]["params"])
        for row in rows
        if (row.params, row.trainable, row.buffers)
        != (facts[row.name]["params"], facts[row.name]["trainable"], facts[row.name]["buffers"])
    ]
    assert not mismatches
    assert [row.input for row in rows] == [facts[row.name]["input"][-1] for row in rows]
    assert all(row.gflops > 0 for row in rows)
    docs = (REPO / "docs" / "models.md").read_text()
    assert _docs.zoo_table_of(docs) == zoo_markdown(rows), "run `npc list --format markdown -o docs/models.md`"


def test_list_zoo_formats(capsys, monkeypatch):
    """The CLI's three renderings of the same rows (measured on two models to stay fast)."""
    from npc.runtime.tools import zoo_table as _zoo_table

    names = ("yolox-nano-detection", "resnet18-classification")
    monkeypatch.setattr(_zoo_table, "zoo_rows", lambda: [_zoo_table._row(name) for name in names])
    code, out, _ = run_cli(capsys, "list", "--zoo", "--format", "json")
    assert code == 0
    listed = json.loads(out)
    assert [r["name"] for r in listed] == list(names)
    assert listed[0]["params"] == peer_results()["yolox-nano-detection"]["params"]
    assert listed[0]["head"] == "anchor_free_decoupled_head" and listed[0]["input"] == 640
    code, out, _ = run_cli(capsys, "list", "--zoo")
    assert code == 0 and out.splitlines()[0].split()[:2] == ["name", "task"] and "11,181,642" in out
    code, out, _ = run_cli(capsys, "list", "--zoo", "--format", "markdown")
    assert code == 0 and "| `resnet18-classification` | classification | resnet / fc | 224² |" in out
