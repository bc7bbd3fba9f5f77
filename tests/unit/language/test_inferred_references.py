"""Expressions that read what the compiler infers along the graph (`=backbone.channels[-1]`): resolved while the
compiler walks input → backbone → neck → head, checked like written values, and reported with pointer, line and
column when they cannot be known (a cycle, a later component, a missing one) or give a value the spec refuses."""

import json
import re
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from helpers import REPO, compile_file, compile_problem
from npc.errors import INVALID
from npc.schemas import build_schema, editor_schema
from npc.spec import check_file

SPEC = """\
vars:
  width: 0.25
  last: "=backbone.channels[-1]"
model:
  task: classification
  name: inferred_demo
  architecture:
    backbone:
      name: resnet
      params: {{block_type: basicblock, norm_type: batch_norm}}
      stage_params:
        - {{channels: {first}, num_blocks: 1}}
        - {{channels: "=round(128 * width)", num_blocks: 1}}
    head:
      name: fc
      params: {{num_layers: 2, act_type: relu, intermediate_channels: {intermediate}}}
"""


def write(tmp_path: Path, intermediate: str, first: str = '"=round(64 * width)"', name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(SPEC.format(intermediate=intermediate, first=first))
    return path


def without_header(source: str) -> list[str]:
    """The emitted module minus the lines that name the spec file and its hash, and the inferred-value notes."""
    return [line for line in source.splitlines()[3:] if not line.lstrip().startswith("#   ")]


def test_a_head_reads_the_backbone_width_and_compiles_like_the_written_number(tmp_path):
    inferred = compile_file(write(tmp_path, '"=backbone.channels[-1] // 2"', name="inferred.yaml"))
    written = compile_file(write(tmp_path, "16", name="written.yaml"))
    assert without_header(inferred) == without_header(written)
    assert "#   params/intermediate_channels = 16 from =backbone.channels[-1] // 2" in inferred


def test_a_var_may_read_inferred_values_and_is_evaluated_when_the_head_is_built(tmp_path):
    source = compile_file(write(tmp_path, '"=last // 2"'))
    assert "#   params/intermediate_channels = 16 from =last // 2" in source
    assert "in_channels=32," in source and "intermediate_channels=16," in source


def test_every_inferred_record_is_readable(tmp_path):
    cases = {
        "=len(backbone.channels) * 8": 8,  # one stage handed on (classification: the last)
        "=backbone.strides[-1]": 8,  # stem /4, then stage 2 halves it
        "=sum(backbone.stage_channels)": 16 + 32,
        "=backbone.stage_strides[0] * 2": 8,
    }
    for text, expected in cases.items():
        source = compile_file(write(tmp_path, json.dumps(text)))
        assert f"#   params/intermediate_channels = {expected} from {text}" in source, text


@pytest.mark.parametrize(
    ("first", "intermediate", "pointer", "message"),
    [
        (
            '"=backbone.channels[0]"',
            "8",
            "/model/architecture/backbone/stage_params/0/channels",
            "reference cycle: the backbone's params cannot read backbone.…, which the compiler infers from them "
            "(at column 2 of '=backbone.channels[0]')",
        ),
        (
            '"=head.channels[0]"',
            "8",
            "/model/architecture/backbone/stage_params/0/channels",
            "head.… is not known when the backbone is built: values flow input → backbone → neck → head",
        ),
        (
            "16",
            '"=neck.channels[0]"',
            "/model/architecture/head/params/intermediate_channels",
            "this spec has no neck (at column 2 of '=neck.channels[0]')",
        ),
        (
            "16",
            '"=backbone.chanels[0]"',
            "/model/architecture/head/params/intermediate_channels",
            "backbone has no inferred value 'chanels' (known: backbone.channels, backbone.strides, "
            "backbone.stage_channels, backbone.stage_strides)",
        ),
        (
            "16",
            '"=1 + backbone.channels[5]"',
            "/model/architecture/head/params/intermediate_channels",
            "index 5 out of range (length 1) (at column 24 of '=1 + backbone.channels[5]')",
        ),
        (
            "16",
            '"=backbone"',
            "/model/architecture/head/params/intermediate_channels",
            "is not a value itself",
        ),
        (
            "16",
            '"=backbone.channels"',
            "/model/architecture/head/params/intermediate_channels",
            "expected integer or null, got array [32] (=backbone.channels gave [32])",
        ),
        (
            "16",
            '"=-backbone.channels[0]"',
            "/model/architecture/head/params/intermediate_channels",
            "must be >= 1, got -32 (=-backbone.channels[0] gave -32)",
        ),
    ],
    ids=["self-cycle", "later-component", "missing-neck", "unknown-record", "index", "record", "schema", "minimum"],
)
def test_values_that_cannot_be_known_or_are_refused_are_located(tmp_path, first, intermediate, pointer, message):
    path = write(tmp_path, intermediate, first=first)
    _, diagnostics, problem = check_file(path)
    assert problem is INVALID
    assert [d.pointer for d in diagnostics] == [pointer]
    assert message in diagnostics[0].message
    assert diagnostics[0].line == (12 if "/backbone/" in pointer else 16)  # the line of the value in SPEC
    assert compile_problem(path)[0] == pointer  # `npc compile` stops at the same place


def test_the_components_own_rules_run_on_the_resolved_value(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC.format(first="16", intermediate='"=backbone.channels[-1]"').replace("act_type: relu, ", ""))
    _, diagnostics, _ = check_file(path)
    assert [(d.pointer, d.message) for d in diagnostics] == [
        ("/model/architecture/head/params/act_type", "act_type is required when num_layers > 1")
    ]


def test_inferred_values_outside_component_params_are_refused_before_compiling(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC.format(first="16", intermediate="8").replace("classification", '"=backbone.strides[0]"'))
    _, diagnostics, _ = check_file(path)
    assert diagnostics[0].pointer == "/model/task"
    assert "can only be used in the params or stage_params of a later component" in diagnostics[0].message
    assert "at column 2 of '=backbone.strides[0]'" in diagnostics[0].message


def test_a_cycle_through_vars_is_named_not_looped_on(tmp_path):
    path = write(tmp_path, '"=last // 2"')
    path.write_text(
        path.read_text().replace(
            'last: "=backbone.channels[-1]"', 'last: "=backbone.channels[-1] + again"\n  again: "=last"'
        )
    )
    _, diagnostics, _ = check_file(path)
    assert len(diagnostics) == 1
    assert "reference cycle: last -> again -> last" in diagnostics[0].message


def test_a_var_named_like_a_component_is_refused(tmp_path):
    path = write(tmp_path, "8")
    path.write_text(path.read_text().replace("  width: 0.25", "  width: 0.25\n  neck: 3"))
    _, diagnostics, _ = check_file(path)
    assert diagnostics[0].pointer == "/vars/neck"
    assert "is taken" in diagnostics[0].message


@pytest.mark.parametrize(
    "example", ["rtdetr-r18-detection", "rtmpose-mobilenetv3-small-pose_estimation"], ids=lambda name: name
)
def test_examples_that_read_inferred_values_say_what_they_resolved_to(example):
    source = compile_file(REPO / "examples" / f"{example}.yaml")
    notes = re.findall(r"^ {8}# {3}(.*)$", source, flags=re.MULTILINE)
    expected = {
        "rtdetr-r18-detection": [
            "params/hidden_dim = 256 from =neck.channels[0]",
            "params/num_levels = 3 from =len(neck.channels)",
        ],
        "rtmpose-mobilenetv3-small-pose_estimation": ["params/backbone_stride = 32 from =backbone.strides[-1]"],
    }
    assert notes == expected[example]


def test_editors_accept_expressions_where_npc_validates_the_resolved_values(tmp_path):
    """The committed schema (for editors) accepts "=..." anywhere a value goes; npc's own validator, which sees
    resolved documents, does not; neither accepts "==text" (the literal string "=text") at a number."""
    from npc.spec import load_file

    document = load_file(write(tmp_path, '"=backbone.channels[-1] // 2"')).data
    editor, strict = Draft202012Validator(editor_schema()), Draft202012Validator(build_schema())
    assert list(editor.iter_errors(document)) == []
    assert {tuple(e.absolute_path)[-1] for e in strict.iter_errors(document)} >= {"channels", "intermediate_channels"}
    document["model"]["architecture"]["head"]["params"]["intermediate_channels"] = "==16"
    assert list(editor.iter_errors(document))
