"""Typing a spec character by character, and garbling it: the server checks every prefix without raising,
answers every request, and publishes diagnostics for the version the editor holds."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from helpers import REPO

pytest.importorskip("pygls", reason="npc lsp needs the lsp extra (pip install -e '.[lsp]')")

from lsprotocol import types  # noqa: E402
from pygls.workspace import TextDocument  # noqa: E402

from npc.lsp import analyse  # noqa: E402
from npc.lsp._actions import code_actions, format_document  # noqa: E402
from npc.lsp._completion import completions  # noqa: E402
from npc.lsp._definition import definition  # noqa: E402
from npc.lsp._hover import hover  # noqa: E402
from npc.lsp._ranges import diagnostic_span  # noqa: E402

SPECS = [
    REPO / "examples/resnet18-classification.yaml",
    REPO / "examples/forms/resnet18-classification.json",
    REPO / "examples/resnet18-classification.npc",
    REPO / "examples/resnet-scaled-classification.npc",  # vars and expressions
]
TYPED = SPECS[:3]  # every prefix of the three forms of one spec
JUNK = ["{", "}", "[", '"', "'", ":", "(", "=", "*", "\t", "é", "\x00", "&a", "!!x"]


def every_feature_at_the_end(text: str, path: Path) -> None:
    """What an editor asks while the user types: all of it must answer without raising."""
    analysis = analyse(text, str(path))
    for diagnostic in analysis.diagnostics:
        span = diagnostic_span(analysis.lines, diagnostic)
        assert 0 <= span.line < len(analysis.lines) and span.start <= span.end
    line = len(analysis.lines) - 1
    col = len(analysis.lines[-1])
    document = TextDocument(path.resolve().as_uri(), text)
    hover(analysis, line, col)
    hover(analysis, line, max(col - 2, 0))
    completions(analysis, line, col)
    code_actions(analysis, document, (0, 0), (line, col), lambda span: None, lambda d: None)
    format_document(analysis, document)
    definition(analysis, line, max(col - 1, 0))


@pytest.mark.slow  # ~1000 prefixes per form, each checked and asked every feature: 10-30 s per form
@pytest.mark.parametrize("spec", TYPED, ids=lambda p: p.suffix[1:])
def test_every_prefix_of_a_spec(spec):
    text = spec.read_text(encoding="utf-8")
    for end in range(len(text) + 1):
        every_feature_at_the_end(text[:end], spec)


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.name)
def test_garbled_specs(spec):
    """Lines dropped, duplicated and swapped, brackets and quotes deleted, random bytes pasted in."""
    text = spec.read_text(encoding="utf-8")
    chaos = random.Random(17)
    for _ in range(60):
        lines = text.split("\n")
        for _ in range(chaos.randint(1, 3)):
            where = chaos.randrange(len(lines))
            action = chaos.choice(["drop", "copy", "swap", "cut", "junk"])
            if action == "drop":
                del lines[where]
            elif action == "copy":
                lines.insert(where, lines[chaos.randrange(len(lines))])
            elif action == "swap":
                other = chaos.randrange(len(lines))
                lines[where], lines[other] = lines[other], lines[where]
            elif action == "cut" and lines[where]:
                lines[where] = lines[where][: chaos.randrange(len(lines[where]))]
            else:
                lines[where] += chaos.choice(
                    ["{", "}", "[", '"', "'", ":", "(", "=", "*", "\t", "é", "\x00", "&a", "!!x"]
                )
            lines = lines or [""]
        every_feature_at_the_end("\n".join(lines), spec)


@pytest.mark.asyncio(loop_scope="module")
async def test_the_server_keeps_up_with_typing_and_answers_every_request(editor, tmp_path):
    """Over stdio: the spec typed in chunks without waiting, requests in between; then the final version's
    diagnostics arrive and are the right ones."""
    spec = SPECS[0]
    text = spec.read_text(encoding="utf-8")
    path = tmp_path / spec.name
    path.write_text("", encoding="utf-8")
    uri = path.resolve().as_uri()
    await editor.open(path, "")
    for end in range(1, len(text) + 1, 7):
        await editor.replace(uri, text[:end], wait=False)
        line = text[:end].count("\n")
        col = end - (text.rfind("\n", 0, end) + 1)
        await editor.complete(uri, line, col)
        await editor.hover(uri, line, max(col - 1, 0))
    assert await editor.replace(uri, text) == []
    assert await editor.replace(uri, text.replace("norm_type", "norm_typ")) != []
    actions = await editor.actions(uri, (0, 0), (len(text.split("\n")), 0))
    assert any(a.kind == types.CodeActionKind.QuickFix for a in actions)
