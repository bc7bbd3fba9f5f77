"""The example specs in examples/: each validates and compiles, follows the example conventions, runs at the input
size docs/models.md gives it with the parameter count given there, and is listed in docs/models.md under every
family it uses; every compilable family has at least one example."""

import json
import re
from functools import cache
from pathlib import Path

import pytest
import torch

from helpers import EXAMPLES, REPO, compile_file, import_source
from npc.compiler import _docs, registry
from npc.spec import load_spec

SCHEMA_COMMENT = "# yaml-language-server: $schema=../schemas/model.schema.json"


def _families(path: Path) -> set[tuple[str, str]]:
    spec = load_spec(path)
    return {(c.kind, c.name) for c in spec.components} | {("loss", loss.criterion) for loss in spec.losses}


def _docs_sections() -> dict[tuple[str, str], str]:
    """docs/models.md cut into its family sections, keyed by (kind, name)."""
    text = (REPO / "docs" / "models.md").read_text()
    parts = re.split(r"^## (\w+) `([\w-]+)`$", text, flags=re.MULTILINE)
    return {(kind, name): body for kind, name, body in zip(parts[1::3], parts[2::3], parts[3::3])}


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_validates_and_compiles(path: Path):
    source = compile_file(path)
    assert "def build_model(" in source


@cache
def _documented() -> dict[str, _docs.Example]:
    from npc.runtime.tools import parameter_counts

    return {example.file: example for example in _docs.example_specs(count=parameter_counts)}


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs_at_its_documented_input_size_with_its_documented_parameter_count(path: Path, tmp_path):
    """Built and run on the meta device: shapes are checked, nothing is allocated."""
    example = _documented()[path.name]
    module = import_source(compile_file(path), "example_" + path.stem.replace("-", "_"), tmp_path)
    with torch.device("meta"), torch.no_grad():
        model = module.build_model(num_classes=_docs.COUNT_NUM_CLASSES).eval()
        out = model(torch.zeros(1, 3, example.input_size, example.input_size))
    assert isinstance(out, dict) and out
    assert sum(p.numel() for p in model.parameters()) == example.params


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_references_the_schema_and_has_a_loss_for_its_task(path: Path):
    text = path.read_text()
    if path.suffix == ".json":
        assert json.loads(text).get("$schema") == "../schemas/model.schema.json"
    else:
        assert text.splitlines()[0] == SCHEMA_COMMENT
        assert text.splitlines()[1].startswith("# "), "a YAML example starts with a comment saying what it is"
    spec = load_spec(path)
    assert spec.losses, "an example names its loss"
    for loss in spec.losses:
        assert spec.task in registry.get("loss", loss.criterion).tasks, (loss.criterion, spec.task)


def test_every_example_is_listed_under_its_families_in_docs_models_md():
    sections = _docs_sections()
    missing = [
        f"{path.name} not listed under {kind} {name}"
        for path in EXAMPLES
        for kind, name in sorted(_families(path))
        if f"[`{path.name}`](../examples/{path.name})" not in sections.get((kind, name), "")
    ]
    assert not missing, "\n".join(missing) + "\nrun `npc list --format markdown -o docs/models.md`"


def test_every_compilable_family_has_an_example():
    used = set().union(*(_families(path) for path in EXAMPLES))
    missing = [
        f"{cls.kind} {cls.name}"
        for cls in registry.list_components()
        if cls.kind != "loss" and cls.template and (cls.kind, cls.name) not in used
    ]
    assert not missing, "compilable families without an example in examples/: " + ", ".join(missing)
