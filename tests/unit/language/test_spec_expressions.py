"""Expressions: evaluation (precedence, functions, conditionals, references), errors located by pointer and column,
reference cycles, and hostile input that must fail cleanly with a location instead of hanging or crashing."""

import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npc.spec import load_text
from npc.spec._expressions import (
    MAX_EXPRESSION_CHARS,
    ExpressionError,
    evaluate,
    parse_expression,
    resolve_expressions,
)
from npc.spec._text_format import load_npc_text


def value(text, **env):
    def lookup(name, node):
        if name not in env:
            raise ExpressionError(f"unknown variable {name!r}", node.line, node.column)
        return env[name]

    return evaluate(parse_expression(text), lookup)


def resolve(yaml_text, path="spec.yaml"):
    return resolve_expressions(load_text(yaml_text, path))


def error(text, **env):
    with pytest.raises(ExpressionError) as caught:
        value(text, **env)
    return caught.value


# ---- evaluation ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("10 - 2 - 3", 5),
        ("2 * 3 / 4", 1.5),
        ("7 / 2", 3.5),
        ("7 // 2", 3),
        ("-7 // 2", -4),
        ("7 % 3", 1),
        ("-2 ** 2", -4),
        ("2 ** -1", 0.5),
        ("2 ** 3 ** 2", 512),
        ("+3 - -3", 6),
        ("1e3", 1000.0),
        ("0.5 * 64", 32.0),
        ("1 < 2 <= 2", True),
        ("1 < 2 > 3", False),
        ("1 == 1.0", True),
        ("true == 1", False),
        ("[1, 2] == [1, 2]", True),
        ("'a' != \"a\"", False),
        ("not 1 > 2", True),
        ("true and false or true", True),
        ("false and 1 / 0 > 0", False),
        ("true or 1 / 0 > 0", True),
        ("1 if 2 > 1 else 0", 1),
        ("'a' if false else 'b' if true else 'c'", "b"),
        ("'res' + \"net\"", "resnet"),
        ("'it\\'s' + '\\\"' + '\"' + \"'\"", "it's\"\"'"),
        ("[1, 2] + [3]", [1, 2, 3]),
        ("[1, [2, 3]][1][0]", 2),
        ("[1, 2, 3][-1]", 3),
        ("null", None),
        ("[]", []),
    ],
)
def test_operators_follow_python_precedence(text, expected):
    result = value(text)
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("round(2.5)", 2),  # half to even, as Python (and NetsPresso's scaling code) rounds
        ("round(3.5)", 4),
        ("round(2.675, 2)", 2.67),
        ("floor(-1.5)", -2),
        ("ceil(1.2)", 2),
        ("min(3, 1, 2)", 1),
        ("max([4, 5])", 5),
        ("abs(-3)", 3),
        ("int(3.9)", 3),
        ("float(2)", 2.0),
        ("len([1, 2])", 2),
        ("len('abc')", 3),
        ("sum([1, 2, 3])", 6),
        ("sum([])", 0),
        ("max(1, round(3 * 0.33))", 1),
    ],
)
def test_functions(text, expected):
    result = value(text)
    assert result == expected and type(result) is type(expected)


def test_references_and_conditionals():
    assert value("max(1, round(3 * dep_mul))", dep_mul=0.33) == 1
    assert value("a if x > 1 else b", a="big", b="small", x=2) == "big"
    assert value("channels[1] * width", channels=[64, 128], width=0.5) == 64.0
    assert value("cfg['k']", cfg={"k": 3}) == 3


def test_vars_resolve_in_any_order_and_are_removed():
    resolved, diagnostics = resolve(
        "vars:\n"
        "  depth: =round(3 * dep_mul)\n"
        "  dep_mul: 0.67\n"
        "  name: =\"net_\" + 'x'\n"
        "model:\n"
        "  name: =name\n"
        "  blocks: [=depth, '=max(1, depth - 1)']\n"  # in a YAML flow list, quote what has a comma
        "  rows: =[depth, 2 * depth]\n"
    )
    assert diagnostics == []
    assert resolved.data == {"model": {"name": "net_x", "blocks": [2, 1], "rows": [2, 4]}}
    assert "/vars" not in resolved.positions and "/vars/depth" not in resolved.positions
    assert resolved.positions["/model/blocks/1"] == (7, 20)


def test_a_double_equals_is_a_literal_string():
    resolved, diagnostics = resolve("model:\n  path: ==weird.pth\n")
    assert (resolved.data, diagnostics) == ({"model": {"path": "=weird.pth"}}, [])


def test_a_spec_without_expressions_is_returned_as_is():
    source = load_text("model:\n  name: x\n  width: 64\n")
    assert resolve_expressions(source) == (source, [])


def test_expressions_work_alike_in_json_and_npc():
    json_source = load_text('{"vars": {"w": 2}, "model": {"c": "=w * 32"}}', "spec.json", is_json=True)
    npc_source = load_npc_text("vars { w: 2 }\nmodel { c: =w * 32 }\n", "spec.npc")
    assert resolve_expressions(json_source)[0].data == resolve_expressions(npc_source)[0].data == {"model": {"c": 64}}


def test_a_var_may_hold_a_list_or_mapping_and_results_are_copies():
    resolved, diagnostics = resolve("vars:\n  row: {c: 1}\nmodel:\n  a: =[row, row]\n")
    assert diagnostics == [] and resolved.data["model"]["a"] == [{"c": 1}, {"c": 1}]
    first, second = resolved.data["model"]["a"]
    assert first is not second


# ---- errors: pointer, file position, column inside the expression --------------------------------------


@pytest.mark.parametrize(
    "expression, message, column",
    [
        ("=widht * 64", "unknown variable 'widht'; did you mean 'width'?", 2),
        ("=width * sqrt(2)", "unknown function 'sqrt'", 10),
        ("=64 / (width - 0.5)", "division by zero", 8),
        ("=width +", "expected a value", 9),
        ("=(width", "unclosed '('", 8),
        ("=width if width > 1", "'if' needs an 'else'", 20),
        ("=width.scale(2)", "only a function can be called", 13),
        ("=width && 1", "unexpected character '&'; use 'and'", 8),
        ("=1 if width else 2", "'if' needs true or false, got number", 7),
        ("=width + 'px'", "'+' needs numbers, got string", 10),
        ("=True", "unknown variable 'True'; write true", 2),
        ("=round", "round is a function: call it, round(...)", 2),
        ("=[1, 2][5]", "index 5 out of range (length 2)", 9),
        ("='a' < 1", "cannot compare string < integer", 8),
        ("=", "empty expression", 2),
    ],
)
def test_errors_name_the_pointer_file_position_and_column(expression, message, column):
    resolved, diagnostics = resolve(f"vars:\n  width: 0.5\nmodel:\n  channels: {json.dumps(expression)}\n")
    assert len(diagnostics) == 1, diagnostics
    (diagnostic,) = diagnostics
    assert (diagnostic.pointer, diagnostic.line, diagnostic.col, diagnostic.code) == (
        "/model/channels",
        4,
        3,
        "expression",
    )
    assert message in diagnostic.message
    assert f"at column {column} of" in diagnostic.message, diagnostic.message
    assert resolved.data["model"]["channels"] == expression  # left as written; validation is not run on it


def test_the_text_format_reports_through_the_same_path():
    _, diagnostics = resolve_expressions(load_npc_text("model m {\n  backbone r(width: =w * 2)\n}\n", "m.npc"))
    assert [(d.file, d.pointer, d.line, d.col) for d in diagnostics] == [
        ("m.npc", "/model/architecture/backbone/params/width", 2, 14)
    ]
    assert "unknown variable 'w' (there is no vars section)" in diagnostics[0].message


def test_an_error_in_a_var_is_reported_once_there_not_at_each_use():
    _, diagnostics = resolve("vars:\n  a: =1 / 0\n  b: =a + 1\nmodel:\n  x: =a\n  y: =b\n")
    assert [(d.pointer, d.message.split(" (")[0]) for d in diagnostics] == [("/vars/a", "division by zero")]


def test_bad_vars_sections_and_names():
    _, diagnostics = resolve("vars: [1, 2]\nmodel: {}\n")
    assert [(d.pointer, d.message) for d in diagnostics] == [("/vars", "vars must be a mapping of names to values")]
    _, diagnostics = resolve("vars:\n  my-width: 1\n  if: 2\nmodel: {}\n")
    assert [d.pointer for d in diagnostics] == ["/vars/my-width", "/vars/if"]


# ---- reference cycles -----------------------------------------------------------------------------------


def test_a_reference_cycle_is_named_not_looped_on():
    _, diagnostics = resolve("vars:\n  a: =b + 1\n  b: =c * 2\n  c: =a\nmodel:\n  x: =a\n")
    assert [(d.pointer, d.line, d.message) for d in diagnostics] == [
        ("/vars/a", 2, "reference cycle: a -> b -> c -> a")
    ]


def test_a_var_referring_to_itself():
    _, diagnostics = resolve("vars:\n  a: =a + 1\nmodel: {}\n")
    assert [d.message for d in diagnostics] == ["reference cycle: a -> a"]


def test_a_cycle_inside_a_list_var():
    _, diagnostics = resolve("vars:\n  a: [1, =b]\n  b: =a[0]\nmodel: {}\n")
    assert [d.message for d in diagnostics] == ["reference cycle: a -> b -> a"]


# ---- hostile input: every case fails with a located diagnostic, quickly ----------------------------------

HOSTILE = {
    "__import__('os')": "unknown function '__import__'",
    "__import__('os').system('x')": "only a function can be called",
    "eval('1')": "unknown function 'eval'",
    "open('/etc/passwd')": "unknown function 'open'",
    "getattr(w, 'x')": "unknown function 'getattr'",
    "w.__class__": "attribute access (w.__class__) is not supported",
    "[].__class__.__bases__": "attribute access ((...).__class__.__bases__) is not supported",
    "backbone.out_channels": "backbone.… is inferred by the compiler: such values can only be used in the params",
    "__builtins__": "unknown variable '__builtins__'",
    "lambda: 1": "missing operator between values",
    "10 ** 100": "result of '**' would exceed 1e+12",
    "2 ** 2 ** 2 ** 2 ** 2": "result of '**' would exceed 1e+12",
    "(-8) ** 0.5": "a negative number to a fractional power is not a real number",
    "0 ** -1": "division by zero",
    "99999999999999999999": "exceeds the limit of 1e+12",
    "1e400": "result is not a finite number",
    "1e11 * 1e11": "exceeds the limit of 1e+12",
    "[" * 40 + "]" * 40: "nested deeper than 32 levels",
    "-" * 400 + "1": "nested deeper than 32 levels",
    "round(1.5, 10 ** 6)": "digits must be an integer",
    "1 " + "+ 1 " * 600: f"characters long; the limit is {MAX_EXPRESSION_CHARS}",
    "(" * 600 + "1" + ")" * 600: "characters long",
    "'x' * 3": "'*' needs numbers, got string",
    "{'a': 1}": "an object cannot be written in an expression",
    "a = 1": "use '==' to compare",
    "1; 2": "one expression per value",
}


@pytest.mark.parametrize("expression", list(HOSTILE), ids=[str(i) for i in range(len(HOSTILE))])
def test_hostile_input_fails_cleanly_with_a_location(expression):
    started = time.perf_counter()
    resolved, diagnostics = resolve(f"vars:\n  w: 1\nmodel:\n  x: {json.dumps('=' + expression)}\n")
    assert time.perf_counter() - started < 1
    assert len(diagnostics) == 1, diagnostics
    assert diagnostics[0].pointer == "/model/x" and (diagnostics[0].line, diagnostics[0].col) == (4, 3)
    assert HOSTILE[expression] in diagnostics[0].message
    assert "at column" in diagnostics[0].message


def test_growth_through_vars_is_bounded():
    doubling = "".join(f"  s{i}: =s{i - 1} + s{i - 1}\n" for i in range(1, 30))
    _, diagnostics = resolve(f'vars:\n  s0: ="abcdefgh"\n{doubling}model: {{}}\n')
    assert diagnostics and "longer than 10000" in diagnostics[0].message
    nesting = "".join(f"  l{i}: =[l{i - 1}, l{i - 1}]\n" for i in range(1, 40))
    _, diagnostics = resolve(f"vars:\n  l0: [1]\n{nesting}model: {{}}\n")
    assert diagnostics and "more than 10000 values" in diagnostics[0].message


def test_results_may_not_nest_the_document_too_deep():
    nesting = "".join(f"  l{i}: =[l{i - 1}]\n" for i in range(1, 41))
    deep = "{k: " * 30 + "=l40" + "}" * 30
    _, diagnostics = resolve(f"vars:\n  l0: [1]\n{nesting}model: {deep}\n")
    assert [d.pointer for d in diagnostics] == ["/model" + "/k" * 30]
    assert "nests deeper than 64 levels" in diagnostics[0].message


_FUZZ_ALPHABET = "ab1.2e+-*/%()[],'\"\\ <>=!notandifelse_xyzround max len"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=_FUZZ_ALPHABET, max_size=40))
def test_any_text_either_evaluates_or_raises_an_expression_error(text):
    try:
        result = value(text, a=1, b=[1, 2], x=0.5, y="s", z=None)
    except ExpressionError as exc:
        assert exc.line >= 1 and exc.column >= 1 and exc.message
    else:
        json.dumps(result)  # a JSON value, always


def test_a_float_result_where_an_integer_goes_is_refused_with_the_fix(tmp_path):
    """`=64 * width` gives 32.0; draft 2020-12 would call that an integer, but the emitted layer needs an int."""
    from npc.errors import INVALID
    from npc.spec import check_file

    path = tmp_path / "spec.yaml"
    path.write_text(
        "vars: {width: 0.5}\nmodel:\n  task: classification\n  name: x\n  architecture:\n"
        "    backbone:\n      name: resnet\n      params: {block_type: basicblock}\n"
        '      stage_params: [{channels: "=64 * width", num_blocks: 1}]\n    head: {name: fc}\n'
    )
    _, diagnostics, problem = check_file(path)
    assert problem is INVALID
    assert [(d.pointer, d.line) for d in diagnostics] == [("/model/architecture/backbone/stage_params/0/channels", 9)]
    assert diagnostics[0].message == (
        "expected integer, got number 32.0; write 32 (in an expression: round(...) or int(...))"
    )
    path.write_text(path.read_text().replace("=64 * width", "=round(64 * width)"))
    assert check_file(path)[2] is None
