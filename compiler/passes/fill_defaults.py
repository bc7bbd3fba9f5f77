"""Pass 1: give every component its full parameter set (spec values over the registry's defaults)."""

from __future__ import annotations

import networkx as nx

from .._graph import components


def fill_defaults(graph: nx.DiGraph) -> None:
    for node in components(graph):
        node.params = node.family.resolve_params(node.raw_params)
