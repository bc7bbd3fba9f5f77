"""Which characters a diagnostic underlines, from the one position the loaders record for its pointer."""

from __future__ import annotations

import pytest

from npc.lsp._ranges import diagnostic_span
from npc.spec import Diagnostic


@pytest.mark.parametrize(
    ("line", "col", "message", "code", "underlined"),
    [
        ("      name: resnt", 7, "unknown backbone 'resnt'", "schema", "resnt"),  # a value problem: the value
        ("      nme: resnet", 7, "unknown key 'nme'; did you mean 'name'?", "schema", "nme"),  # a key problem: the key
        ('  "name": "resnt",', 3, "unknown backbone 'resnt'", "schema", '"resnt"'),
        ('  "nme": "resnet",', 3, "unknown key 'nme'", "schema", '"nme"'),
        ("  backbone resnt(a: 1)", 12, "unknown backbone 'resnt'", "schema", "resnt"),  # .npc: the name itself
        ("    stage(channels: =round(64 * w), n: 2)", 11, "expected integer", "schema", "=round(64 * w)"),
        ("    params: {a: 1}", 5, "missing required key 'b'", "schema", "params"),  # a mapping value: its key
        ("        - {channels: 64, num_blocks: 2}", 12, "expected 2 blocks", "semantic", "64"),
        ("      dropout: 0.5  # why", 7, "must be <= 0.4", "schema", "0.5"),  # a comment is not the value
        ("  task: pose estimation", 3, "'pose estimation' is not allowed", "schema", "pose estimation"),
        ("model:", 7, "invalid YAML: could not find expected ':'", "syntax", ""),  # past the end: one character
        ("  backbone resnet(a: b)", 22, "text is written in double quotes", "syntax", "b"),
    ],
)
def test_underlined(line, col, message, code, underlined):
    span = diagnostic_span([line], Diagnostic("f", "/p", message, 1, col, code))
    assert line[span.start : span.end] == underlined
    assert span.end > span.start  # always visible


def test_an_unknown_position_underlines_the_first_line():
    span = diagnostic_span(["model:", "  x: 1"], Diagnostic("f", "", "missing required key 'model'", None, None))
    assert (span.line, span.start, span.end) == (0, 0, 6)
