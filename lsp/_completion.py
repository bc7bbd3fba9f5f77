"""Completion: component names for the slot and task at the cursor, the params (and stage params) not yet
written with their defaults as snippets, enum values, loss criteria for the task, and the plain keys of the
model, checkpoint and architecture sections (from the JSON Schema). The same answers in YAML, JSON and .npc."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

from lsprotocol import types

from ..compiler import registry
from ..schemas import build_schema
from ..spec import LoadError
from ..spec._load import load_document
from ._analysis import Analysis
from ._cursor import SLOTS, Cursor, cursor_at

__all__ = ["completions"]

_TASK = {
    "yaml": re.compile(r"^\s+task\s*:\s*['\"]?(\w+)", re.MULTILINE),
    "json": re.compile(r"\"task\"\s*:\s*\"(\w+)\""),
    "npc": re.compile(r"^\s*model\b[^:{\n]*:\s*(\w+)", re.MULTILINE),
}


def completions(analysis: Analysis, line: int, col: int) -> list[types.CompletionItem]:
    cursor = cursor_at(analysis.text, analysis.form, line, col) if analysis.is_spec else None
    if cursor is None:
        return []
    task = _task(analysis)
    if cursor.statement:  # .npc: `backbone |` or `loss |`
        kind = "loss" if cursor.statement == "loss" else cursor.statement
        return _names(kind, task, analysis.form, quoted=False, lead="")
    kind = _slot(cursor.path)
    document = _document(analysis, line) if kind else None
    if cursor.key is not None:
        return _values(cursor, kind, task, analysis.form, document)
    return _keys(cursor, kind, analysis.form, document)


def _task(analysis: Analysis) -> str | None:
    match = _TASK[analysis.form].search(analysis.text)
    return match.group(1) if match and match.group(1) in registry.TASKS else None


def _slot(path: list[str]) -> str | None:
    """backbone/neck/head/full for a path inside ``model.architecture.<slot>``, loss inside ``model.losses[]``."""
    if path[:2] == ["model", "architecture"] and len(path) > 2 and path[2] in SLOTS:
        return path[2]
    if path[:3] == ["model", "losses", "[]"]:
        return "loss"
    return None


def _names(kind: str, task: str | None, form: str, quoted: bool, lead: str) -> list[types.CompletionItem]:
    items = []
    for cls in registry.list_components(kind):
        if task and task not in cls.tasks:
            continue
        text = lead + (json.dumps(cls.name) if form == "json" and not quoted else cls.name)
        detail = f"{kind} · {', '.join(cls.tasks)}" + ("" if cls.template else " · validated, not compiled")
        items.append(
            types.CompletionItem(
                label=cls.name,
                kind=types.CompletionItemKind.Class,
                detail=detail,
                documentation=cls.summary(),
                insert_text=text,
                filter_text=cls.name,
            )
        )
    return items


def _values(cursor: Cursor, kind: str | None, task: str | None, form: str, document: Any) -> list[types.CompletionItem]:
    path, key = cursor.path, cursor.key
    quoted = cursor.quoted
    if kind in SLOTS and path[3:] == [] and key == "name":
        return _names(kind, task, form, quoted, cursor.lead)
    if kind == "loss" and path[3:] == [] and key == "criterion":
        return _names("loss", task, form, quoted, cursor.lead)
    table = _params_at(cursor, kind, document) if kind else None
    schema = (table or {}).get(key) if kind else _schema_at(path + [key])
    if not schema:
        return []
    if key == "task" and path == ["model"]:
        schema = {"enum": list(registry.TASKS)}
    choices = schema.get("enum") or ([True, False] if _types(schema) == ["boolean"] else [])
    return [_value_item(value, form, quoted, cursor.lead) for value in choices]


def _value_item(value: Any, form: str, quoted: bool, lead: str) -> types.CompletionItem:
    label = value if isinstance(value, str) else json.dumps(value)
    if isinstance(value, str) and form != "yaml" and not quoted:
        text = json.dumps(value)
    else:
        text = label
    return types.CompletionItem(label=label, kind=types.CompletionItemKind.EnumMember, insert_text=lead + text)


def _types(schema: dict) -> list[str]:
    kinds = schema.get("type", [])
    return [kinds] if isinstance(kinds, str) else list(kinds)


def _component_name(cursor: Cursor, kind: str, document: Any) -> str | None:
    if cursor.component:
        return cursor.component
    if kind == "loss":
        return cursor.siblings.get("criterion")
    if kind == "full" and cursor.path[3:] == []:
        return cursor.siblings.get("name")
    written = cursor.enclosing.get(("model", "architecture", kind), {}).get("name")
    if written:
        return written
    try:
        name = document["model"]["architecture"][kind]["name"]
    except (KeyError, TypeError, IndexError):
        return None
    return name if isinstance(name, str) else None


def _document(analysis: Analysis, line: int) -> Any:
    """The document as written; while it does not load, the document without the line being typed (which
    usually does)."""
    if analysis.written is not None:
        return analysis.written.data
    rows = analysis.text.split("\n")
    rows[line] = ""
    try:
        return load_document("\n".join(rows), analysis.path).data
    except LoadError:
        return None


def _family(cursor: Cursor, kind: str, document: Any) -> type[registry.Component] | None:
    name = _component_name(cursor, kind, document)
    try:
        return registry.get(kind, name) if name else None
    except registry.UnknownComponentError:
        return None


def _param_table(cursor: Cursor, kind: str, cls: type[registry.Component]) -> dict[str, dict] | None:
    """The params the mapping at the cursor takes: a component's params or one stage row's, or a loss's."""
    rest = cursor.path[3:]
    if kind == "loss" and not rest:
        return {**cls.params, "weight": {"type": "number", "default": 1.0, "description": "this loss's weight"}}
    if rest == ["params"] or (kind == "full" and not rest and cls.inline_params):
        return cls.params
    if rest == ["stage_params", "[]"] and isinstance(cls.stage_params, dict):
        return cls.stage_params.get("properties")
    return None


def _params_at(cursor: Cursor, kind: str, document: Any) -> dict[str, dict] | None:
    cls = _family(cursor, kind, document)
    return _param_table(cursor, kind, cls) if cls else None


def _keys(cursor: Cursor, kind: str | None, form: str, document: Any) -> list[types.CompletionItem]:
    if kind is not None:
        table = _params_at(cursor, kind, document)
    else:
        node = _schema_at(cursor.path)
        table = node.get("properties") if node else None
    statements = _npc_statements(cursor.path) if form == "npc" else []
    written = set(cursor.siblings)
    if form == "npc" and cursor.path == ["model"]:
        written |= {"name", "task"}  # the header says them: `model NAME : TASK {`
    return statements + [_key_item(key, schema, form) for key, schema in (table or {}).items() if key not in written]


def _npc_statements(path: list[str]) -> list[types.CompletionItem]:
    """The .npc statements that build a model body's slots and lists (docs/language.md, Statements)."""
    if path == ["model"]:
        words = {**{slot: f"{slot} ${{1:name}}($0)" for slot in SLOTS}, "loss": "loss ${1:criterion}($0)"}
        words["postprocessor"] = "postprocessor($0)"
    elif path[:2] == ["model", "architecture"] and path[2:] and path[2] in SLOTS and len(path) == 3:
        words = {"stage": "stage($0)"}
    else:
        return []
    return [
        types.CompletionItem(
            label=word,
            kind=types.CompletionItemKind.Keyword,
            insert_text=snippet,
            insert_text_format=types.InsertTextFormat.Snippet,
        )
        for word, snippet in words.items()
    ]


def _key_item(key: str, schema: dict, form: str) -> types.CompletionItem:
    default = schema.get("default")
    shown = _literal(default, form) if "default" in schema else ""
    name = json.dumps(key) if form == "json" else key
    snippet = f"{name}: ${{1:{_escape(shown)}}}" if shown else f"{name}: $0"
    return types.CompletionItem(
        label=key,
        kind=types.CompletionItemKind.Property,
        detail=" or ".join(_types(schema)) + (f" = {shown}" if shown else ""),
        documentation=schema.get("description"),
        insert_text=snippet,
        insert_text_format=types.InsertTextFormat.Snippet,
        filter_text=key,
    )


def _literal(value: Any, form: str) -> str:
    if form == "yaml":
        return "~" if value is None else value if isinstance(value, str) else json.dumps(value)
    return json.dumps(value)


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("$", "\\$").replace("}", "\\}")


@lru_cache(maxsize=1)
def _schema() -> dict:
    return build_schema()


def _schema_at(path: list[str]) -> dict | None:
    """The JSON Schema node for ``path`` through ``properties`` and ``items`` (following ``$ref``)."""
    node: Any = _resolve(_schema())
    for key in path:
        if key == "[]":
            node = node.get("items") if isinstance(node, dict) else None
        else:
            node = node.get("properties", {}).get(key) if isinstance(node, dict) else None
        if node is None:
            return None
        node = _resolve(node)
    return node if isinstance(node, dict) else None


def _resolve(node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node and node["$ref"].startswith("#/$defs/"):
        node = _schema()["$defs"][node["$ref"].split("/")[-1]]
    return node
