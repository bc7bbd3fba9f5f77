"""Compiler passes, one pure function per module, each adding facts to the graph.

``fill_defaults`` → ``infer_features`` → ``check_consistency`` → ``plan_postprocessor``; :func:`run_passes` runs
them in order and names the failing pass (and those that ran before it) in internal errors, as torch.fx's pass
manager does.
"""

from __future__ import annotations

import networkx as nx

from .check_consistency import check_consistency
from .fill_defaults import fill_defaults
from .infer_features import infer_features
from .plan_postprocessor import plan_postprocessor

__all__ = ["PASSES", "check_consistency", "fill_defaults", "infer_features", "plan_postprocessor", "run_passes"]

PASSES = (fill_defaults, infer_features, check_consistency, plan_postprocessor)


def run_passes(graph: nx.DiGraph) -> nx.DiGraph:
    done: list[str] = []
    for compiler_pass in PASSES:
        try:
            compiler_pass(graph)
        except (NotImplementedError, AssertionError, TypeError, KeyError) as exc:
            ran = ", ".join(done) or "none"
            raise RuntimeError(f"internal error in pass {compiler_pass.__name__} (after: {ran}): {exc}") from exc
        done.append(compiler_pass.__name__)
    return graph
