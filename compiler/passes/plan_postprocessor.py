"""Pass 4: detection heads with a decoder get it planned from their params and the spec's postprocessor params.

Done as a pass, not during emission, so a postprocessor setting the head cannot honour (e.g. a ``reg_max`` that
differs from the head's) is found by ``npc validate`` too, at ``/model/postprocessor/...``.
"""

from __future__ import annotations

import networkx as nx

from .. import _registry as registry
from .._graph import POSTPROCESSOR, CompileError, components


def plan_postprocessor(graph: nx.DiGraph) -> None:
    if not graph.has_node(POSTPROCESSOR):
        return
    head = components(graph)[-1]
    if head.family.postprocessor_template is None:
        return
    try:
        decoder = head.family.decoder(head.params, graph.nodes[POSTPROCESSOR]["params"])
    except registry.BuildError as exc:
        raise CompileError("/model/postprocessor" + exc.pointer, exc.message) from None
    graph.nodes[POSTPROCESSOR]["decoder"] = decoder
