"""Text views of a compiled graph: Graphviz DOT, Mermaid and node-link JSON, all deterministic."""

from __future__ import annotations

import json

import networkx as nx

from ._graph import components

__all__ = ["to_dot", "to_json", "to_mermaid"]


def _node_id(name: str) -> str:
    return name.replace(".", "_")


def _edge_label(data: dict) -> str:
    feature = data.get("feature")
    if feature:
        return f"{feature.channels}ch /{feature.stride}"
    return ", ".join(data.get("outputs") or ())


def to_dot(graph: nx.DiGraph) -> str:
    lines = [f"digraph {json.dumps(str(graph.graph['name']))} {{", "  rankdir=LR;", "  node [shape=box];"]
    for name, data in graph.nodes(data=True):
        lines.append(f"  {_node_id(name)} [label={json.dumps(data.get('label', name))}];")
    for source, target, data in graph.edges(data=True):
        lines.append(f"  {_node_id(source)} -> {_node_id(target)} [label={json.dumps(_edge_label(data))}];")
    return "\n".join([*lines, "}"]) + "\n"


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;")


def to_mermaid(graph: nx.DiGraph) -> str:
    lines = ["flowchart LR"]
    for name, data in graph.nodes(data=True):
        lines.append(f'  {_node_id(name)}["{_mermaid_text(data.get("label", name))}"]')
    for source, target, data in graph.edges(data=True):
        lines.append(f'  {_node_id(source)} -->|"{_edge_label(data)}"| {_node_id(target)}')
    return "\n".join(lines) + "\n"


def to_json(graph: nx.DiGraph) -> str:
    data = nx.node_link_data(graph, edges="edges")
    data["graph"] = {
        "name": graph.graph["name"],
        "task": graph.graph["task"],
        "components": [
            {"kind": node.kind, "name": node.family.name, "pointer": node.pointer, "params": node.params}
            for node in components(graph)
        ],
    }
    for edge in data["edges"]:
        feature = edge.pop("feature", None)
        if feature is not None:
            edge["channels"], edge["stride"] = feature.channels, feature.stride
    for node in data["nodes"]:
        feature = node.pop("feature", None)
        node.pop("outputs", None)
        if feature is not None:
            node["channels"], node["stride"] = feature.channels, feature.stride
    return json.dumps(data, indent=2, default=str) + "\n"
