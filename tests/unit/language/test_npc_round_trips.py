"""Lossless conversion between JSON, YAML and .npc, and idempotent formatting, over every example spec, every
golden spec and every NetsPresso peer config, plus random documents (hypothesis)."""

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import EXAMPLES, REPO, ZOO_SPECS
from npc.spec import load_text
from npc.spec._text_format import dump_npc, load_npc_text, scan_comments
from npc.spec.convert import FORMATS, convert, dump_json, dump_yaml, form_of, load_form

SPECS = [
    *EXAMPLES,
    *sorted((REPO / "examples").glob("*.npc")),
    *sorted((REPO / "tests" / "specs" / "golden").iterdir()),
    *ZOO_SPECS,
]
SUFFIX = {"json": ".json", "yaml": ".yaml", "npc": ".npc"}


def document(text: str, path: str) -> str:
    """The document as canonical JSON text, so key order counts in comparisons."""
    return json.dumps(load_form(text, path, form_of(path)).source.data)


def test_every_spec_is_covered():
    assert len(ZOO_SPECS) >= 48 and len(SPECS) >= 60


@pytest.mark.parametrize("spec", SPECS, ids=[p.name for p in SPECS])
def test_every_form_holds_the_same_document_and_formatting_is_idempotent(spec: Path):
    text = spec.read_text()
    expected = document(text, str(spec))
    comments = [c.text for c in scan_comments(text, yaml=form_of(spec) == "yaml")] if form_of(spec) != "json" else []
    for form in FORMATS:
        out = convert(text, str(spec), form)
        target = f"converted{SUFFIX[form]}"
        assert document(out, target) == expected, f"{spec.name} -> {form} changed the document"
        assert convert(out, target, form) == out, f"{spec.name} -> {form} is not canonical after one pass"
        if form == "npc" or (form == "yaml" and form_of(spec) == "yaml"):  # where comments are carried
            assert [c.text for c in scan_comments(out, yaml=form == "yaml")] == comments


def test_comments_stay_beside_their_statements():
    text = (
        "# header\n"
        "model m : classification {  # the model\n"
        "  # the backbone\n"
        '  backbone resnet(block_type: "basicblock") {\n'
        "    stage(channels: 64, num_blocks: 2)  # first\n"
        "    # last\n"
        "    stage(channels: 128, num_blocks: 2)\n"
        "    # end of stages\n"
        "  }\n"
        "  head fc(\n"
        "    num_layers: 1,  # one layer\n"
        "  )\n"
        "}\n"
        "# trailer\n"
    )
    assert convert(text, "m.npc", "npc") == text


def test_json_layout():
    assert dump_json({"model": {"a": [1, 2], "b": {"c": None}}}) == (
        '{\n  "model": {"a": [1, 2], "b": {"c": null}}\n}\n'
    )
    long = {"k": list(range(40))}
    assert dump_json(long).count("\n") == 44


def test_yaml_layout_follows_netspresso_style():
    rows = [{"channels": 64, "num_blocks": 2}, {"channels": 128, "num_blocks": 2}]
    loss = [{"criterion": "cross_entropy", "weight": None}]
    out = dump_yaml({"model": {"rows": rows, "idx": [1, 2], "s": "a\tb", "losses": loss}})
    assert out == (
        "model:\n"
        "  rows:\n"
        "    - {channels: 64, num_blocks: 2}\n"
        "    - {channels: 128, num_blocks: 2}\n"
        "  idx: [1, 2]\n"
        '  s: "a\\tb"\n'
        "  losses:\n"
        "    - criterion: cross_entropy\n"
        "      weight: ~\n"
    )


def test_yaml_to_yaml_keeps_comments_and_anchors():
    text = "# top\nmodel:\n  act: &act silu   # shared\n  head:\n     act: *act\n"
    out = convert(text, "m.yaml", "yaml")
    assert "# top" in out and "# shared" in out and "&act" in out and "*act" in out
    assert load_text(out).data == load_text(text).data


# ---- random documents -----------------------------------------------------------------------------------

# Keys that mean something somewhere in .npc, next to ones that need quoting, so the escapes are exercised.
KEYS = st.one_of(
    st.sampled_from(
        [
            "model",
            "backbone",
            "neck",
            "head",
            "full",
            "loss",
            "losses",
            "stage",
            "stage_params",
            "architecture",
            "params",
            "name",
            "task",
            "criterion",
            "postprocessor",
            "vars",
            "if",
            "true",
            "null",
            "$schema",
            "",
            "a b",
        ]
    ),
    st.text(max_size=8),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=10),
    st.sampled_from(["=x", "=a * 2", "= 1", "=1 ", "==x", "=", "=f(", "=a # c", "=a\nb", "=[1, 2]", "=x if y else z"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=5)),
    max_leaves=20,
)
DOCUMENTS = st.dictionaries(KEYS, VALUES, max_size=5)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(DOCUMENTS)
def test_json_to_npc_to_json_is_the_identity(doc):
    text = dump_npc(doc)
    back = load_npc_text(text).data
    assert json.dumps(back) == json.dumps(doc), text
    assert dump_npc(back) == text


def _ordered(*fields):
    """Mappings with the named keys (each maybe absent) in this order, then a few random extra keys."""
    optional = [st.one_of(st.none(), st.tuples(st.just(k), v)) for k, v in fields]
    names = {k for k, _ in fields}

    def build(parts):
        *chosen, extra = parts
        out = {k: v for k, v in (c for c in chosen if c is not None)}
        out.update({k: v for k, v in extra.items() if k not in names})
        return out

    return st.tuples(*optional, st.dictionaries(KEYS, VALUES, max_size=2)).map(build)


NAME = st.one_of(st.sampled_from(["resnet", "tiny-seg", "if", "x y", ""]), VALUES)
ROWS = st.lists(st.one_of(VALUES, st.dictionaries(KEYS, VALUES, max_size=3), st.lists(VALUES, min_size=1, max_size=3)))
COMPONENT = st.one_of(VALUES, _ordered(("name", NAME), ("params", VALUES), ("stage_params", st.one_of(VALUES, ROWS))))
ARCHITECTURE = st.one_of(VALUES, st.dictionaries(st.sampled_from(["full", "backbone", "neck", "head", "x"]), COMPONENT))
LOSS = st.one_of(VALUES, _ordered(("criterion", NAME), ("weight", VALUES)))
MODEL = _ordered(
    ("task", NAME),
    ("name", NAME),
    ("architecture", ARCHITECTURE),
    ("postprocessor", st.one_of(VALUES, _ordered(("params", VALUES)))),
    ("losses", st.one_of(VALUES, st.lists(LOSS, max_size=3))),
)
SPEC_LIKE = _ordered(("model", st.one_of(VALUES, MODEL)), ("vars", VALUES))


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(SPEC_LIKE)
def test_spec_shaped_documents_round_trip_through_every_sugar(doc):
    text = dump_npc(doc)
    assert json.dumps(load_npc_text(text).data) == json.dumps(doc), text


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(DOCUMENTS)
def test_json_and_yaml_writers_are_lossless(doc):
    assert json.dumps(load_text(dump_json(doc), is_json=True).data) == json.dumps(doc)
    assert json.dumps(load_text(dump_yaml(doc)).data) == json.dumps(doc)


def test_a_top_level_that_is_not_a_mapping_is_refused():
    with pytest.raises(ValueError, match="mapping at the top level"):
        dump_npc([1, 2])
