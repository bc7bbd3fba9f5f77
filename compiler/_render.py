"""Render values as Python source: one type-dispatched literal renderer and a black/ruff-style call layout.

Nothing from a spec is pasted into source as text: strings go through ``repr`` (which always yields a valid,
inert string literal), numbers are checked to be finite or spelled ``float("inf")``, and only :class:`Code`
values (built from fixed tables, never from spec text) are emitted verbatim.
"""

from __future__ import annotations

import keyword
import math
from typing import Any

from ._registry import Code

__all__ = ["LINE_LENGTH", "format_assignment", "literal"]

# The emitted file's line limit, narrower than the project's own 120 so a model.py reads in a side-by-side review;
# the tests run `ruff format --check` on emitted files with this limit.
LINE_LENGTH = 110
INDENT = "    "


def literal(value: Any) -> str:
    """A Python expression that evaluates to ``value``; TypeError for anything that is not plain data."""
    if isinstance(value, Code):
        return str(value)
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int):
        return repr(int(value))
    if isinstance(value, float):
        if math.isnan(value):
            return 'float("nan")'
        if math.isinf(value):
            return 'float("inf")' if value > 0 else '-float("inf")'
        return repr(float(value))
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, (list, tuple, dict)):
        return _join(_opening(value), _items(value), _closing(value), trailing=isinstance(value, tuple))
    raise TypeError(f"cannot render {type(value).__name__} as a Python literal")


def _string(value: str) -> str:
    # Double quotes as ruff format prefers; repr() guarantees a correct escape of everything else.
    text = repr(str(value))
    if text.startswith("'") and '"' not in value:
        text = '"' + text[1:-1].replace("\\'", "'") + '"'
    return text


def _opening(value: Any) -> str:
    return "[" if isinstance(value, list) else "(" if isinstance(value, tuple) else "{"


def _closing(value: Any) -> str:
    return "]" if isinstance(value, list) else ")" if isinstance(value, tuple) else "}"


def _items(value: Any) -> list[tuple[str, Any]]:
    """(prefix, value) pairs: the prefix is what precedes the element (``"key": `` for dicts)."""
    if isinstance(value, dict):
        return [(f"{literal(str(k))}: ", v) for k, v in value.items()]
    return [("", v) for v in value]


def _join(opening: str, items: list[tuple[str, Any]], closing: str, *, trailing: bool = False) -> str:
    body = ", ".join(prefix + literal(v) for prefix, v in items)
    if trailing and len(items) == 1:
        body += ","  # a one-element tuple needs its comma
    return opening + body + closing


def _lines(head: str, value: Any, tail: str, indent: str) -> list[str]:
    """Lay out ``head + literal(value) + tail`` starting at ``indent`` the way ruff format would."""
    flat = f"{indent}{head}{literal(value)}{tail}"
    if len(flat) <= LINE_LENGTH or not isinstance(value, (list, tuple, dict)) or not value:
        return [flat]
    return _split(
        f"{indent}{head}{_opening(value)}",
        _items(value),
        f"{_closing(value)}{tail}",
        indent,
        one_tuple=isinstance(value, tuple) and len(value) == 1,
    )


def _split(first: str, items: list[tuple[str, Any]], last: str, indent: str, *, one_tuple: bool = False) -> list[str]:
    inner = indent + INDENT
    hugged = inner + ", ".join(prefix + literal(v) for prefix, v in items) + ("," if one_tuple else "")
    if len(hugged) <= LINE_LENGTH and not one_tuple:
        return [first, hugged, indent + last]
    lines = [first]
    for prefix, value in items:
        lines.extend(_lines(prefix, value, ",", inner))
    return [*lines, indent + last]


def format_assignment(target: str, callee: str, kwargs: dict[str, Any], indent: str) -> list[str]:
    """``target = callee(k=v, ...)`` laid out like ruff format: one line, a hugged body, or one arg a line."""
    bad = [key for key in kwargs if not key.isidentifier() or keyword.iskeyword(key)]
    if bad:
        raise ValueError(f"constructor argument names must be identifiers: {bad}")
    items = [(f"{key}=", value) for key, value in kwargs.items()]
    flat = f"{indent}{target} = {callee}(" + ", ".join(p + literal(v) for p, v in items) + ")"
    if len(flat) <= LINE_LENGTH or not items:
        return [flat]
    return _split(f"{indent}{target} = {callee}(", items, ")", indent)
