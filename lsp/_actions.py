"""Code actions and formatting: apply a did-you-mean, migrate the file as `npc migrate` would, format it as
`npc fmt` would. Each is an edit the editor applies to its buffer; the server itself writes no file."""

from __future__ import annotations

import re
from collections.abc import Callable

from lsprotocol import types
from pygls.workspace import TextDocument
from ruamel.yaml.error import YAMLError

from ..spec import Diagnostic, LoadError
from ..spec._migrate import migrate_text
from ..spec.convert import convert
from ._analysis import Analysis
from ._ranges import Span, diagnostic_span

__all__ = ["code_actions", "format_document"]

_DID_YOU_MEAN = re.compile(r"did you mean '([^']+)'\?")
_MIGRATE_HINT = "npc migrate FILE"

ToRange = Callable[[Span], types.Range]
ToDiagnostic = Callable[[Diagnostic], types.Diagnostic]


def code_actions(
    analysis: Analysis,
    document: TextDocument,
    start: tuple[int, int],
    end: tuple[int, int],
    to_range: ToRange,
    to_diagnostic: ToDiagnostic,
) -> list[types.CodeAction]:
    """Quick fixes for the diagnostics touching ``start``..``end`` (0-based), and "migrate this file"."""
    actions = []
    for diagnostic in analysis.diagnostics:
        span = diagnostic_span(analysis.lines, diagnostic)
        if _touches(span, start, end):
            actions += _did_you_mean(analysis, document, diagnostic, span, to_range, to_diagnostic)
    migrate = _migrate(analysis, document)
    if migrate is not None:
        actions.append(migrate)
    return actions


def _touches(span: Span, start: tuple[int, int], end: tuple[int, int]) -> bool:
    return (span.line, span.start) <= end and start <= (span.last_line, span.end)


def _did_you_mean(
    analysis: Analysis,
    document: TextDocument,
    diagnostic: Diagnostic,
    span: Span,
    to_range: ToRange,
    to_diagnostic: ToDiagnostic,
) -> list[types.CodeAction]:
    match = _DID_YOU_MEAN.search(diagnostic.message)
    if match is None or span.end_line is not None:
        return []
    written = analysis.lines[span.line][span.start : span.end]
    quote = written[0] if written[:1] in ("'", '"') and written[-1:] == written[:1] else ""
    replacement = f"{quote}{match.group(1)}{quote}"
    edit = types.TextEdit(range=to_range(span), new_text=replacement)
    return [
        types.CodeAction(
            title=f"Change {written} to {replacement}",
            kind=types.CodeActionKind.QuickFix,
            diagnostics=[to_diagnostic(diagnostic)],
            is_preferred=True,
            edit=types.WorkspaceEdit(changes={document.uri: [edit]}),
        )
    ]


def _migrate(analysis: Analysis, document: TextDocument) -> types.CodeAction | None:
    """`npc migrate` for YAML and JSON (the .npc form never held the older names)."""
    if not analysis.is_spec or analysis.form == "npc":
        return None
    try:
        migrated, changes = migrate_text(analysis.text, analysis.path)
    except (YAMLError, ValueError, TypeError, RecursionError):  # a buffer that does not parse: nothing to offer
        return None
    if not changes or migrated == analysis.text:
        return None
    summary = "; ".join(change.message for change in changes[:3]) + (" …" if len(changes) > 3 else "")
    return types.CodeAction(
        title=f"Migrate this file (npc migrate): {len(changes)} change(s): {summary}",
        kind=types.CodeActionKind.Source,
        edit=types.WorkspaceEdit(changes={document.uri: [_whole(document, migrated)]}),
    )


def format_document(analysis: Analysis, document: TextDocument) -> list[types.TextEdit] | None:
    """`npc fmt` of the buffer: one edit replacing the text, none when it is formatted, None when it cannot be
    formatted (it does not parse: the diagnostics say why)."""
    if not analysis.is_spec:
        return None
    try:
        formatted = convert(analysis.text, analysis.path, analysis.form)
    except (LoadError, ValueError):
        return None
    return [] if formatted == analysis.text else [_whole(document, formatted)]


def _whole(document: TextDocument, text: str) -> types.TextEdit:
    """An edit replacing the whole buffer with ``text``."""
    lines = document.lines
    if not lines:
        end = types.Position(line=0, character=0)
    elif lines[-1].endswith("\n"):
        end = types.Position(line=len(lines), character=0)
    else:
        end = types.Position(line=len(lines) - 1, character=document.position_codec.client_num_units(lines[-1]))
    return types.TextEdit(range=types.Range(start=types.Position(line=0, character=0), end=end), new_text=text)
