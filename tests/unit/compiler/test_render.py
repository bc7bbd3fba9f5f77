"""The literal renderer: everything it emits evaluates back to the value, and nothing else runs."""

import ast
import keyword
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npc.compiler._namespace import Namespace, class_name
from npc.compiler._registry import Code
from npc.compiler._render import LINE_LENGTH, format_assignment, literal

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.tuples(children)
        | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=12,
)


def evaluate(source: str):
    """Evaluate rendered source with nothing but ``float`` reachable (non-finite floats are spelled with it)."""
    tree = ast.parse(source, mode="eval")
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)]
    assert all(isinstance(c.func, ast.Name) and c.func.id == "float" for c in calls), source
    return eval(compile(tree, "<literal>", "eval"), {"__builtins__": {"float": float}})


@settings(max_examples=300)
@given(values)
def test_literal_evaluates_back_to_the_value(value):
    assert evaluate(literal(value)) == value


@pytest.mark.parametrize("value, expected", [(math.inf, 'float("inf")'), (-math.inf, '-float("inf")')])
def test_non_finite_floats_are_spelled_out(value, expected):
    assert literal(value) == expected


def test_nan_is_spelled_out():
    assert literal(math.nan) == 'float("nan")'


def test_code_is_the_only_verbatim_value():
    assert literal(Code("nn.ReLU")) == "nn.ReLU"
    assert literal("nn.ReLU") == '"nn.ReLU"'


def test_argument_names_must_be_identifiers():
    with pytest.raises(ValueError):
        format_assignment("x", "f", {"as": 1}, "")
    with pytest.raises(ValueError):
        format_assignment("x", "f", {"a=1); import os; f(b": 1}, "")


def test_objects_are_refused():
    with pytest.raises(TypeError):
        literal(object())


@settings(max_examples=200)
@given(
    st.dictionaries(
        st.from_regex(r"[a-z_]{1,12}", fullmatch=True).filter(lambda k: not keyword.iskeyword(k)), values, max_size=8
    )
)
def test_assignment_layout_parses_and_respects_line_length_where_possible(kwargs):
    lines = format_assignment("self.head", "Head", kwargs, "        ")
    tree = ast.parse("\n".join(line[8:] for line in lines))
    call = tree.body[0].value
    assert {kw.arg: evaluate(ast.unparse(kw.value)) for kw in call.keywords} == kwargs


def test_long_calls_are_split_one_argument_per_line():
    lines = format_assignment("self.neck", "FPN", {"in_channels": list(range(200, 240)), "num_outs": 4}, "    ")
    assert lines[0] == "    self.neck = FPN("
    assert lines[-1] == "    )"
    assert all(len(line) <= LINE_LENGTH for line in lines)


@given(st.text())
def test_class_names_are_safe_identifiers(text):
    name = Namespace().create(class_name(text), suffix="Model")
    assert name.isidentifier()
    assert name not in {"print", "class", "type", "torch", "nn"}


def test_class_name_examples():
    assert class_name("mobilenet_v3_small") == "MobilenetV3Small"
    assert class_name("resnet18") == "Resnet18"
    assert class_name("18layers") == "Model18layers"
    assert class_name("'); import os; ('") == "ImportOs"
    namespace = Namespace(taken={"ResNet"})
    assert namespace.create("ResNet", suffix="Model") == "ResNetModel"
