"""Pass 3: invariants of a compiled graph, reported with the spec pointers of both ends of a bad edge."""

from __future__ import annotations

import networkx as nx

from .._graph import INPUT, POSTPROCESSOR, CompileError, components


def check_consistency(graph: nx.DiGraph) -> None:
    if not nx.is_directed_acyclic_graph(graph):
        raise CompileError("/model/architecture", "the component graph has a cycle")
    for source, target, data in graph.edges(data=True):
        if target == POSTPROCESSOR:  # raw head predictions, not a feature map
            continue
        feature = data.get("feature")
        if feature is None or feature.channels <= 0 or feature.stride <= 0:
            raise CompileError(
                graph.nodes[target].get("pointer", ""),
                f"no valid feature reaches it from {graph.nodes[source].get('pointer') or 'the input'} (got {feature})",
            )
    last = components(graph)[-1]
    sink = last.kind
    if not nx.has_path(graph, INPUT, sink):
        raise CompileError(last.pointer, "is not connected to the input")
    for node in components(graph):
        if not node.built.outputs and node.kind in ("backbone", "neck"):
            raise CompileError(node.pointer, f"the {node.kind} hands no features on (check return_stage_idx)")
