"""The fast YAML path (spec/_fast_yaml.py: libyaml composes, ruamel.yaml's YAML 1.2 rules resolve) must read every
text it answers for exactly as ruamel.yaml's round-trip loader does: the same values of the same types, and the
same position for every JSON pointer. Texts it is not sure of are left to ruamel (``fast_load`` returns None).
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import REPO, ZOO_SPECS
from npc.spec import LoadError, load_text
from npc.spec._fast_yaml import AVAILABLE, fast_load
from npc.spec._load import MAX_DEPTH, MAX_NODES, _json_positions_ruamel, _load_yaml_ruamel

pytestmark = pytest.mark.skipif(not AVAILABLE, reason="PyYAML without libyaml: every text goes through ruamel")

SUFFIXES = (".yaml", ".yml", ".json")
CORPUS = sorted(
    [*ZOO_SPECS, *(REPO / "tests" / "specs").rglob("*"), *(REPO / "examples").rglob("*")],
)
CORPUS = [p for p in CORPUS if p.suffix in SUFFIXES and p.is_file()]
# Files the fast path leaves to ruamel on purpose (see _fast_yaml's docstring); every other valid file is read fast.
LEFT_TO_RUAMEL = {
    "yaml_anchors_and_aliases.yaml",  # merge keys `<<: *stage`
    "merge_key_typo_in_anchor.yaml",  # a merge key
    "fc_dropout_inf.yaml",  # .inf
}


def typed(value: Any) -> Any:
    """A comparable form that tells True from 1 from 1.0 (== does not)."""
    if isinstance(value, dict):
        return ("dict", [(key, typed(item)) for key, item in value.items()])
    if isinstance(value, list):
        return ("list", [typed(item) for item in value])
    return (type(value).__name__, repr(value))


def fast(text: str) -> tuple[Any, dict[str, tuple[int, int]]] | None:
    return fast_load(text, MAX_NODES, MAX_DEPTH)


def assert_same_as_ruamel(text: str, name: str = "t.yaml") -> bool:
    """Where the fast path answers, ruamel must accept the text and give the same data and positions."""
    found = fast(text)
    if found is None:
        return False
    try:
        reference = _load_yaml_ruamel(text, name)
    except LoadError as exc:  # pragma: no cover - the failure itself is the report
        pytest.fail(f"fast path accepted a text ruamel refuses ({exc.message}):\n{text}")
    assert typed(found[0]) == typed(reference.data), text
    assert found[1] == dict(reference.positions), text
    return True


def test_every_zoo_spec_takes_the_fast_path() -> None:
    assert len(ZOO_SPECS) == 48
    for spec in ZOO_SPECS:
        assert assert_same_as_ruamel(spec.read_text(encoding="utf-8"), spec.name), spec


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: str(p.relative_to(REPO)))
def test_corpus_reads_the_same(path: Path) -> None:
    """Every zoo spec, every YAML/JSON file under tests/specs and examples: same data, same positions."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        pytest.skip("not UTF-8: refused before any parse")
    answered = assert_same_as_ruamel(text, path.name)
    if path.suffix == ".json" and answered:  # JSON's positions (its data comes from the json module)
        assert fast(text)[1] == _json_positions_ruamel(text, path.name)
    try:
        valid = _load_yaml_ruamel(text, path.name).data is not None  # an empty document is left to ruamel
    except LoadError:
        valid = False
    if valid and path.name not in LEFT_TO_RUAMEL and "\t" not in text:
        assert answered, f"{path} is valid YAML but was left to ruamel"


# --- YAML 1.1 vs 1.2: resolved as ruamel.yaml (YAML 1.2) resolves them -----------------------------------------

# (plain scalar, the value npc reads, whether the fast path reads it itself)
SCALARS = [
    ("yes", "yes", True),  # YAML 1.1 booleans are strings in 1.2
    ("no", "no", True),
    ("on", "on", True),
    ("off", "off", True),
    ("y", "y", True),
    ("Yes", "Yes", True),
    ("true", True, True),
    ("True", True, True),
    ("FALSE", False, True),
    ("tRUE", "tRUE", True),
    ("1e-3", 0.001, True),  # a float without a dot (a string in PyYAML's 1.1 rules)
    ("1E3", 1000.0, True),
    ("6.5e+2", 650.0, True),
    ("1.", 1.0, True),
    ("-.5", -0.5, True),
    ("0.", 0.0, True),
    ("010", 10, True),  # no bare-zero octal in 1.2: the integer 10 (8 in 1.1)
    ("007", 7, True),
    ("+5", 5, True),
    ("-0", 0, True),
    ("12:30", "12:30", True),  # no sexagesimal in 1.2 (750 in 1.1)
    ("~", None, True),
    ("null", None, True),
    ("Null", None, True),
    ("", None, True),
    ("=", "=", False),  # 1.1's value key: ruamel keeps the text
    ("=round(64 * w)", "=round(64 * w)", True),
    ("0o10", 8, False),
    ("0x1F", 31, False),
    ("0b101", 5, False),
    ("1_000", 1000, False),
    (".inf", "inf", False),  # not finite: kept as text, the schema reports it
    ("-.inf", "-inf", False),
    (".nan", "nan", False),
    ("1e999", "inf", False),
    ("2024-01-31", "2024-01-31", False),  # a date: kept as text, the schema reports the type
]


@pytest.mark.parametrize(("written", "value", "read_fast"), SCALARS, ids=[s[0] or "empty" for s in SCALARS])
def test_scalars_resolve_as_yaml_1_2(written: str, value: Any, read_fast: bool) -> None:
    text = f"a: {written}\n"
    assert typed(load_text(text).data["a"]) == typed(value)
    assert typed(_load_yaml_ruamel(text, "t.yaml").data["a"]) == typed(value)
    assert (fast(text) is not None) == read_fast
    assert_same_as_ruamel(text)


@pytest.mark.parametrize(
    "text",
    [
        "a: !!str 5\n",
        "a: ! 5\n",
        "a: ! '5'\n",
        "a: ! {b: 1}\n",
        "a: !include other.yaml\n",
        "%YAML 1.1\n---\na: yes\n",
        "a: 1\nb:\t2\n",
        "a: x\u2028y\n",
        "a: x\x85\nb: 1\n",
        "\ufeffa: 1\n",
        "base: &b {x: 1}\nc:\n  <<: *b\n",
        "a: 1\na: 2\n",
        "a: {b: 1, b: 2}\n",
        "1: x\n",
        "null: x\n",
        "true: x\n",
        "[a]: x\n",
        "? {a: 1}\n: x\n",
        "a: [1\n",
        "a: 1\n---\nb: 2\n",
        "a: *nowhere\n",
        "- " * 70 + "x\n",
        "a: x ! y\n",  # a `!` alone: perhaps a tag (harmlessly cautious)
        "a: &x k\n*x: 2\n",  # YAML 1.2: the alias `x:` (libyaml: the alias `x`, then `:`)
        "a: &x:y 1\n",
    ],
)
def test_left_to_ruamel(text: str) -> None:
    """Tags, directives, tabs, YAML 1.1 line breaks, BOMs, merge keys, duplicate and non-string keys, syntax errors,
    limits: ruamel reads them (with its messages), as before."""
    assert fast(text) is None
    try:
        expected = _load_yaml_ruamel(text, "t.yaml")
    except LoadError as exc:
        with pytest.raises(LoadError) as raised:
            load_text(text, "t.yaml")
        assert (raised.value.message, raised.value.line, raised.value.col) == (exc.message, exc.line, exc.col)
    else:
        source = load_text(text, "t.yaml")
        assert typed(source.data) == typed(expected.data)
        assert dict(source.positions) == dict(expected.positions)


@pytest.mark.parametrize(
    "text",
    [
        "a: &x false\nb: *x\n",
        "base: &s {channels: 64, num_blocks: 2}\nstages:\n  - *s\n  - *s\n  - {channels: 128}\n",
        "a: 'it''s'\nb: \"tab\\tand \\u00e9\"\nc: |\n  line\n   more\nd: >-\n  folded\n  text\n",
        "a: plain\n  continued\nb: 'quoted\n  over lines'\n",
        "k: [1, 2.5, yes, ~, '3', {x: [], y: {}}]\n",
        "'quoted key': 1\n\"dq\": 2\nx/y~z: 3\n",
        "é: 😀 x\nb: [é, 😀]\n",
        "a: 1\r\nb:\r\n  - 2\r\n",
        "# comment\n\n---\nmodel:  # trailing\n    task: x\n",
        "- a\n- b: 1\n  c: 2\n-   - nested\n",
        "a: '=a != b'\nb: =x!=y\n",
        "---\n...\n",
    ],
)
def test_same_as_ruamel(text: str) -> None:
    assert assert_same_as_ruamel(text)


# --- mutated real specs: whatever the fast path accepts, ruamel reads the same way ---------------------------

TEXTS = [p.read_text(encoding="utf-8") for p in ZOO_SPECS[::6]] + [
    (REPO / "examples" / "resnet18-classification.yaml").read_text(encoding="utf-8"),
    (REPO / "examples" / "forms" / "yolox-s-detection.json").read_text(encoding="utf-8"),
]
VALUES = [s[0] for s in SCALARS] + [
    "'q''t'",
    '"d\\u00e9"',
    "[1, yes]",
    "{a: no}",
    "&a x",
    "*a",
    "!!str 5",
    "! 5",
    "|\n  lit",
    "a: b",
    "- x",
    "x # c",
    "@x",
    "`x",
    "?",
    "'",
    '"',
]
KEYS = ["yes", "1", "null", "~", "<<", "'a'", '"b"', "true", "on", "? x", "[a]", "&k key", "*a", "x/y~z"]
SETTINGS = settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
PUNCTUATION = list(":-[]{},&*<>!|'\"#~ \n") + ["  ", "- ", ": ", "\r", "\t", "\x85", "0", "x", "null", "yes"]


@SETTINGS
@given(st.sampled_from(TEXTS), st.randoms(use_true_random=False), st.integers(1, 4))
def test_mutated_specs(text: str, rng: random.Random, edits: int) -> None:
    for _ in range(edits):
        lines = text.split("\n")
        entries = [i for i, line in enumerate(lines) if re.match(r"^\s*(- )?[\w\"']+:( |$)", line)]
        choice = rng.random()
        if choice < 0.4 and entries:  # a new value or key where one is written
            i = rng.choice(entries)
            indent, key, rest = re.match(r"^(\s*(?:- )?)([\w\"']+):(.*)$", lines[i]).groups()
            new_value = rng.random() < 0.7
            lines[i] = f"{indent}{key}: {rng.choice(VALUES)}" if new_value else f"{indent}{rng.choice(KEYS)}:{rest}"
            text = "\n".join(lines)
        elif choice < 0.7:  # a typo: punctuation in, a few characters out
            at = rng.randrange(len(text) + 1)
            text = text[:at] + rng.choice(PUNCTUATION) + text[at + rng.randint(0, 3) :]
        else:  # a line copied or moved
            i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
            lines.insert(j, lines[i] if rng.random() < 0.5 else lines.pop(i))
            text = "\n".join(lines)
    assert_same_as_ruamel(text)
