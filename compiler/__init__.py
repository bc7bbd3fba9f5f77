"""The compiler: a validated :class:`~npc.spec.ModelSpec` in, standalone PyTorch source out.

spec → ``build_graph`` (networkx DiGraph of components) → passes (fill defaults, infer channels/strides along
edges, check consistency) → ``emit`` (Jinja templates, literal rendering). Never imports torch.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import networkx as nx

from . import _registry as registry
from ._emit import EmitOptions, emit
from ._graph import CompileError, build_graph
from .passes import run_passes

if TYPE_CHECKING:  # the compiler consumes specs but must not import the spec package at runtime
    from ..spec import ModelSpec

__all__ = [
    "CompileError",
    "Compiled",
    "EmitOptions",
    "compile_graph",
    "compile_spec",
    "registry",
    "sha256_of",
]


@dataclass(frozen=True)
class Compiled:
    source: str
    graph: nx.DiGraph


def sha256_of(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def compile_graph(spec: ModelSpec) -> nx.DiGraph:
    """The component graph with every pass applied (channels and strides on its edges)."""
    return run_passes(build_graph(spec))


def compile_spec(
    spec: ModelSpec, *, num_classes: int | None = None, spec_sha256: str = "", fuse: bool = False
) -> Compiled:
    graph = compile_graph(spec)
    options = EmitOptions(spec_file=spec.path, spec_sha256=spec_sha256, num_classes=num_classes, fuse=fuse)
    return Compiled(emit(graph, options), graph)
