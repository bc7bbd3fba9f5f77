"""Where the cursor is in a spec that is being typed (and so often does not parse): the path of keys from the
document's root to the mapping that holds it, whether it is at a key or at a value, and what is typed so far.

One reader per form, each working on the text alone: YAML by indentation, JSON and .npc by their brackets. The
result speaks in document terms (``["model", "architecture", "backbone", "params"]``; ``"[]"`` for a list item),
so completion is written once for all three forms.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["Cursor", "cursor_at"]

SLOTS = ("backbone", "neck", "head", "full")


@dataclass
class Cursor:
    path: list[str]  # keys from the root to the mapping (or list) the cursor is in; "[]" for a list item
    key: str | None  # at a value: the key it belongs to; None at a key
    prefix: str  # the part of the word already typed (without an opening quote)
    quoted: bool = False  # the typed word opened a quote (JSON/.npc strings)
    siblings: dict[str, str] = field(default_factory=dict)  # keys beside the cursor -> their value as written
    component: str | None = None  # .npc: the component or loss the statement names (`backbone resnet(`)
    statement: str | None = None  # .npc: a slot or `loss` word typed at a statement start, awaiting its name
    enclosing: dict[tuple[str, ...], dict[str, str]] = field(default_factory=dict)  # JSON: each outer object's keys
    lead: str = ""  # what a value must start with (YAML `name:|` needs a space)


def cursor_at(text: str, form: str, line: int, col: int) -> Cursor | None:
    lines = text.split("\n")
    if not 0 <= line < len(lines):
        return None
    col = min(col, len(lines[line]))
    if form == "yaml":
        return _yaml_cursor(lines, line, col)
    offset = sum(len(row) + 1 for row in lines[:line]) + col
    return _json_cursor(text, offset) if form == "json" else _npc_cursor(text, offset)


# ---- YAML: indentation ---------------------------------------------------------------------------------------

_YAML_KEY = re.compile(r"^(\s*)((?:-\s+)*)([^\s:#'\"][^:#]*?|\"[^\"]*\"|'[^']*')\s*:(?:\s+(.*?))?\s*(?:\s#.*)?$")
_YAML_AT_KEY = re.compile(r"^(\s*)((?:-\s+)*)([\w$.-]*)$")
_YAML_AT_VALUE = re.compile(r"^(\s*)((?:-\s+)*)([\w$.\"'-]+)\s*:(\s*)([\"']?)([^\"'#]*)$")


def _yaml_cursor(lines: list[str], line: int, col: int) -> Cursor | None:
    before = lines[line][:col]
    flow = before.rfind("{")
    if flow > before.rfind("}") and flow >= 0:  # inside `- {channels: 64, num_|`
        return _yaml_flow_cursor(lines, line, before, flow)
    at_key, at_value = _YAML_AT_KEY.match(before), _YAML_AT_VALUE.match(before)
    if at_value:
        level = len(at_value.group(1)) + len(at_value.group(2))
        key, quote, prefix = _unquote(at_value.group(3)), at_value.group(5), at_value.group(6)
        lead = "" if at_value.group(4) or quote or prefix else " "  # `name:|` needs the space before the value
    elif at_key:
        level = len(at_key.group(1)) + len(at_key.group(2))
        key, quote, prefix, lead = None, "", at_key.group(3), ""
    else:
        return None
    in_item = bool((at_value or at_key).group(2))
    path, siblings = _yaml_path(lines, line, level, in_item)
    return Cursor(path, key, prefix, bool(quote), siblings, lead=lead)


def _yaml_flow_cursor(lines: list[str], line: int, before: str, flow: int) -> Cursor:
    head = re.match(r"^(\s*)((?:-\s+)*)", before)
    level = len(head.group(1)) + len(head.group(2))
    path, _ = _yaml_path(lines, line, level, bool(head.group(2)))
    inner = before[flow + 1 :]
    written = dict(_flow_pairs(lines[line][flow + 1 :]))
    current = inner.rsplit(",", 1)[-1]
    if ":" in current:
        key, value = current.split(":", 1)
        return Cursor(path, key.strip(), value.strip().strip("\"'"), value.strip()[:1] in "\"'", written)
    return Cursor(path, None, current.strip(), False, written)


def _flow_pairs(text: str) -> list[tuple[str, str]]:
    body = text.split("}", 1)[0]
    return [(k.strip(), v.strip()) for k, _, v in (p.partition(":") for p in body.split(",")) if k.strip()]


def _yaml_path(lines: list[str], line: int, level: int, in_item: bool) -> tuple[list[str], dict[str, str]]:
    """Keys of the mappings that hold the one at ``level`` on ``line``, by walking up to shallower keys; and the
    keys beside it (same level, same list item)."""
    siblings = _yaml_siblings(lines, line, level, in_item)
    path: list[str] = []
    current, item = level, in_item
    for index in range(line - 1, -1, -1):
        match = _YAML_KEY.match(lines[index])
        if not match:
            continue
        key_col = len(match.group(1)) + len(match.group(2))
        if key_col == current and match.group(2) and len(match.group(1)) < current:
            item = True  # a sibling opens the list item the cursor is in
        if key_col < current:
            path[:0] = [_unquote(match.group(3))] + (["[]"] if item else [])
            current, item = key_col, bool(match.group(2))
    return path, siblings


def _yaml_siblings(lines: list[str], line: int, level: int, in_item: bool) -> dict[str, str]:
    found: dict[str, str] = {}
    for step in (-1, 1):
        index = line + step
        while 0 <= index < len(lines):
            match = _YAML_KEY.match(lines[index])
            indent = len(lines[index]) - len(lines[index].lstrip())
            if lines[index].strip() and not lines[index].lstrip().startswith("#") and indent < level and not match:
                break
            if match:
                key_col = len(match.group(1)) + len(match.group(2))
                if key_col < level:
                    break
                opens_item = bool(match.group(2)) and len(match.group(1)) < level
                if key_col == level and (step == -1 or not opens_item):
                    found.setdefault(_unquote(match.group(3)), (match.group(4) or "").strip("\"'"))
                if opens_item and (step == 1 or in_item):
                    break  # another list item begins (below), or this item began (above)
            index += step
    return found


def _unquote(word: str) -> str:
    return word[1:-1] if len(word) >= 2 and word[0] == word[-1] and word[0] in "\"'" else word


# ---- JSON and .npc: brackets -------------------------------------------------------------------------------

_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"?')
_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"?|#[^\n]*|[{}\[\]():,]|\n|=|[A-Za-z_$][\w.$-]*|-?[\d.][\w.+-]*|[^\s]')


@dataclass
class _Frame:
    bracket: str  # "{", "[" or "("
    holder: list[str]  # document keys this container adds to the path
    words: list[str] = field(default_factory=list)  # .npc: the statement that opened it (`backbone resnet`)
    keys: dict[str, str] = field(default_factory=dict)  # keys written in it -> their value (strings unquoted)
    pending: str | None = None  # the key whose value comes next
    expect_value: bool = False
    statement: list[str] = field(default_factory=list)  # .npc: words of the statement being written


def _tokens(text: str) -> list[tuple[int, str]]:
    """(offset, token) pairs, comments dropped; a `=` expression is one token up to a separator outside its own
    brackets (`=round(64 * w)`)."""
    tokens, index = [], 0
    while True:
        match = _TOKEN.search(text, index)
        if match is None:
            return tokens
        start, token = match.start(), match.group()
        if token.startswith("="):
            token = text[start : _expression_end(text, start)]
        if not token.startswith("#"):
            tokens.append((start, token))
        index = start + max(len(token), 1)


def _expression_end(text: str, start: int) -> int:
    depth, index = 0, start + 1
    while index < len(text):
        char = text[index]
        if char in "([{":
            depth += 1
        elif char in ")]}":
            if depth == 0:
                break
            depth -= 1
        elif char in ",\n" and depth == 0:
            break
        elif char == '"':
            index = _STRING.match(text, index).end() - 1
        index += 1
    return index


def _json_cursor(text: str, offset: int) -> Cursor | None:
    stack = [_Frame("^", [])]  # the document itself, around its top-level value
    last = None
    for start, token in _tokens(text):
        if start >= offset or (start + len(token) >= offset and token.startswith('"') and _open_string(token)):
            last = (start, token) if start < offset else None
            break
        _json_step(stack, token)
    frame = stack[-1]
    partial = text[last[0] : offset] if last else ""
    if frame.bracket != "{" and not frame.expect_value:
        return None
    path = [key for f in stack for key in f.holder]
    key = frame.pending if frame.expect_value else None
    _json_rest(text, offset, frame)
    enclosing, prefix = {}, []
    for outer in stack:
        prefix += outer.holder
        enclosing[tuple(prefix)] = outer.keys
    return Cursor(path, key, partial.lstrip('"'), partial.startswith('"'), frame.keys, enclosing=enclosing)


def _open_string(token: str) -> bool:
    return len(token) == 1 or not token.endswith('"') or token.endswith('\\"')


def _json_step(stack: list[_Frame], token: str) -> None:
    frame = stack[-1]
    if token in "{[":
        holder = [] if frame.bracket == "^" else [frame.pending or ""] if frame.bracket == "{" else ["[]"]
        stack.append(_Frame(token, holder))
        frame.expect_value = False
    elif token in "}]" and len(stack) > 1:
        stack.pop()
    elif token == ":":
        frame.expect_value = True
    elif token == ",":
        frame.expect_value, frame.pending = False, None if frame.bracket == "{" else frame.pending
    elif token.startswith('"') and frame.bracket == "{" and not frame.expect_value:
        frame.pending = token.strip('"')
        frame.keys.setdefault(frame.pending, "")
    elif frame.expect_value and frame.pending is not None:
        frame.keys[frame.pending] = token.strip('"')
        frame.expect_value = False


def _json_rest(text: str, offset: int, frame: _Frame) -> None:
    """Keys written after the cursor in the same object count as written too."""
    depth, expect_key = 0, False
    for _, token in _tokens(text[offset:]):
        if token in "{[":
            depth += 1
        elif token in "}]":
            depth -= 1
            if depth < 0:
                return
        elif depth == 0 and token == ",":
            expect_key = True
        elif depth == 0 and expect_key and token.startswith('"'):
            frame.keys.setdefault(token.strip('"'), "")
            expect_key = False


def _npc_cursor(text: str, offset: int) -> Cursor | None:
    stack = [_Frame("{", [])]
    partial = ""
    for start, token in _tokens(text):
        if start >= offset:
            break
        if start + len(token) >= offset and (re.match(r"[\w$\"]", token) and not token.startswith("=")):
            partial = text[start:offset]
            break
        _npc_step(stack, token)
    frame = stack[-1]
    path = [key for f in stack for key in f.holder]
    component = _npc_component(stack)
    if frame.expect_value:
        return Cursor(path, frame.pending, partial.lstrip('"'), partial.startswith('"'), frame.keys, component)
    if frame.bracket == "{" and frame.statement and frame.statement[0] in (*SLOTS, "loss"):
        if len(frame.statement) == 1:  # `backbone |`: the name comes next
            return Cursor(path, None, partial, False, frame.keys, component, statement=frame.statement[0])
    if frame.statement:
        return None  # in the middle of a statement that is not a key
    return Cursor(path, None, partial, False, frame.keys, component)


def _npc_step(stack: list[_Frame], token: str) -> None:
    frame = stack[-1]
    if token in "{([":
        words = frame.statement if token != "[" else []
        holder = _npc_holder(stack, token, words, frame)
        stack.append(_Frame(token, holder, list(words)))
        frame.statement, frame.expect_value = [], False
    elif token in "})]":
        closed = stack.pop() if len(stack) > 1 else None
        # `backbone resnet(...) { ... }`: after the arguments the statement goes on, its body comes next
        stack[-1].statement = list(closed.words) if closed is not None and token == ")" else []
        stack[-1].expect_value = False
    elif token == ":":
        if frame.statement:
            frame.pending = frame.statement[-1].strip('"')
            frame.keys.setdefault(frame.pending, "")
        frame.expect_value = True
    elif token in (",", "\n"):
        frame.statement, frame.expect_value = [], False
    elif frame.expect_value:
        frame.keys[frame.pending or ""] = token.strip('"')
        frame.expect_value = False
    else:
        frame.statement.append(token)


def _npc_holder(stack: list[_Frame], bracket: str, words: list[str], frame: _Frame) -> list[str]:
    """The document keys a `{` or `(` opens, from the statement before it (docs/language.md, Statements)."""
    in_model = [w for f in stack for w in f.holder] == ["model"]
    head = words[0] if words else ""
    if frame.expect_value and frame.pending:
        return [frame.pending] if bracket == "{" else ["[]"]
    if head == "model" and len(stack) == 1:
        return ["model"]
    if in_model and head in SLOTS:
        inline = head == "full" and bracket == "("
        return ["architecture", head] + ([] if bracket == "{" or inline else ["params"])
    if in_model and head == "loss":
        return ["losses", "[]"]
    if in_model and head == "postprocessor":
        return ["postprocessor", "params"]
    if head == "stage" and stack[-1].holder[-1:] and stack[-1].holder[-1] in SLOTS:
        return ["stage_params", "[]"]
    return [head.strip('"')] if head else []


def _npc_component(stack: list[_Frame]) -> str | None:
    for frame in reversed(stack):
        if len(frame.words) >= 2 and frame.words[0] in (*SLOTS, "loss"):
            return frame.words[1]
    return None
