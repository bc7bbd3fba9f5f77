"""The .npc text form: what each statement means, positions for diagnostics, named syntax errors, limits."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npc.spec import LoadError, load_text, validate
from npc.spec._text_format import (
    BadExpression,
    BadKey,
    EqualsForColon,
    MissingComma,
    MissingValue,
    UnclosedBrace,
    UnclosedBracket,
    UnclosedParenthesis,
    UnexpectedCharacter,
    UnexpectedClose,
    UnquotedText,
    load_npc_text,
    parse_npc,
)

RESNET18_NPC = """\
model resnet18 : classification {
  checkpoint { use_pretrained: false, load_head: false }
  backbone resnet(block_type: "basicblock", norm_type: "batch_norm") {
    stage(channels: 64, num_blocks: 2)
    stage(channels: 128, num_blocks: 2, replace_stride_with_dilation: false)
  }
  head fc(num_layers: 1, dropout_prob: 0.0)
  loss cross_entropy(label_smoothing: 0.1)
}
"""

RESNET18_YAML = """\
model:
  task: classification
  name: resnet18
  checkpoint:
    use_pretrained: false
    load_head: false
  architecture:
    backbone:
      name: resnet
      params:
        block_type: basicblock
        norm_type: batch_norm
      stage_params:
        - {channels: 64, num_blocks: 2}
        - {channels: 128, num_blocks: 2, replace_stride_with_dilation: false}
    head:
      name: fc
      params: {num_layers: 1, dropout_prob: 0.0}
  losses:
    - criterion: cross_entropy
      label_smoothing: 0.1
"""


def data(text):
    return load_npc_text(text, "spec.npc").data


def same(a, b):
    """Equal documents, key order included."""
    return json.dumps(a) == json.dumps(b)


# ---- meaning ------------------------------------------------------------------------------------------------


def test_the_issue_example_is_the_yaml_document():
    assert same(data(RESNET18_NPC), load_text(RESNET18_YAML).data)


def test_full_models_and_losses_keep_their_parameters_beside_the_name():
    document = data(
        "model pidnet_s : segmentation {\n"
        "  full pidnet(m: 2, n: 3, channels: 32)\n"
        "  backbone: null, head: null\n"
        "  postprocessor: null\n"
        "  loss pidnet_loss(weight: null, ignore_index: 255)\n"
        "}\n"
    )
    assert same(
        document,
        {
            "model": {
                "task": "segmentation",
                "name": "pidnet_s",
                "architecture": {
                    "full": {"name": "pidnet", "m": 2, "n": 3, "channels": 32},
                    "backbone": None,
                    "head": None,
                },
                "postprocessor": None,
                "losses": [{"criterion": "pidnet_loss", "weight": None, "ignore_index": 255}],
            }
        },
    )


def test_positional_stage_rows_and_nested_lists_for_gelan():
    document = data(
        "model g : detection {\n"
        "  backbone gelan(stem_out_channels: 16, return_stage_idx: [1, 2, 3]) {\n"
        '    stage(["conv", 32, 3, 2], ["elan", 32, 32, false])\n'
        '    stage(["aconv", 64], ["repncspelan", 64, 64, false, 3])\n'
        "  }\n"
        "  head anchor_decoupled_head(anchor_sizes: [[32], [64]], aspect_ratios: [0.5, 1.0, 2.0])\n"
        "  postprocessor(score_thresh: 0.05, nms_thresh: 0.45)\n"
        "}\n"
    )
    backbone = document["model"]["architecture"]["backbone"]
    assert backbone["stage_params"] == [
        [["conv", 32, 3, 2], ["elan", 32, 32, False]],
        [["aconv", 64], ["repncspelan", 64, 64, False, 3]],
    ]
    assert document["model"]["architecture"]["head"]["params"]["anchor_sizes"] == [[32], [64]]
    assert document["model"]["postprocessor"] == {"params": {"score_thresh": 0.05, "nms_thresh": 0.45}}


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            'a: 1, b: -2.5e-3, c: true, d: null, e: "x\\ty\\u00e9"',
            {"a": 1, "b": -0.0025, "c": True, "d": None, "e": "x\ty\u00e9"},
        ),
        ("a: 1.0", {"a": 1.0}),
        ("a: [1, [2, {}], { b: [] }],", {"a": [1, [2, {}], {"b": []}]}),
        ("a { b { c: 1 } }", {"a": {"b": {"c": 1}}}),
        ("a {}", {"a": {}}),
        ("a: { b: 1\n c: 2 }", {"a": {"b": 1, "c": 2}}),
        ('"$schema": "s.json"\n"a b" { "": 1 }', {"$schema": "s.json", "a b": {"": 1}}),
        ("a: = w * 64\nb: =round( x )", {"a": "=w * 64", "b": "=round( x )"}),
        ('a: "=w*64"', {"a": "=w*64"}),
        ("a: [=x, =f(1, 2)]", {"a": ["=x", "=f(1, 2)"]}),
        ("# only a comment\n", {}),
        ("", {}),
    ],
)
def test_values(text, expected):
    assert same(data(text), expected)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("model m { }", {"model": {"name": "m"}}),
        ('model { task: "x" }', {"model": {"task": "x"}}),
        ('model "tiny-seg" : segmentation {}', {"model": {"task": "segmentation", "name": "tiny-seg"}}),
        ("model: { backbone: 1 }", {"model": {"backbone": 1}}),  # `model:` is a plain mapping
        ('model { "backbone": 1 }', {"model": {"backbone": 1}}),  # a quoted key is always a plain key
        ("model { backbone: 1 }", {"model": {"architecture": {"backbone": 1}}}),
        ("model { backbone { x: 1 } }", {"model": {"architecture": {"backbone": {"x": 1}}}}),
        ("model { architecture { x: 1, head h } }", {"model": {"architecture": {"x": 1, "head": {"name": "h"}}}}),
        ("model { loss: 3, loss { w: 1 } }", {"model": {"losses": [3, {"w": 1}]}}),
        ("model { losses: [] }", {"model": {"losses": []}}),
        ("model { backbone r() }", {"model": {"architecture": {"backbone": {"name": "r", "params": {}}}}}),
        (
            "model { backbone r { params: null } }",
            {"model": {"architecture": {"backbone": {"name": "r", "params": None}}}},
        ),
        ("model { backbone r(1, 2) }", {"model": {"architecture": {"backbone": {"name": "r", "params": [1, 2]}}}}),
        (
            "model { head h { stage: 1, stage() } }",
            {"model": {"architecture": {"head": {"name": "h", "stage_params": [1, {}]}}}},
        ),
        (
            "model { head h { stage_params: [] } }",
            {"model": {"architecture": {"head": {"name": "h", "stage_params": []}}}},
        ),
        ("model { postprocessor { x: 1 } }", {"model": {"postprocessor": {"x": 1}}}),
        ("model { postprocessor(a: 1) { b: 2 } }", {"model": {"postprocessor": {"params": {"a": 1}, "b": 2}}}),
        ("training { model { x: 1 } }", {"training": {"model": {"x": 1}}}),
        ("vars { w: 0.5, d: =w * 2 }", {"vars": {"w": 0.5, "d": "=w * 2"}}),
    ],
)
def test_statements_mean_what_their_body_says(text, expected):
    assert same(data(text), expected)


def test_architecture_and_losses_sit_where_their_first_statement_is():
    document = data("model m : t {\n  freeze_backbone: false\n  head h\n  loss l\n  backbone b\n  extra: 1\n}\n")
    assert list(document["model"]) == ["task", "name", "freeze_backbone", "architecture", "losses", "extra"]
    assert list(document["model"]["architecture"]) == ["head", "backbone"]


# ---- positions ----------------------------------------------------------------------------------------------


def test_positions_point_at_the_statement_that_wrote_each_value():
    positions = load_npc_text(RESNET18_NPC, "r.npc").positions
    assert positions["/model"] == (1, 1)
    assert positions["/model/name"] == (1, 7)
    assert positions["/model/task"] == (1, 18)
    assert positions["/model/checkpoint/load_head"] == (2, 39)
    assert positions["/model/architecture"] == positions["/model/architecture/backbone"] == (3, 3)
    assert positions["/model/architecture/backbone/name"] == (3, 12)
    assert positions["/model/architecture/backbone/params/norm_type"] == (3, 45)
    assert positions["/model/architecture/backbone/stage_params/1"] == (5, 5)
    assert positions["/model/architecture/backbone/stage_params/1/replace_stride_with_dilation"] == (5, 41)
    assert positions["/model/losses/0"] == (8, 3)
    assert positions["/model/losses/0/criterion"] == (8, 8)


def test_validation_diagnostics_point_into_the_npc_file():
    text = RESNET18_NPC.replace('"basicblock"', '"basicblok"').replace("num_layers", "num_layer")
    diagnostics = validate(load_npc_text(text, "r.npc"))
    located = {(d.pointer, d.line, d.col) for d in diagnostics}
    assert ("/model/architecture/backbone/params/block_type", 3, 19) in located
    assert ("/model/architecture/head/params/num_layer", 7, 11) in located
    assert all(d.file == "r.npc" for d in diagnostics)


def test_comments_blank_lines_and_ends_are_recorded_for_fmt():
    document = parse_npc('# a\nmodel m {  # b\n\n  head h(x: "#not a comment")\n}\n', "m.npc")
    assert [(c.line, c.column, c.text, c.own_line) for c in document.comments] == [
        (1, 1, "# a", True),
        (2, 12, "# b", False),
    ]
    assert document.blank_lines == frozenset({3})
    assert document.ends["/model"] == (5, 2)


# ---- syntax errors: a named class, the line with a caret -----------------------------------------------------


@pytest.mark.parametrize(
    "text, error, line, column",
    [
        ("model m {\n  backbone resnet(block_type: basicblock)\n}\n", UnquotedText, 2, 31),
        ("model m {\n  backbone resnet(a: 1 b: 2)\n}\n", MissingComma, 2, 24),
        ("a: [1 2]", MissingComma, 1, 7),
        ("model m {\n  backbone resnet(a: 1\n}\n", UnclosedParenthesis, 3, 1),
        ("model m {\n  head fc(a: 1)\n", UnclosedBrace, 2, 16),
        ("a: [1, 2\n", UnclosedBracket, 1, 9),
        ("a: 1 }", UnexpectedClose, 1, 6),
        ("a:", MissingValue, 1, 3),
        ("a: True", MissingValue, 1, 4),
        ("a = 1", EqualsForColon, 1, 3),
        ("a: =1 +", BadExpression, 1, 8),
        ("1: 2", BadKey, 1, 1),
        ("a: 'x'", UnexpectedCharacter, 1, 4),
        ("a: ~", UnexpectedCharacter, 1, 4),
        ("model m {\n  backbone r(a: 1, b: [1, 2, {c: 3} d])\n}", MissingComma, 2, 37),
    ],
)
def test_syntax_errors_are_named_and_shown_with_a_caret(text, error, line, column):
    with pytest.raises(error) as caught:
        load_npc_text(text, "bad.npc")
    exc = caught.value
    assert isinstance(exc, LoadError) and (exc.path, exc.line, exc.col) == ("bad.npc", line, column)
    label, shown, caret = exc.message.split("\n")
    assert shown.strip() == text.splitlines()[line - 1].strip()
    assert caret.index("^") - 4 == column - 1 + (len(shown) - 4 - len(text.splitlines()[line - 1].expandtabs()))


def test_hints_for_words_from_yaml_and_python():
    with pytest.raises(UnquotedText, match='write "basicblock"'):
        load_npc_text("a: basicblock")
    with pytest.raises(MissingValue, match="write null, not None"):
        load_npc_text("a: None")


@pytest.mark.parametrize(
    "text, message, line, column",
    [
        ("a: 1\na: 2", "duplicate key 'a'", 2, 1),
        ("model m {}\nmodel n {}", "duplicate key 'model'", 2, 1),
        ("model m { backbone(a: 1) }", "backbone needs a name", 1, 19),
        ("model m { loss(a: 1) }", "loss needs a criterion", 1, 15),
        ("model m { loss l(1) }", "loss arguments are named", 1, 17),
        ("model m { full p(1) }", "full arguments are named", 1, 17),
        ("model m { stage(a: 1) }", "'stage' takes no name or arguments; here only backbone", 1, 16),
        ("model m { losses: []\n loss x }", "'losses' is already given", 2, 2),
        ("model m { loss x\n losses: [] }", "'losses' is already filled by the statements from line 1", 2, 2),
        ("model m { architecture {}\n head h }", "'architecture' is already given", 2, 2),
        ("model m { head h { stage(a: 1) { b: 2 } } }", "stage takes arguments or a body, not both", 1, 20),
        ("model m { head h { stage s() } }", "stage takes no name", 1, 26),
        ("model m { postprocessor p() }", "postprocessor takes no name", 1, 25),
        ("model m(a: 1) {}", "model takes no arguments", 1, 8),
        ("x { backbone r() }", "'backbone' takes no name or arguments: write", 1, 14),
        ("f(1, a: 2)", "'f' takes no name or arguments; here only model do", 1, 2),
        ("model m { head h(a: 1, 2) }", "arguments are either all named", 1, 24),
        ("model m { head h(a: 1, a: 2) }", "duplicate key 'a'", 1, 24),
    ],
)
def test_statement_errors_are_located(text, message, line, column):
    with pytest.raises(LoadError) as caught:
        load_npc_text(text, "bad.npc")
    assert message in caught.value.message
    assert (caught.value.line, caught.value.col) == (line, column)


# ---- limits ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [65, 100_000])
def test_deep_nesting_is_refused_without_recursion(depth):
    with pytest.raises(LoadError, match="nesting deeper than 64 levels"):
        load_npc_text("a: " + "[" * depth + "]" * depth)


def test_sixty_four_levels_are_fine():
    assert load_npc_text("a: " + "[" * 63 + "]" * 63).data["a"]


def test_a_huge_file_is_refused():
    with pytest.raises(LoadError, match="larger than"):
        load_npc_text("a: 1\n" * 1_000_000)


def test_a_long_bare_expression_parses_and_is_limited_when_resolved():
    from npc.spec._expressions import resolve_expressions

    source = load_npc_text("a: =" + "1 + " * 5000 + "1")
    _, diagnostics = resolve_expressions(source)
    assert "the limit is 1000" in diagnostics[0].message


_FUZZ_ALPHABET = "model backbone stage loss full head x\"\\'#:=,(){}[]\n 1.-e+*truefalsenull"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=_FUZZ_ALPHABET, max_size=60))
def test_any_text_either_loads_or_raises_a_located_load_error(text):
    try:
        source = load_npc_text(text, "fuzz.npc")
    except LoadError as exc:
        assert exc.path == "fuzz.npc" and exc.message
        assert exc.line is None or exc.line >= 1
    else:
        json.dumps(source.data)
