"""Read a spec file (YAML or JSON) into plain Python data plus a map from JSON pointer to (line, column).

YAML is read by ``_fast_yaml`` (libyaml composes, ruamel.yaml's YAML 1.2 rules resolve scalars) when it can
give exactly what ruamel.yaml's round-trip loader gives, and otherwise by that loader, which keeps positions,
resolves anchors/aliases and refuses duplicate keys, tags and non-string keys with the messages `npc validate`
prints. JSON is parsed by the stdlib (duplicate keys refused through ``object_pairs_hook``); positions are found
only when asked for, by walking the text once more as YAML (JSON is YAML 1.2), fast path first.
"""

from __future__ import annotations

import json
import math
from datetime import date
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, SequenceNode
from ruamel.yaml.scalarbool import ScalarBoolean

from ._fast_yaml import fast_load
from ._source import MAX_DEPTH, MAX_NODES, MAX_SPEC_BYTES, LazyPositions, LoadError, Source, pointer_join

__all__ = ["LoadError", "Source", "load_document", "load_file", "load_text", "pointer_join"]


def load_file(path: str | Path) -> Source:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise LoadError(str(path), f"cannot read file: {exc.strerror or exc}") from None
    if len(raw) > MAX_SPEC_BYTES:
        raise LoadError(str(path), f"file is {len(raw)} bytes; specs are limited to {MAX_SPEC_BYTES} bytes")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise LoadError(str(path), f"not UTF-8 text (byte {exc.start})", line, col) from None
    return load_document(text, str(path))


def load_document(text: str, path: str) -> Source:
    """``text`` read in the form ``path``'s suffix names: .npc, .json, or else YAML (as ``npc validate`` does)."""
    suffix = Path(path).suffix.lower()
    if suffix == ".npc":  # the block language of docs/language.md, lowered to the same data model
        from ._text_format import load_npc_text

        return load_npc_text(text, path)
    return load_text(text, path, is_json=suffix == ".json")


def load_text(text: str, path: str = "<string>", *, is_json: bool = False) -> Source:
    if not text.strip() or (
        not is_json and all(not line.strip() or line.lstrip().startswith("#") for line in text.splitlines())
    ):
        raise LoadError(path, "the file is empty: a spec is a mapping with a top-level `model:` key")
    if is_json:
        return Source(_parse_json(text, path), path, LazyPositions(lambda: _json_positions(text, path)))
    fast = fast_load(text, MAX_NODES, MAX_DEPTH)
    if fast is not None:
        return Source(fast[0], path, fast[1])
    return _load_yaml_ruamel(text, path)


def _load_yaml_ruamel(text: str, path: str) -> Source:
    """The reference reading of YAML (ruamel.yaml round-trip); ``_fast_yaml`` must agree with it where it answers."""
    node = _parse_yaml(text, path)
    try:
        data = _plain(node, path, "", 0, [0])
    except LoadError as exc:
        if exc.line is None and exc.pointer:  # locate it through the key that holds the value
            exc.line, exc.col = Source(None, path, _positions(node)).position(exc.pointer) or (None, None)
        elif exc.line is None and exc.pointer == "":  # the document itself: where its node starts
            mark = YAML(typ="rt").compose(text).start_mark
            exc.line, exc.col = mark.line + 1, mark.column + 1
        raise
    return Source(data, path, _positions(node))


def _json_positions(text: str, path: str) -> dict[str, tuple[int, int]]:
    fast = fast_load(text, MAX_NODES, MAX_DEPTH)
    return fast[1] if fast is not None else _json_positions_ruamel(text, path)


def _json_positions_ruamel(text: str, path: str) -> dict[str, tuple[int, int]]:
    try:
        return _positions(_parse_yaml(text, path))  # JSON is YAML 1.2, and ruamel records where each node sits
    except LoadError:  # valid JSON that YAML reads differently (e.g. tabs): no positions, still valid
        return {}


def _parse_json(text: str, path: str) -> Any:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in pairs:
            if key in seen:
                raise LoadError(path, f"invalid JSON: duplicate key {key!r}", *_duplicate_position(text, path))
            seen[key] = value
        return seen

    def no_constant(name: str) -> Any:
        offset = text.find(name)
        line = text.count("\n", 0, offset) + 1 if offset >= 0 else None
        col = offset - text.rfind("\n", 0, offset) if offset >= 0 else None
        raise LoadError(path, f"{name} is not valid JSON (numbers must be finite)", line, col)

    try:
        data = json.loads(text, object_pairs_hook=no_duplicates, parse_constant=no_constant)
    except json.JSONDecodeError as exc:
        raise LoadError(path, f"invalid JSON: {exc.msg}", exc.lineno, exc.colno) from None
    except RecursionError:
        raise LoadError(path, f"nesting deeper than {MAX_DEPTH} levels") from None
    _check_depth(data, path)
    return data


def _check_depth(data: Any, path: str) -> None:
    stack = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise LoadError(path, f"nesting deeper than {MAX_DEPTH} levels")
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        stack.extend((child, depth + 1) for child in children)


def _parse_yaml(text: str, path: str) -> Any:
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        return yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(str(part).strip() for part in (exc.problem, exc.context) if part)
        if "duplicate key" in str(exc):
            problem = f"duplicate key {_duplicate_key_name(exc)}"
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        raise LoadError(path, f"invalid YAML: {problem or exc}", line, col) from None
    except TypeError:  # ruamel cannot hash a mapping or list used as a key (`- {a: 1}:` has a stray colon)
        raise _complex_key_error(yaml, text, path) from None
    except (YAMLError, RecursionError, ValueError) as exc:
        raise LoadError(path, f"invalid YAML: {exc}") from None


def _complex_key_error(yaml: YAML, text: str, path: str) -> LoadError:
    """Locate the first mapping or list used as a mapping key by walking the composed (unhashed) node tree."""
    stack: list[tuple[Node, str]] = [(yaml.compose(text), "")]
    while stack:
        node, pointer = stack.pop()
        if isinstance(node, MappingNode):
            for key, value in node.value:
                if isinstance(key, (MappingNode, SequenceNode)):
                    line, col = key.start_mark.line + 1, key.start_mark.column + 1
                    message = "a mapping key is itself a mapping or list (a stray ':' after a {...} or [...]?)"
                    return LoadError(path, message, line, col, pointer)
                stack.append((value, pointer_join(pointer, getattr(key, "value", ""))))
        elif isinstance(node, SequenceNode):
            stack.extend((child, pointer_join(pointer, i)) for i, child in enumerate(node.value))
    return LoadError(path, "invalid YAML: a mapping key is not a plain value")


def _duplicate_position(text: str, path: str) -> tuple[int | None, int | None]:
    """JSON is YAML 1.2, and ruamel's parser reports where a duplicate key sits; the json module does not."""
    try:
        _parse_yaml(text, path)
    except LoadError as exc:
        return exc.line, exc.col
    return None, None


def _duplicate_key_name(exc: MarkedYAMLError) -> str:
    text = str(exc.problem or "")
    return text.split("key", 1)[-1].split("already", 1)[0].strip() or "(see position)"


def _plain(node: Any, path: str, pointer: str, depth: int, count: list[int]) -> Any:
    """ruamel's round-trip types → plain dict/list/str/int/float/bool/None (aliases expanded, within limits)."""
    if depth > MAX_DEPTH:
        raise LoadError(path, f"nesting deeper than {MAX_DEPTH} levels")
    count[0] += 1
    if count[0] > MAX_NODES:
        raise LoadError(path, f"more than {MAX_NODES} values (after expanding YAML aliases)")
    _refuse_custom_tag(node, path, pointer)
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if not isinstance(key, str):
                line, col = _key_position(node, key)
                if isinstance(key, (int, float, date)) or key is None:
                    message = f"mapping key {key!r} is not a string (quote it)"
                else:  # ruamel's hashable stand-ins for a flow mapping or list used as a key
                    message = "a mapping key is itself a mapping or list (a stray ':' after a {...} or [...]?)"
                raise LoadError(path, message, line, col, pointer)
            out[key] = _plain(value, path, pointer_join(pointer, key), depth + 1, count)
        return out
    if isinstance(node, list):
        return [_plain(v, path, pointer_join(pointer, i), depth + 1, count) for i, v in enumerate(node)]
    if isinstance(node, ScalarBoolean):  # an anchored boolean (`&x false`) is an int subclass in ruamel
        return bool(node)
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        value = float(node)
        return value if math.isfinite(value) else str(node)  # .inf/.nan stay text: the schema rejects them
    if isinstance(node, str):
        return str(node)
    return str(node)  # dates, timestamps: text, so the schema reports a type error rather than us crashing


def _refuse_custom_tag(node: Any, path: str, pointer: str) -> None:
    """Application tags (``!include``, ``!env``) mean something only to the tool that defined them: refuse them."""
    tag = getattr(getattr(node, "tag", None), "value", None)
    if isinstance(tag, str) and tag.startswith("!") and not tag.startswith("!!"):
        where = getattr(node, "lc", None)
        line = where.line + 1 if where is not None and where.line is not None else None
        col = where.col + 1 if line is not None and where.col is not None else None
        message = f"unsupported YAML tag {tag} (npc specs are plain data: no includes or environment lookups)"
        raise LoadError(path, message, line, col, pointer)


def _key_position(node: CommentedMap, key: Any) -> tuple[int | None, int | None]:
    try:
        line, col = node.lc.key(key)
        return line + 1, col + 1
    except (KeyError, AttributeError, TypeError):
        return None, None


def _positions(root: Any) -> dict[str, tuple[int, int]]:
    positions: dict[str, tuple[int, int]] = {}
    stack: list[tuple[Any, str]] = [(root, "")]
    if isinstance(root, (CommentedMap, CommentedSeq)) and root.lc.line is not None:
        positions[""] = (root.lc.line + 1, root.lc.col + 1)
    while stack and len(positions) <= MAX_NODES:
        node, pointer = stack.pop()
        if isinstance(node, CommentedMap):
            for key, value in node.items():
                child = pointer_join(pointer, key)
                line, col = _key_position(node, key)
                if line is not None:
                    positions[child] = (line, col)
                stack.append((value, child))
        elif isinstance(node, CommentedSeq):
            for index, value in enumerate(node):
                child = pointer_join(pointer, index)
                try:
                    line, col = node.lc.item(index)
                    positions[child] = (line + 1, col + 1)
                except (KeyError, AttributeError, TypeError):
                    pass
                stack.append((value, child))
    return positions
