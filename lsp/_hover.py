"""Hover: what a component is and what the compiler inferred for it here; what a param means; what an
expression evaluates to."""

from __future__ import annotations

import json
import re
from typing import Any

from ..compiler import registry
from ..compiler._graph import INPUT
from ..spec import Diagnostic, Source, resolve_expressions
from ._analysis import Analysis, value_at
from ._places import Place, family, param_schema, place_of
from ._ranges import Span, diagnostic_span

__all__ = ["hover"]


def hover(analysis: Analysis, line: int, col: int) -> tuple[str, Span | None] | None:
    """Markdown for the key or value at (line, col), 0-based, and the span it describes; None when nothing."""
    pointer = analysis.pointer_at(line, col)
    loaded = analysis.written or analysis.source  # names as written; the resolved document when it alone loads
    if pointer is None or loaded is None:
        return None
    document = loaded.data
    sections = []
    place = place_of(pointer)
    cls = family(place, document) if place else None
    if place and cls and place.what == "component":
        sections.append(_component(cls, place, analysis))
    elif place and cls and param_schema(cls, place) is not None:
        sections.append(_param(place.key or "", param_schema(cls, place)))
    expression = _expression(analysis, document, pointer)
    if expression:
        sections.append(expression)
    if not sections:
        return None
    return "\n\n".join(sections), _span(analysis, pointer)


def _span(analysis: Analysis, pointer: str) -> Span | None:
    line, col = analysis.positions().get(pointer, (None, None))
    if line is None:
        return None
    return diagnostic_span(analysis.lines, Diagnostic(analysis.path, pointer, "", line, col))


def _component(cls: type[registry.Component], place: Place, analysis: Analysis) -> str:
    lines = [f"**{cls.kind} `{cls.name}`** — {cls.summary()}", "", f"Tasks: {', '.join(cls.tasks)}"]
    if cls.template is None:
        lines.append("\nValidated, but npc cannot compile it yet.")
    node = analysis.graph.graph["components"].get(place.kind) if analysis.graph is not None else None
    if node is not None and node.built is not None:
        lines += ["", "Inferred in this spec:", *_features(analysis.graph, node)]
        lines += ["", "Params (defaults filled in):", "```json", json.dumps(node.params, indent=1), "```"]
    elif place.kind != "loss":
        lines.append("\n(Inferred channels and strides show once the spec is valid.)")
    return "\n".join(lines)


def _features(graph: Any, node: Any) -> list[str]:
    built = node.built
    entry = graph.graph.get("stages", {}).get(node.kind, [node.kind])[0]
    inputs = [data["feature"] for _, _, data in graph.in_edges(entry, data=True) if "feature" in data]
    from_image = any(source == INPUT for source, _ in graph.in_edges(entry))
    rows = [f"- input: {_levels(inputs)}" + (" (the image)" if from_image else "")]
    if built.stages:
        rows.append(f"- stages: {_levels(built.stages)}")
    rows.append(f"- output: {_levels(built.outputs)}")
    if built.output_keys:
        rows.append(f"- returns: {', '.join(built.output_keys)}")
    return rows


def _levels(features: Any) -> str:
    """Channels × stride per level, as `npc graph` labels its edges."""
    return ", ".join(f"{f.channels}ch /{f.stride}" for f in features) or "—"


def _param(key: str, schema: dict[str, Any]) -> str:
    lines = [f"**`{key}`**" + (f" — {schema['description']}" if schema.get("description") else "")]
    kinds = schema.get("type")
    if kinds:
        lines.append(f"- type: {' or '.join(kinds) if isinstance(kinds, list) else kinds}")
    if "default" in schema:
        lines.append(f"- default: `{json.dumps(schema['default'])}`")
    if "enum" in schema:
        lines.append(f"- allowed: {', '.join(f'`{json.dumps(v)}`' for v in schema['enum'])}")
    bounds = [f"{word} {schema[name]}" for name, word in (("minimum", "≥"), ("maximum", "≤")) if name in schema]
    if bounds:
        lines.append(f"- range: {', '.join(bounds)}")
    return "\n".join(lines)


def _expression(analysis: Analysis, document: Any, pointer: str) -> str | None:
    """``"=..."``: the value it resolved to (after inference for values that read the compiler's)."""
    try:
        text = value_at(document, pointer)
    except KeyError:
        return None
    if not (isinstance(text, str) and text.startswith("=")):
        return None
    if re.fullmatch(r"/vars/[A-Za-z_]\w*", pointer):  # needs only the vars to be right
        return _var(text, pointer.rsplit("/", 1)[1], document, analysis.path)
    if analysis.source is None or analysis.diagnostics:
        return f"`{text}` — not evaluated: the spec has problems (see the diagnostics)"
    late = analysis.source.late
    if late is not None and pointer in late.texts:
        graph = analysis.graph
        resolved = graph.graph.get("late_values", {}).get(pointer) if graph is not None else None
        if resolved is None:
            return f"`{text}` — reads values the compiler infers; not resolved"
        return f"`{text}` = `{json.dumps(resolved[1])}` (from what the compiler inferred)"
    try:
        value = value_at(analysis.source.data, pointer)
    except KeyError:
        return None
    return f"`{text}` = `{json.dumps(value)}`"


def _var(text: str, name: str, document: Any, path: str) -> str:
    """A var's value: the spec's own resolver evaluates a probe that reads it (vars leave the resolved document)."""
    probe = Source({"vars": document.get("vars"), "probe": f"={name}"}, path)
    resolved, problems = resolve_expressions(probe)
    own = [d.message for d in problems if d.pointer == f"/vars/{name}"]
    if own:
        return f"`{text}` — {own[0]}"
    reached = isinstance(resolved.data, dict) and "probe" in resolved.data
    if not reached or any(d.pointer == "/probe" for d in problems):  # a value only the compiler can know
        return f"`{text}` — reads values the compiler infers; its value shows where it is used"
    return f"`{text}` = `{json.dumps(resolved.data['probe'])}`"
