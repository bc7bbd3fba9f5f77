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
from ._plugins import load_plugins
from .passes import run_passes

if TYPE_CHECKING:  # the compiler consumes specs but must not import the spec package at runtime
    from ..spec import ModelSpec

__all__ = [
    "DEFAULT_INPUT_SIZE",
    "CompileError",
    "Compiled",
    "EmitOptions",
    "compile_graph",
    "compile_spec",
    "default_input_size",
    "registry",
    "sha256_of",
]


def _load_components() -> None:
    from . import components  # noqa: F401  (importing each family module registers it)

    load_plugins()


registry.on_first_use(_load_components)

# The input sizes NetsPresso Trainer's own examples use per task (and the peer measurements of the zoo).
DEFAULT_INPUT_SIZE = {"classification": 224, "segmentation": 512, "detection": 640, "pose_estimation": 256}


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


def default_input_size(spec: ModelSpec) -> int:
    """The side of the square input a spec's model is run at when none is given: the task's usual size, rounded
    up to what the backbone (or full model) needs, e.g. 256 for MobileViT-S whose patches need a multiple of 64."""
    first = spec.components[0]
    cls = registry.get(first.kind, first.name)
    multiple = cls.input_multiple(cls.resolve_params(first.params), first.stage_params)
    size = DEFAULT_INPUT_SIZE[spec.task]
    return -(-size // multiple) * multiple
