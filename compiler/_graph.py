"""The component graph: input → backbone stages → neck → head (or input → full model), as a networkx DiGraph.

Graph-level data ``graph.graph["components"]`` maps each component kind to a :class:`Node` record (family,
params, spec pointer, and after inference what it :class:`~._registry.Built`). Data-flow nodes are ``input``,
one ``backbone.stage<i>`` per backbone stage, ``neck``, ``head`` or ``full``, and for detection the
``postprocessor`` (decode + NMS, emitted as ``build_postprocessor`` for heads with a decoder); each edge carries
the :class:`~._registry.Feature` it passes. Node insertion order is deterministic, so every walk is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import networkx as nx

from . import _registry as registry

if TYPE_CHECKING:  # the compiler consumes specs but must not import the spec package at runtime
    from ..spec import ModelSpec

__all__ = ["CompileError", "Node", "build_graph", "components"]

INPUT = "input"
POSTPROCESSOR = "postprocessor"  # detection only; emitted apart from the model (compiler/_postprocess.py)
IMAGE = registry.Feature(channels=3, stride=1)


@dataclass
class Node:
    """One component of the spec on its way through the passes."""

    kind: str
    family: type[registry.Component]
    raw_params: dict[str, Any]
    stage_params: list | None
    pointer: str
    params: dict[str, Any] = field(default_factory=dict)  # filled by passes.fill_defaults
    built: registry.Built | None = None  # filled by passes.infer_features


class CompileError(Exception):
    """A spec that validated but cannot be compiled; ``pointer`` locates it in the spec file."""

    def __init__(self, pointer: str, message: str) -> None:
        self.pointer, self.message = pointer, message
        super().__init__(f"{pointer}: {message}")


def build_graph(spec: ModelSpec) -> nx.DiGraph:
    """The initial graph: one node per component, chained in spec order, with its family looked up."""
    graph = nx.DiGraph(name=spec.name, task=spec.task, components={}, remap_keys=dict(spec.checkpoint.remap_keys))
    graph.graph["late"] = spec.late  # values that read inferred ones; passes.infer_features resolves them
    graph.add_node(INPUT, label="input", feature=IMAGE, pointer="")
    previous = INPUT
    for component in spec.components:
        family = registry.get(component.kind, component.name)
        if family.template is None:
            raise CompileError(
                component.pointer + "/name",
                f"{component.kind} {component.name!r} is validated "
                "but npc cannot compile it yet (see docs/models.md for compilable families)",
            )
        graph.graph["components"][component.kind] = Node(
            component.kind, family, component.params, component.stage_params, component.pointer
        )
        graph.add_node(component.kind, label=f"{component.kind}: {component.name}", pointer=component.pointer)
        graph.add_edge(previous, component.kind)
        previous = component.kind
    if spec.task == "detection":
        _add_postprocessor(graph, spec, previous)
    return graph


def _add_postprocessor(graph: nx.DiGraph, spec: ModelSpec, head: str) -> None:
    """Detection's decode + NMS step, applied to the head's raw outputs as NetsPresso Trainer's postprocessor does:
    not part of the model, emitted beside it as ``build_postprocessor`` when the head has a decoder."""
    graph.add_node(
        POSTPROCESSOR,
        label="postprocessor: decode + NMS",
        pointer="/model/postprocessor" if spec.postprocessor else "",
        params=dict(spec.postprocessor),
    )
    graph.add_edge(head, POSTPROCESSOR)


def components(graph: nx.DiGraph) -> list[Node]:
    """Component records in data-flow order (backbone, neck, head; or full)."""
    return list(graph.graph["components"].values())
