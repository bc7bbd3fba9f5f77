"""Provenance: which spec node produced which part of the emitted module.

The emitted source already names the spec pointer above each component. This map carries it further, from a
module path (= a ``state_dict`` key prefix, or an ONNX node's scope) to the spec pointer, the family, its template
and, when the spec's positions are known, the line. ``npc compile --provenance map.json`` writes it,
``npc check-weights`` locates keys with it, and ``npc export`` stamps every ONNX node with its origin.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import networkx as nx

from ._graph import components

__all__ = ["locate", "module_path_of_onnx_node", "provenance_map"]

Position = Callable[[str], "tuple[int, int] | None"]


def provenance_map(graph: nx.DiGraph, position: Position | None = None) -> dict[str, dict[str, Any]]:
    """Module path prefix (``""`` for a full model, ``backbone``, ``backbone.stages.2``, ``neck``, ``head``) →
    ``{pointer, component, template, origin[, line]}``, in data-flow order."""
    entries: dict[str, dict[str, Any]] = {}
    for node in components(graph):
        prefix = "" if node.kind == "full" else node.kind
        record = {"pointer": node.pointer, "component": node.family.name, "template": node.family.template}
        record["origin"] = node.family.origin
        entries[prefix] = record
        if node.family.stage_module and node.stage_params:
            for index in range(len(node.stage_params)):
                stage = f"{prefix}.{node.family.stage_module.format(index=index)}"
                entries[stage] = {**record, "pointer": f"{node.pointer}/stage_params/{index}"}
    if position is not None:
        for record in entries.values():
            where = position(record["pointer"])
            if where is not None:
                record["line"] = where[0]
    return entries


def locate(module_path: str, entries: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The record of the longest prefix owning ``module_path`` (a key like ``backbone.stages.2.0.conv1.weight``)."""
    owners = [p for p in entries if not p or module_path == p or module_path.startswith(p + ".")]
    return entries[max(owners, key=len)] if owners else None


def module_path_of_onnx_node(name: str, wrapper: str = "model") -> str:
    """``/model/backbone/stages.0/stages.0.0/conv1/block/conv/Conv`` → ``backbone.stages.0.0.conv1.block.conv``.

    The TorchScript ONNX exporter names a node by its module scopes and op; a scope whose name extends the one
    before it (``stages.0`` → ``stages.0.0``) is the same path, qualified further. ``wrapper`` is the attribute
    under which the exported wrapper holds the model.
    """
    scopes = [s for s in name.split("/")[1:-1] if s]
    if scopes and scopes[0] == wrapper:
        scopes = scopes[1:]
    path: list[str] = []
    for scope in scopes:
        if path and scope.startswith(path[-1] + "."):
            path[-1] = scope
        else:
            path.append(scope)
    return ".".join(path)
