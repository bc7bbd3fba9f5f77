"""The one JSON Schema error explainer: every command (``npc validate``, ``npc train``'s run files, the language
server) turns a jsonschema ``ValidationError`` into ``(JSON pointer, message)`` here, so the same mistake reads the
same wherever it is made.

jsonschema's own messages name Python reprs and JSONPath; these name the key, what was expected, what was found
and, where one is close, the key or value that was probably meant.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from typing import Any

from jsonschema.exceptions import ValidationError

from ._renames import RENAMED_COMPONENTS, RENAMED_PARAMS
from ._source import pointer_join

__all__ = ["Problem", "closest", "explain"]

Problem = tuple[str, str]  # (JSON pointer, message)

# Lists of allowed values are printed only when they are short enough to read.
MAX_LISTED_CHOICES = 24
# Keys older NetsPresso configs used, with today's name (see _migrate.py, which rewrites them).
OLD_KEYS = {
    **RENAMED_PARAMS,
    "fx_model_path": "fx_model_checkpoint",
    "plane": "channels",
    "layers": "num_blocks",
}
_BOUNDS = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}
_JSON_TYPES = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
    type(None): "null",
}


def explain(error: ValidationError, base: str = "") -> Iterator[Problem]:
    """The problems one schema error stands for, at pointers under ``base`` (the section's pointer in its file)."""
    if error.validator in ("anyOf", "oneOf") and error.context:
        best = max(error.context, key=lambda e: len(e.absolute_path))  # the branch that got furthest explains best
        if len(best.absolute_path) > len(error.absolute_path):
            yield from explain(best, base)
            return
    pointer = base
    for token in error.absolute_path:
        pointer = pointer_join(pointer, token)
    kind = error.validator
    if kind == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        for key in sorted(set(error.instance) - set(allowed)):
            yield pointer_join(pointer, key), _unknown_key(key, allowed)
    elif kind == "enum":
        yield pointer, _not_in_enum(error.instance, error.validator_value, pointer)
    elif kind == "const":
        yield pointer, f"must be {error.validator_value!r}"
    elif kind == "type":
        yield pointer, _wrong_type(error.instance, error.validator_value)
    elif kind == "required":
        missing = re.findall(r"'([^']+)' is a required property", error.message)
        yield pointer, f"missing required key {missing[0]!r}" if missing else error.message
    elif kind in _BOUNDS:
        yield pointer, f"must be {_BOUNDS[kind]} {error.validator_value}, got {error.instance!r}"
    elif kind in ("minItems", "maxItems"):
        bound = "at least" if kind == "minItems" else "at most"
        yield pointer, f"expected {bound} {error.validator_value} item(s), got {len(error.instance)}"
    elif kind in ("anyOf", "oneOf") and _branch_types(error.validator_value):
        yield pointer, _wrong_type(error.instance, _branch_types(error.validator_value))
    elif kind == "not" and pointer == "/model":
        yield (
            pointer_join(pointer, "fx_model_checkpoint"),
            "only one of checkpoint and fx_model_checkpoint may have a value; remove one of them",
        )
    else:
        yield pointer, error.message


def _branch_types(branches: list[Any]) -> list[str]:
    """The JSON types the branches of an anyOf/oneOf accept, when each names its type ([] otherwise)."""
    types: list[str] = []
    for branch in branches:
        kind = branch.get("type") if isinstance(branch, dict) else None
        if kind is None:
            return []
        types += [kind] if isinstance(kind, str) else kind
    return list(dict.fromkeys(types))


def closest(word: Any, choices: list[str] | tuple[str, ...]) -> str | None:
    matches = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _unknown_key(key: str, allowed: list[str]) -> str:
    renamed = OLD_KEYS.get(key)
    if renamed not in allowed and key != "fx_model_path":  # the name was not this component's
        renamed = None
    hint = closest(key, allowed)
    message = f"unknown key {key!r}"
    if renamed:
        message += f"; an older NetsPresso name (now {renamed!r}): `npc migrate FILE` rewrites the file"
    elif hint:
        message += f"; did you mean {hint!r}?"
    if allowed and len(allowed) <= MAX_LISTED_CHOICES:
        message += f" (allowed: {', '.join(allowed)})"
    return message


def _not_in_enum(value: Any, choices: list[Any], pointer: str) -> str:
    names = [c for c in choices if isinstance(c, str)]
    what = _component_kind(pointer)
    message = f"unknown {what} {value!r}" if what else f"{value!r} is not allowed"
    hint = closest(value, names) if isinstance(value, str) else None
    if what and isinstance(value, str) and value in RENAMED_COMPONENTS:
        message += f"; an older NetsPresso name (now {RENAMED_COMPONENTS[value]!r}): `npc migrate FILE` rewrites it"
    elif hint:
        message += f"; did you mean {hint!r}?"
    if len(choices) <= MAX_LISTED_CHOICES or what:
        message += f" (allowed: {', '.join(repr(c) if not isinstance(c, str) else c for c in choices)})"
    return message


def _component_kind(pointer: str) -> str | None:
    match = re.fullmatch(r"/model/architecture/(backbone|neck|head|full)/name", pointer)
    if match:
        return match.group(1)
    if re.fullmatch(r"/model/losses/\d+/criterion", pointer):
        return "loss"
    return None


def _wrong_type(value: Any, expected: str | list[str]) -> str:
    expected = [expected] if isinstance(expected, str) else expected
    if "number" in expected and isinstance(value, str) and value.lower().lstrip("+-.") in ("inf", "nan"):
        return f"must be a finite number, got {value!r}"
    got = _JSON_TYPES.get(type(value), type(value).__name__)
    if value is None:
        return f"expected {' or '.join(expected)}, got null"
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    message = f"expected {' or '.join(expected)}, got {got} {shown}"
    if "integer" in expected and isinstance(value, float) and value.is_integer():
        message += f"; write {int(value)} (in an expression: round(...) or int(...))"
    return message
