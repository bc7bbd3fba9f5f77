"""Where a diagnostic sits in the text: the spec's (line, column) of a key or value → a range to underline.

The loaders record one position per JSON pointer: the key of a mapping entry (YAML, JSON and .npc ``key: value``)
or the value itself (a .npc component name or task). A problem with a key (unknown, duplicate) underlines the key;
any other problem underlines the value when it is a scalar written on the same line, else the key. Lines and
columns here are 0-based and count code points; the server converts them to the client's units.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..spec import Diagnostic

__all__ = ["Span", "diagnostic_span", "token_end"]

# A plain (unquoted) token ends at whitespace or at a character that separates values in any of the three forms.
_PLAIN_END = re.compile(r"[\s,:=()\[\]{}#]")
# Problems whose pointer names a key the user wrote: the key itself is what is wrong.
_KEY_PROBLEMS = ("unknown key", "duplicate key", "mapping key")


@dataclass(frozen=True)
class Span:
    line: int
    start: int
    end: int  # exclusive; on the same line (a spec's tokens never span lines where it matters)
    end_line: int | None = None  # a span that runs to another line (the whole document)

    @property
    def last_line(self) -> int:
        return self.line if self.end_line is None else self.end_line


def token_end(text: str, start: int) -> int:
    """End (exclusive) of the token starting at ``start`` in one line: a quoted string or a plain word."""
    if start >= len(text):
        return start
    quote = text[start]
    if quote in "\"'":
        index = start + 1
        while index < len(text):
            if text[index] == "\\" and quote == '"':
                index += 2
                continue
            if text[index] == quote:
                return index + 1
            index += 1
        return len(text)
    match = _PLAIN_END.search(text, start + 1 if text[start] in "-+" else start)
    end = match.start() if match else len(text.rstrip())
    return max(end, start + 1)


def diagnostic_span(lines: list[str], diagnostic: Diagnostic) -> Span:
    """The span to underline for ``diagnostic`` (1-based line/col) in ``lines``; the first line when unknown."""
    if diagnostic.line is None or not 1 <= diagnostic.line <= len(lines):
        first = lines[0] if lines else ""
        return Span(0, 0, max(len(first.rstrip()), 1))
    line = diagnostic.line - 1
    text = lines[line]
    start = min(max((diagnostic.col or 1) - 1, 0), len(text))
    if diagnostic.code == "syntax" or start >= len(text.rstrip()):
        return _syntax_span(text, line, start)
    key_end = token_end(text, start)
    if diagnostic.message.startswith(_KEY_PROBLEMS):
        return Span(line, start, key_end)
    value = _value_after_key(text, key_end)
    return Span(line, value[0], value[1]) if value else Span(line, start, key_end)


def _syntax_span(text: str, line: int, start: int) -> Span:
    """A syntax error points at a character (or past the end of a line): underline the token there, or one
    character, so the mark is visible even at the end of a line."""
    if start < len(text) and not text[start].isspace():
        return Span(line, start, token_end(text, start))
    return Span(line, start, start + 1)


def _value_after_key(text: str, key_end: int) -> tuple[int, int] | None:
    """The scalar after ``key:`` (YAML, JSON, .npc) on this line, if the token ending at ``key_end`` is a key."""
    match = re.compile(r"\s*:\s*").match(text, key_end)
    if not match or match.end() >= len(text):
        return None
    start = match.end()
    if text[start] in "[{(#" or text[start:].lstrip().startswith("#"):
        return None
    if text[start] == "-" and text[start + 1 : start + 2] in (" ", ""):  # a YAML list item, not a negative number
        return None
    if text[start] in "\"'":
        return start, token_end(text, start)
    end = _scalar_end(text, start)
    return (start, end) if end > start else None


def _scalar_end(text: str, start: int) -> int:
    """A plain scalar may hold spaces and brackets (``=round(base * 2)`` in .npc, ``foo bar`` in YAML): it runs to
    a separator outside its own brackets or to a comment, trailing spaces dropped."""
    depth, index = 0, start
    while index < len(text):
        char = text[index]
        if char in "([{":
            depth += 1
        elif char in ")]}":
            if depth == 0:
                break
            depth -= 1
        elif (char == "," and depth == 0) or (char == "#" and text[index - 1].isspace()):
            break
        elif char in "\"'":
            index = token_end(text, index) - 1
        index += 1
    return len(text[:index].rstrip())
