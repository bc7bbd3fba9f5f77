"""The .npc examples: canonical, valid once their expressions are resolved, and the same document as the
YAML/JSON example they restate. Also the TextMate grammar for editors stays in step with the language."""

import json
import re
from pathlib import Path

import pytest

from helpers import REPO
from npc.spec import normalise, validate
from npc.spec._expressions import FUNCTIONS, KEYWORDS, resolve_expressions
from npc.spec._text_format import SLOTS, load_npc_text
from npc.spec.convert import convert, form_of, load_form

NPC_EXAMPLES = sorted((REPO / "examples").glob("*.npc"))


def test_there_are_npc_examples():
    assert len(NPC_EXAMPLES) >= 4


@pytest.mark.parametrize("example", NPC_EXAMPLES, ids=lambda p: p.name)
def test_example_is_canonical_and_valid(example: Path):
    text = example.read_text()
    assert convert(text, str(example), "npc") == text, f"run: npc fmt {example.relative_to(REPO)}"
    source, diagnostics = resolve_expressions(load_npc_text(text, str(example)))
    assert diagnostics == [] and validate(source) == []
    normalise(source.data, source.path)


RESTATED = [(p, s) for p in NPC_EXAMPLES for s in p.parent.glob(p.stem + ".*") if s.suffix in (".yaml", ".json")]


def test_most_examples_restate_a_yaml_or_json_one():
    assert len(RESTATED) >= 4


@pytest.mark.parametrize("example, sibling", RESTATED, ids=[p.name for p, _ in RESTATED])
def test_example_restates_its_yaml_or_json_sibling(example: Path, sibling: Path):
    theirs = load_form(sibling.read_text(), str(sibling), form_of(sibling)).source.data
    theirs.pop("$schema", None)  # editor-only
    assert json.dumps(load_npc_text(example.read_text()).data) == json.dumps(theirs)


def test_the_scaled_example_computes_its_stages():
    source, _ = resolve_expressions(load_npc_text((REPO / "examples" / "resnet-scaled-classification.npc").read_text()))
    stages = source.data["model"]["architecture"]["backbone"]["stage_params"]
    assert stages == [{"channels": c, "num_blocks": 2} for c in (32, 64, 128, 256)]
    assert "vars" not in source.data


# ---- the TextMate grammar -----------------------------------------------------------------------------------

GRAMMAR = json.loads((REPO / "editors" / "npc.tmLanguage.json").read_text())


def _patterns(node):
    if isinstance(node, dict):
        for key in ("match", "begin", "end"):
            if key in node:
                yield node[key]
        for value in node.values():
            yield from _patterns(value)
    elif isinstance(node, list):
        for value in node:
            yield from _patterns(value)


def test_every_editor_pattern_compiles():
    patterns = list(_patterns(GRAMMAR))
    assert len(patterns) > 20
    for pattern in patterns:
        re.compile(pattern)


def test_the_editor_grammar_knows_the_language_words():
    text = json.dumps(GRAMMAR)
    for word in [*SLOTS, "loss", "stage", "postprocessor", "model", "vars", *KEYWORDS, *FUNCTIONS]:
        assert re.search(rf"\b{word}\b", text), word


def test_the_vscode_extension_points_at_the_grammar():
    package = json.loads((REPO / "editors" / "vscode" / "package.json").read_text())
    (grammar,) = package["contributes"]["grammars"]
    assert grammar["scopeName"] == GRAMMAR["scopeName"] and grammar["path"].endswith("npc.tmLanguage.json")
