"""No spec string can inject code: hostile names and values either fail validation or are emitted inertly.

For every drawn spec that validates, the emitted source parses, its top level holds only imports, class and
function definitions (and the docstring), class bodies hold only definitions, and it defines exactly the
expected names — so importing it executes nothing but definitions.
"""

import ast
import copy
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from helpers import REPO
from npc.compiler import compile_spec
from npc.spec import load_text, normalise, validate

BASE = YAML(typ="safe").load((REPO / "tests" / "specs" / "golden" / "tiny-resnet-classification.yaml").read_text())
HOSTILE = [
    '"""; import os; os.system("echo pwned"); """',
    "'); __import__('os').system('id'); ('",
    "\n\nimport os\nos.system('id')\n",
    "\\",
    "x\" + __import__('os').getcwd() + \"",
    "{{ 7*7 }}{% raw %}",
    "\u2028\u2029\x00\r",
]
DANGEROUS = {
    "eval",
    "exec",
    "compile",
    "__import__",
    "open",
    "getattr",
    "setattr",
    "globals",
    "locals",
    "vars",
    "os",
    "sys",
    "subprocess",
    "system",
    "importlib",
    "builtins",
    "__builtins__",
}
hostile_text = st.sampled_from(HOSTILE) | st.text(max_size=40)
# String-valued places a user controls; most are enums or names, which validation must reject or sanitise.
STRING_SLOTS = [
    ("model", "name"),
    ("model", "architecture", "backbone", "params", "block_type"),
    ("model", "architecture", "backbone", "params", "norm_type"),
    ("model", "architecture", "backbone", "name"),
    ("model", "architecture", "head", "params", "act_type"),
    ("model", "architecture", "head", "name"),
    ("model", "losses", 0, "criterion"),
    ("model", "checkpoint"),
    ("model", "checkpoint", "remap_keys"),  # a hostile string as both an old and a new key prefix
]


def _set(document, path, value):
    if path[-1] == "remap_keys":
        document["model"]["checkpoint"] = {"use_pretrained": False, "remap_keys": {value or "x": value}}
        return
    node = document
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


def _is_literal(node: ast.expr) -> bool:
    try:
        ast.literal_eval(node)
    except ValueError:
        return False
    return True


def _check_inert(source: str) -> None:
    tree = ast.parse(source)
    allowed_top = (ast.Import, ast.ImportFrom, ast.ClassDef, ast.FunctionDef)
    for index, node in enumerate(tree.body):
        if index == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # module docstring
        assert isinstance(node, allowed_top), ast.dump(node)[:200]
        if isinstance(node, ast.ClassDef):
            assert not node.decorator_list
            for statement in node.body:
                is_doc = isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant)
                is_constant = isinstance(statement, ast.Assign) and _is_literal(statement.value)
                assert is_doc or is_constant or isinstance(statement, ast.FunctionDef), ast.dump(statement)[:200]
    functions = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert functions == ["build_model"]
    # No name that could reach the interpreter or the system appears anywhere in the code.
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    names |= {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    assert not names & DANGEROUS, names & DANGEROUS


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(slot=st.sampled_from(STRING_SLOTS), value=hostile_text, file_name=hostile_text)
def test_hostile_strings_never_inject_code(slot, value, file_name):
    document = copy.deepcopy(BASE)
    _set(document, slot, value)
    source = load_text(json.dumps(document), f"{file_name}.json", is_json=True)
    if validate(source):
        return  # rejected with diagnostics: nothing is emitted
    emitted = compile_spec(normalise(source.data, source.path), spec_sha256="ab" * 32).source
    _check_inert(emitted)
    tree = ast.parse(emitted)
    classes = [n.name for n in tree.body if isinstance(n, ast.ClassDef)]
    assert all(name.isidentifier() for name in classes)
    assert value not in classes or value.isidentifier()


def test_a_hostile_model_name_becomes_a_plain_identifier():
    document = copy.deepcopy(BASE)
    document["model"]["name"] = HOSTILE[0]
    source = load_text(json.dumps(document), "x.json", is_json=True)
    assert validate(source) == []
    emitted = compile_spec(normalise(source.data, "x.json")).source
    _check_inert(emitted)
    assert "class ImportOsOsSystemEchoPwned(nn.Module):" in emitted


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=hostile_text)
def test_hostile_text_in_an_inferred_value_expression_stays_an_inert_comment(value):
    """The expression text of a value that reads inferred ones is echoed into model.py as a comment: whatever a
    string inside it holds (newlines, quotes, template syntax), it stays one comment line."""
    from npc.spec import resolve_expressions

    document = copy.deepcopy(BASE)
    text = f"=backbone.channels[-1] + len({json.dumps(value)}) * 0"  # reads the backbone first: always deferred
    document["model"]["architecture"]["head"]["params"]["intermediate_channels"] = text
    source, diagnostics = resolve_expressions(load_text(json.dumps(document), "x.json", is_json=True))
    if diagnostics or validate(source):
        return  # an expression the language refuses (e.g. too long) is reported, not emitted
    emitted = compile_spec(normalise(source.data, source.path, source.late), spec_sha256="ab" * 32).source
    _check_inert(emitted)
    notes = [line for line in emitted.splitlines() if "params/intermediate_channels = " in line]
    assert len(notes) == 1 and notes[0].lstrip().startswith("#   params/intermediate_channels = 16 from =")
