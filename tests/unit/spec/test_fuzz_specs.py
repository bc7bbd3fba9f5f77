"""Spec fuzzing: real specs, mutated (wrong types, odd numbers, hostile strings, deep nesting, deleted and added
keys), go through the whole user path. Invariants:

* loading and validating never crash: a Source with diagnostics, or a LoadError (exit 2);
* every spec that validates compiles (validation runs the graph passes, so nothing is left to the compiler);
* every compiled module parses, holds only definitions at its top level, and builds (on the meta device, so
  widths cost nothing) for a small class count.

The number of cases is bounded for CI (hypothesis ``max_examples``); failures found are kept in ``REGRESSIONS``.
"""

from __future__ import annotations

import ast
import copy
import json
import types
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from helpers import EXAMPLES, ZOO_SPECS, compiles
from npc.compiler import compile_spec
from npc.spec import LoadError, load_file, load_text, normalise, validate

SEEDS = [p for p in [*EXAMPLES, *ZOO_SPECS] if compiles(p) and "mixnet-l" not in p.stem]
BASES = [load_file(path).data for path in SEEDS]
HOSTILE = ['"""; import os; os.system("id"); """', "'); __import__('os')", "{{ 7*7 }}", "\x00\u2028", "a" * 300]

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-3, max_value=4096),
    st.floats(min_value=-10, max_value=10, allow_nan=False, allow_infinity=False),
    st.sampled_from(HOSTILE),
    st.text(max_size=12),
)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)


def _paths(node: Any, path: tuple = ()) -> list[tuple]:
    """Every location in the document (the root excluded)."""
    found = []
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        found.append((*path, key))
        found += _paths(child, (*path, key))
    return found


def _mutate(document: dict, path: tuple, operation: str, value: Any) -> None:
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    if operation == "replace":
        parent[key] = value
    elif operation == "delete":
        del parent[key]
    elif operation == "add" and isinstance(parent, dict):
        parent[f"{key}_extra"] = value
    elif operation == "nest":  # deep nesting where a value was
        for _ in range(80):
            value = [value]
        parent[key] = value


@st.composite
def mutated_specs(draw) -> dict:
    document = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = _paths(document)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        operation = draw(st.sampled_from(["replace", "replace", "replace", "delete", "add", "nest"]))
        _mutate(document, path, operation, draw(VALUES))
    return document


@st.composite
def plausible_specs(draw) -> dict:
    """Nearby values of the same type (widths, depths, flags, activations): mostly valid, so they stress the
    compiler and the emitted modules rather than the validator."""
    document = copy.deepcopy(draw(st.sampled_from(BASES)))
    leaves = [path for path in _paths(document) if isinstance(_get(document, path), (bool, int, str))]
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(leaves))
        value = _get(document, path)
        if isinstance(value, bool):
            value = not value
        elif isinstance(value, int):
            value = draw(st.integers(min_value=max(0, value // 2 - 1), max_value=value * 2 + 2))
        elif str(path[-1]).endswith("act_type"):
            value = draw(st.sampled_from(["relu", "silu", "gelu", "hard_swish", "prelu", "leaky_relu"]))
        _mutate(document, path, "replace", value)
    return document


def _get(document: Any, path: tuple) -> Any:
    for key in path:
        document = document[key]
    return document


def _check_compiled(source: str) -> None:
    tree = ast.parse(source)
    for node in tree.body[1:]:  # after the module docstring: definitions and imports only
        assert isinstance(node, (ast.Import, ast.ImportFrom, ast.ClassDef, ast.FunctionDef)), ast.dump(node)[:200]
    module = types.ModuleType("fuzzed_model")
    exec(compile(tree, "fuzzed_model.py", "exec"), module.__dict__)  # noqa: S102 - definitions only (checked above)
    with torch.device("meta"):
        model = module.build_model(num_classes=3)
    assert isinstance(model, torch.nn.Module)


def run_user_path(text: str, name: str) -> None:
    try:
        source = load_text(text, name, is_json=name.endswith(".json"))
    except LoadError:
        return  # exit 2 with a located message: fine
    if validate(source):
        return  # exit 1 with diagnostics: fine
    compiled = compile_spec(normalise(source.data, name))  # must not raise: validation accepted it
    _check_compiled(compiled.source)


# Cases hypothesis found once; each failed before its fix and stays as a regression test.
REGRESSIONS = [
    # a component name that is a list: the old-name hint looked it up in a dict (TypeError: unhashable)
    '{"model": {"task": "classification", "name": "x", "architecture": {"backbone": {"name": []}, '
    '"head": {"name": "fc"}}}}',
    # losses: true — the semantic pass iterated over it (TypeError: 'bool' object is not iterable)
    '{"model": {"task": "classification", "name": "x", "losses": true, "architecture": {"backbone": '
    '{"name": "resnet", "stage_params": [{"channels": 8, "num_blocks": 1}]}, "head": {"name": "fc"}}}}',
    # m: 1.0 — draft 2020-12 counts it as an integer; the emitted PIDNet passed it to range() (TypeError)
    '{"model": {"task": "segmentation", "name": "p", "architecture": {"full": {"name": "pidnet", "m": 1.0, '
    '"n": 1, "channels": 8, "ppm_channels": 16, "head_channels": 16}}}}',
]


@pytest.mark.parametrize("text", REGRESSIONS)
def test_regressions(text):
    run_user_path(text, "regression.json")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(document=mutated_specs())
@example(document={"model": None})
def test_mutated_specs_never_crash_and_what_validates_compiles_and_builds(document):
    run_user_path(json.dumps(document), "fuzzed.json")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(document=plausible_specs())
def test_nearby_values_validate_compile_and_build_or_are_refused_with_a_location(document):
    run_user_path(json.dumps(document), "nearby.json")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.sampled_from([path.read_text() for path in SEEDS]), cut=st.integers(min_value=0, max_value=4000))
def test_truncated_yaml_never_crashes(text, cut):
    run_user_path(text[:cut], "truncated.yaml")


def test_a_postprocessor_the_head_cannot_honour_is_reported_by_validate():
    """Found by the nearby-values fuzzer: a reg_max unlike the head's passed validation and failed in emission."""
    config = next(p for p in ZOO_SPECS if p.stem == "yolov9_s-detection")
    document = load_file(config).data
    document["model"]["postprocessor"] = {"params": {"reg_max": 7}}
    diagnostics = validate(load_text(json.dumps(document), "yolov9.json", is_json=True))
    assert [d.pointer for d in diagnostics] == ["/model/postprocessor/params/reg_max"]
    assert "must equal the head's reg_max (16), got 7" in diagnostics[0].message
