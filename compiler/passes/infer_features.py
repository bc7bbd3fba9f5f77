"""Pass 2: walk the chain, building each component from the features arriving on its incoming edges.

A backbone is expanded into one graph node per stage; the stages it hands on (``Built.selected``, from
``return_stage_idx``) get edges to the next component. Channel counts are never guessed: each comes from an edge.
"""

from __future__ import annotations

import copy

import networkx as nx

from .. import _registry as registry
from .._graph import IMAGE, INPUT, POSTPROCESSOR, CompileError, Node, components

Source = tuple[str, registry.Feature]  # (graph node the feature leaves from, the feature)


def infer_features(graph: nx.DiGraph) -> None:
    sources: list[Source] = [(INPUT, IMAGE)]
    inferred: dict[str, dict[str, list[int]]] = {}  # what expressions may read: `=backbone.channels[-1]`
    for node in components(graph):
        _resolve_late_values(graph, node, inferred)
        node.built = _build(node, sources, graph)
        inferred[node.kind] = _inferred_record(node.built)
        graph.remove_edges_from(list(graph.in_edges(node.kind)))
        entry = _expand_stages(graph, node) if node.built.stages else node.kind
        for source, feature in sources:
            graph.add_edge(source, entry, feature=feature)
        sources = _sources(graph, node)
    if graph.has_node(POSTPROCESSOR):  # detection: the head's raw predictions, by the keys the peer uses
        head = components(graph)[-1]
        graph.edges[head.kind, POSTPROCESSOR]["outputs"] = list(head.built.output_keys)


def _inferred_record(built: registry.Built) -> dict[str, list[int]]:
    record = {
        "channels": [feature.channels for feature in built.outputs],
        "strides": [feature.stride for feature in built.outputs],
    }
    if built.stages:
        record["stage_channels"] = [feature.channels for feature in built.stages]
        record["stage_strides"] = [feature.stride for feature in built.stages]
    return record


def _resolve_late_values(graph: nx.DiGraph, node: Node, inferred: dict[str, dict[str, list[int]]]) -> None:
    """Put the values of this component's params that read inferred ones (``=backbone.channels[-1]``) in place,
    now that the components before it are built. The spec side evaluates and checks them (``late.resolve``
    raises a located CompileError); they are recorded in ``graph.graph["late_values"]`` for the emitted comments."""
    late = graph.graph.get("late")
    if late is None or not late.under(node.pointer):
        return
    values = late.resolve(node.pointer, inferred)
    node.raw_params, node.stage_params = copy.deepcopy(node.raw_params), copy.deepcopy(node.stage_params)
    for pointer, value in values.items():
        kind, *path = [t.replace("~1", "/").replace("~0", "~") for t in pointer[len(node.pointer) + 1 :].split("/")]
        container = node.raw_params if kind == "params" else node.stage_params
        for token in path[:-1]:
            container = container[int(token)] if isinstance(container, list) else container[token]
        container[int(path[-1]) if isinstance(container, list) else path[-1]] = value
        graph.graph.setdefault("late_values", {})[pointer] = (late.texts[pointer], value)
    node.params = node.family.resolve_params(node.raw_params)


def _build(node: Node, sources: list[Source], graph: nx.DiGraph) -> registry.Built:
    inputs = tuple(feature for _, feature in sources)
    task = graph.graph["task"]
    try:
        for issue in node.family.check(node.params, node.stage_params, task):  # build() may assume valid params
            raise registry.BuildError(issue.pointer, issue.message)
        built = node.family.build(node.params, node.stage_params, inputs, task=task)
    except registry.BuildError as exc:
        raise CompileError(node.pointer + exc.pointer, exc.message + _fed_by(sources, graph)) from None
    if built.stages:
        assert built.outputs == tuple(built.stages[i] for i in built.selected), (
            f"{node.family.name}: outputs must be the selected stages"
        )
    return built


def _fed_by(sources: list[Source], graph: nx.DiGraph) -> str:
    """Name the other end of the edge: where the features that did not fit come from."""
    origins = {graph.nodes[name].get("component", name) for name, _ in sources} - {INPUT}
    pointers = sorted({_component_pointer(graph, origin) for origin in origins} - {""})
    features = ", ".join(feature.label() for _, feature in sources)
    return f" (input from {' and '.join(pointers)}: {features})" if pointers else ""


def _component_pointer(graph: nx.DiGraph, kind: str) -> str:
    record = graph.graph["components"].get(kind)
    return record.pointer if record is not None else ""


def _expand_stages(graph: nx.DiGraph, node: Node) -> str:
    """Replace the backbone's node by a chain of stage nodes; return the chain's first node."""
    graph.remove_node(node.kind)
    names = [f"{node.kind}.stage{i}" for i in range(len(node.built.stages))]
    for index, (name, feature) in enumerate(zip(names, node.built.stages)):
        pointer = f"{node.pointer}/stage_params/{index}" if node.stage_params else node.pointer
        graph.add_node(
            name,
            label=f"{node.family.name} stage {index}",
            pointer=pointer,
            component=node.kind,
            feature=feature,
        )
        if index:
            graph.add_edge(names[index - 1], name, feature=node.built.stages[index - 1])
    graph.graph.setdefault("stages", {})[node.kind] = names
    return names[0]


def _sources(graph: nx.DiGraph, node: Node) -> list[Source]:
    """Where this component's outputs leave from: the selected stage nodes, or the component's own node."""
    if node.built.stages:
        names = graph.graph["stages"][node.kind]
        return [(names[i], node.built.stages[i]) for i in node.built.selected]
    graph.nodes[node.kind]["component"] = node.kind
    return [(node.kind, feature) for feature in node.built.outputs]
