"""Pictures of a compiled graph: annotated Graphviz DOT and Mermaid, and SVG/PNG/PDF drawn by Graphviz ``dot``.

Nodes carry the component (or stage) name, the parameters the spec sets and, when the caller passes ``counts``, the
parameter count of the module behind the node (the runtime counts them: ``npc.runtime.tools.summary.parameter_counts``;
the compiler never imports torch). Backbone stages are drawn inside a box for their backbone; edges carry channels
× stride of every feature they pass. Without counts the labels simply omit them.

``write_graph(graph, "x.svg", counts=counts)`` picks the format from the suffix: ``.dot``/``.gv`` and ``.mmd``
are text; ``.svg``, ``.png`` and ``.pdf`` need the ``dot`` program (Debian/Ubuntu: ``apt-get install graphviz``);
without it they fail with :class:`PictureError` (exit 2) suggesting ``.dot`` or ``.mmd``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import networkx as nx

from .._atomic import AtomicWriteError, write_atomic
from ..errors import INVALID, UNUSABLE, NpcError
from ._graph import INPUT, POSTPROCESSOR, components

__all__ = [
    "IMAGE_SUFFIXES",
    "PictureError",
    "TEXT_SUFFIXES",
    "annotated_dot",
    "annotated_mermaid",
    "write_graph",
]

TEXT_SUFFIXES = (".dot", ".gv", ".mmd", ".json")
IMAGE_SUFFIXES = (".svg", ".png", ".pdf")
MAX_PARAMS_SHOWN = 4
MAX_VALUE_CHARS = 40
LINE_CHARS = 48
DEFAULT_NUM_CLASSES = 10
# Parameters per graph node (components, backbone stages, ``<component>.other`` for a stem) plus ``total``.
Counts = dict[str, int] | None


class PictureError(NpcError):
    """A picture that cannot be made (no Graphviz, unknown suffix, unwritable file)."""

    problem = UNUSABLE


# --- labels --------------------------------------------------------------------------------------------------------


def _value(value: Any) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (dict, list)):
        text = json.dumps(value, separators=(", ", ": "))
    else:
        text = str(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def _key_params(params: dict[str, Any] | None) -> list[str]:
    """The parameters the spec sets (not the defaults), a few of them, wrapped into short lines."""
    items = [(k, v) for k, v in (params or {}).items() if v is not None]
    parts = [f"{k}={_value(v)}" for k, v in items[:MAX_PARAMS_SHOWN]]
    if len(items) > MAX_PARAMS_SHOWN:
        parts.append(f"+{len(items) - MAX_PARAMS_SHOWN} more")
    lines: list[str] = []
    for part in parts:
        if lines and len(lines[-1]) + 2 + len(part) <= LINE_CHARS:
            lines[-1] += f", {part}"
        else:
            lines.append(part)
    return lines


def _params_line(counts: dict[str, int] | None, key: str) -> str | None:
    if counts is None or key not in counts:
        return None
    return f"{counts[key]:,} params"


def _features(features) -> str:
    """``64ch /8`` for one feature; ``3 maps: 64ch /8, /16, /32`` (or each in full) for several."""
    features = list(features)
    if len(features) == 1:
        return features[0].label()
    if len({f.channels for f in features}) == 1:
        strides = ", ".join(f"/{f.stride}" for f in features)
        return f"{len(features)} maps: {features[0].channels}ch {strides}"
    return f"{len(features)} maps: " + ", ".join(f.label() for f in features)


def _annotations(graph: nx.DiGraph, counts: dict[str, int] | None) -> dict[str, Any]:
    """Node labels (lists of lines), clusters (backbone name -> (label lines, stage nodes)) and edge labels."""
    records = {record.kind: record for record in components(graph)}
    stage_nodes = graph.graph.get("stages", {})
    labels: dict[str, list[str]] = {INPUT: ["input", "3×H×W"]}
    clusters: dict[str, tuple[list[str], list[str]]] = {}
    for kind, record in records.items():
        lines = [f"{kind}: {record.family.name}", *_key_params(record.raw_params)]
        if kind in stage_nodes:
            total = _params_line(counts, kind)
            other = counts.get(f"{kind}.other") if counts else None
            if total and other:
                total += f" ({other:,} outside the stages)"
            clusters[kind] = ([line for line in [*lines, total] if line], stage_nodes[kind])
            for index, name in enumerate(stage_nodes[kind]):
                stage = record.stage_params[index] if record.stage_params and index < len(record.stage_params) else {}
                feature = graph.nodes[name].get("feature")
                stage_lines = [f"stage {index}", *_key_params(stage if isinstance(stage, dict) else {})]
                if feature is not None:
                    stage_lines.append(f"out {feature.label()}")
                stage_lines.append(_params_line(counts, name) or "")
                labels[name] = [line for line in stage_lines if line]
        else:
            labels[kind] = [line for line in [*lines, _params_line(counts, kind)] if line]
    if graph.has_node(POSTPROCESSOR):  # not part of the module: no parameters
        labels[POSTPROCESSOR] = [
            graph.nodes[POSTPROCESSOR]["label"],
            *_key_params(graph.nodes[POSTPROCESSOR]["params"]),
        ]
    edges: dict[tuple[str, str], str] = {}
    for source, target, data in graph.edges(data=True):
        if target == POSTPROCESSOR:
            edges[(source, target)] = ", ".join(data.get("outputs") or ())
        elif source in records and records[source].built is not None:
            edges[(source, target)] = _features(records[source].built.outputs)
        elif data.get("feature") is not None:
            edges[(source, target)] = data["feature"].label()
        else:
            edges[(source, target)] = ""
    return {"labels": labels, "clusters": clusters, "edges": edges}


def _order(graph: nx.DiGraph) -> list[str]:
    """Nodes in data-flow order (ties broken by insertion order): deterministic and readable."""
    position = {name: index for index, name in enumerate(graph.nodes)}
    return list(nx.lexicographical_topological_sort(graph, key=lambda name: position[name]))


def _dot_text(lines: list[str] | str) -> str:
    """A quoted DOT string; lines joined by DOT's ``\\n`` (json's escapes are DOT's: ``\\"``, ``\\\\``)."""
    text = "\n".join(lines) if isinstance(lines, list) else lines
    return json.dumps(text, ensure_ascii=False)


def _node_id(name: str) -> str:
    return name.replace(".", "_")


def _title(graph: nx.DiGraph, counts: dict[str, int] | None, num_classes: int) -> str:
    title = f"{graph.graph['name']} ({graph.graph['task']})"
    if counts is not None:
        title += f": {counts['total']:,} parameters at num_classes={num_classes}"
    return title


def annotated_dot(graph: nx.DiGraph, *, counts: Counts = None, num_classes: int = DEFAULT_NUM_CLASSES) -> str:
    """Graphviz DOT with labelled nodes, a box per backbone around its stages, channels × stride on edges;
    ``counts`` (parameters per node, at ``num_classes``) label the nodes where given."""
    notes = _annotations(graph, counts)
    in_cluster = {name for _, names in notes["clusters"].values() for name in names}
    lines = [
        f"digraph {_dot_text(str(graph.graph['name']))} {{",
        "  rankdir=LR;",
        f"  label={_dot_text(_title(graph, counts, num_classes))};",
        '  labelloc="t";',
        '  fontname="Helvetica";',
        '  node [shape=box, style="rounded,filled", fillcolor="#f5f5f5", fontname="Helvetica", fontsize=11];',
        '  edge [fontname="Helvetica", fontsize=10];',
    ]
    order = _order(graph)
    for name in order:
        if name in in_cluster:
            continue
        fill = ', fillcolor="#ffffff"' if name == INPUT else ""
        lines.append(f"  {_node_id(name)} [label={_dot_text(notes['labels'][name])}{fill}];")
    for kind, (label, names) in notes["clusters"].items():
        lines.append(f"  subgraph cluster_{_node_id(kind)} {{")
        lines.append(f"    label={_dot_text(label)};")
        lines.append('    style="rounded,dashed";')
        for name in (n for n in order if n in names):
            lines.append(f"    {_node_id(name)} [label={_dot_text(notes['labels'][name])}];")
        lines.append("  }")
    position = {name: index for index, name in enumerate(order)}
    for (source, target), label in sorted(notes["edges"].items(), key=lambda e: (position[e[0][0]], position[e[0][1]])):
        lines.append(f"  {_node_id(source)} -> {_node_id(target)} [label={_dot_text(label)}];")
    return "\n".join([*lines, "}"]) + "\n"


def _mermaid_text(lines: list[str]) -> str:
    return "<br>".join(line.replace('"', "#quot;") for line in lines)


def annotated_mermaid(graph: nx.DiGraph, *, counts: Counts = None, num_classes: int = DEFAULT_NUM_CLASSES) -> str:
    """Mermaid flowchart with the same labels as :func:`annotated_dot` (a subgraph per backbone)."""
    notes = _annotations(graph, counts)
    in_cluster = {name for _, names in notes["clusters"].values() for name in names}
    order = _order(graph)
    lines = ["---", f"title: {json.dumps(_title(graph, counts, num_classes))}", "---", "flowchart LR"]
    for name in order:
        if name not in in_cluster:
            lines.append(f'  {_node_id(name)}["{_mermaid_text(notes["labels"][name])}"]')
    for kind, (label, names) in notes["clusters"].items():
        lines.append(f'  subgraph {_node_id(kind)}_box["{_mermaid_text(label)}"]')
        for name in (n for n in order if n in names):
            lines.append(f'    {_node_id(name)}["{_mermaid_text(notes["labels"][name])}"]')
        lines.append("  end")
    position = {name: index for index, name in enumerate(order)}
    for (source, target), label in sorted(notes["edges"].items(), key=lambda e: (position[e[0][0]], position[e[0][1]])):
        text = f'|"{_mermaid_text([label])}"|' if label else ""
        lines.append(f"  {_node_id(source)} -->{text} {_node_id(target)}")
    return "\n".join(lines) + "\n"


# --- files ---------------------------------------------------------------------------------------------------------


def _write_atomic(path: Path, data: bytes) -> None:
    try:
        write_atomic(path, data)
    except AtomicWriteError as exc:
        raise PictureError(f"cannot write {path}: {exc.cause.strerror or exc.cause}") from None


def graphviz_dot() -> str | None:
    """The ``dot`` program on PATH, or None."""
    return shutil.which("dot")


def render_image(dot_text: str, fmt: str) -> bytes:
    """``dot -T<fmt>`` of ``dot_text``; PictureError when Graphviz is missing or fails."""
    program = graphviz_dot()
    if program is None:
        raise PictureError(
            f"drawing .{fmt} needs Graphviz's `dot` program, which is not on PATH "
            "(Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz). "
            "Or write the text form: -o graph.dot (Graphviz) or -o graph.mmd (Mermaid, renders on GitHub)"
        )
    try:
        result = subprocess.run(
            [program, f"-T{fmt}"], input=dot_text.encode("utf-8"), capture_output=True, timeout=120, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PictureError(f"running {program} failed: {exc}") from None
    if result.returncode != 0 or not result.stdout:
        message = result.stderr.decode("utf-8", "replace").strip() or f"exit status {result.returncode}"
        raise PictureError(f"{program} -T{fmt} failed: {message}", INVALID)
    return result.stdout


def write_graph(
    graph: nx.DiGraph, path: str | Path, *, counts: Counts = None, num_classes: int = DEFAULT_NUM_CLASSES
) -> None:
    """Write a picture of ``graph`` to ``path``, its format from the suffix (see the module docstring); atomic."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".json":
        from ._views import to_json

        data = to_json(graph).encode("utf-8")
    elif suffix == ".mmd":
        data = annotated_mermaid(graph, counts=counts, num_classes=num_classes).encode("utf-8")
    elif suffix in (".dot", ".gv"):
        data = annotated_dot(graph, counts=counts, num_classes=num_classes).encode("utf-8")
    elif suffix in IMAGE_SUFFIXES:
        if graphviz_dot() is None:  # fail before building the model
            render_image("", suffix[1:])
        data = render_image(annotated_dot(graph, counts=counts, num_classes=num_classes), suffix[1:])
    else:
        known = ", ".join([*IMAGE_SUFFIXES, *TEXT_SUFFIXES])
        raise PictureError(f"{path}: cannot tell the picture format from {suffix or 'no suffix'!r} (use {known})")
    _write_atomic(path, data)
