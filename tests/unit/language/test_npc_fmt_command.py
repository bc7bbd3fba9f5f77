"""``npc fmt``: in-place canonical formatting, --check, --to conversion, -o, and exit codes for bad input."""

import argparse
import json

import pytest

from npc.cli.fmt_commands import register
from npc.spec import load_text
from npc.spec._text_format import load_npc_text

CANONICAL_NPC = """\
# a model
model m : classification {
  backbone resnet(block_type: "basicblock") {
    stage(channels: 8, num_blocks: 1)  # tiny
  }
  head fc(num_layers: 1)
}
"""
MESSY_NPC = """\
# a model
model m:classification{backbone resnet( block_type:"basicblock" ){
      stage(channels:8,num_blocks:1)  # tiny
  } head fc(num_layers:1,) }
"""


def fmt(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="npc")
    register(parser.add_subparsers())
    args = parser.parse_args(["fmt", *argv])
    return args.handler(args)


def test_formats_in_place_and_is_idempotent(tmp_path, capsys):
    spec = tmp_path / "m.npc"
    spec.write_text(MESSY_NPC)
    assert fmt(str(spec)) == 0
    assert spec.read_text() == CANONICAL_NPC
    assert "reformatted" in capsys.readouterr().err
    assert fmt(str(spec)) == 0
    assert capsys.readouterr().err == ""  # nothing to do: the file is not touched


def test_check_reports_without_writing(tmp_path, capsys):
    spec = tmp_path / "m.npc"
    spec.write_text(MESSY_NPC)
    assert fmt(str(spec), "--check") == 1
    captured = capsys.readouterr()
    assert "would reformat" in captured.err and "+  head fc(num_layers: 1)" in captured.out
    assert spec.read_text() == MESSY_NPC
    spec.write_text(CANONICAL_NPC)
    assert fmt(str(spec), "--check") == 0


def test_converts_to_stdout_or_a_file(tmp_path, capsys):
    spec = tmp_path / "m.npc"
    spec.write_text(CANONICAL_NPC)
    assert fmt(str(spec), "--to", "json") == 0
    as_json = capsys.readouterr().out
    assert load_text(as_json, is_json=True).data == load_npc_text(CANONICAL_NPC).data
    out = tmp_path / "out" / "m.yaml"
    assert fmt(str(spec), "--to", "yaml", "-o", str(out)) == 0
    assert load_text(out.read_text()).data == load_npc_text(CANONICAL_NPC).data
    assert fmt(str(spec), "--to", "yaml", "-o", str(out), "--check") == 0
    back = tmp_path / "back.npc"
    assert fmt(str(out), "--to", "npc", "-o", str(back)) == 0
    assert json.dumps(load_npc_text(back.read_text()).data) == json.dumps(load_npc_text(CANONICAL_NPC).data)


def test_yaml_in_place_keeps_comments_and_the_modeline(tmp_path):
    spec = tmp_path / "m.yaml"
    spec.write_text(
        "# yaml-language-server: $schema=x.json\nmodel:\n    name: m   # the name\n    task: classification\n"
    )
    assert fmt(str(spec)) == 0
    assert spec.read_text() == (
        "# yaml-language-server: $schema=x.json\nmodel:\n  name: m     # the name\n  task: classification\n"
    )  # ruamel keeps a comment's column


def test_several_files_at_once(tmp_path):
    first, second = tmp_path / "a.json", tmp_path / "b.npc"
    first.write_text('{"model": {"name": "a"}}')
    second.write_text("model b {}\n")
    assert fmt(str(first), str(second), "--check") == 1
    assert fmt(str(first), str(second)) == 0
    assert first.read_text() == '{\n  "model": {"name": "a"}\n}\n'
    assert fmt(str(first), str(second), "--check") == 0


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("bad.npc", "model m {\n  head fc(a: b)\n}\n", "bad.npc:2:14: text is written in double quotes"),
        ("bad.json", '{"a": 1, "a": 2}', "duplicate key 'a'"),
        ("bad.yaml", "a: [1\n", "invalid YAML"),
        ("list.json", "[1, 2]", "cannot write as npc: a .npc file holds a mapping at the top level"),
    ],
)
def test_unparseable_input_exits_2_with_a_location(tmp_path, capsys, name, content, message):
    spec = tmp_path / name
    spec.write_text(content)
    assert fmt(str(spec), "--to", "npc") == 2
    assert message in capsys.readouterr().err
    assert spec.read_text() == content


def test_usage_errors(tmp_path, capsys):
    assert fmt(str(tmp_path / "missing.npc")) == 2
    assert "cannot read" in capsys.readouterr().err
    assert fmt("a.npc", "b.npc", "-o", "c.npc") == 2
    assert "-o/--output takes one FILE" in capsys.readouterr().err
    assert fmt("a.npc", "--to", "json", "--check") == 2
    assert "give it with -o OUT" in capsys.readouterr().err
