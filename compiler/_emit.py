"""Emit one standalone PyTorch module from a compiled graph, through the Jinja templates.

Templates lay the code out; Python decides what goes in. Spec values reach the source only as literals
(``_render.literal``) or as identifiers made by ``_namespace``; the spec file name and model name appear only
inside literals or comments after being rendered with ``repr``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import jinja2
import networkx as nx

from .. import __version__
from ._graph import Node, components
from ._namespace import Namespace, class_name
from ._postprocess import postprocessor_context
from ._registry import Built, template_dirs
from ._render import LINE_LENGTH, format_assignment, literal

__all__ = ["EmitOptions", "emit"]


@dataclass(frozen=True)
class EmitOptions:
    spec_file: str = "<string>"  # shown in the header (base name only)
    spec_sha256: str = ""
    num_classes: int | None = None  # baked-in default for build_model(num_classes=...)
    fuse: bool = False  # emit fuse_bn_() and a fuse() method (BatchNorm folded into convs, for inference)


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(path) for path in template_dirs()]),  # npc's own first, then plugins
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # we emit Python, not HTML; values never reach templates as text
    )


def _render_template(name: str, **context) -> str:
    return _environment().get_template(name).render(**context).strip("\n")


def emit(graph: nx.DiGraph, options: EmitOptions = EmitOptions()) -> str:
    nodes = components(graph)
    blocks = _blocks(nodes)
    if options.fuse:
        blocks.append(_render_template("block_fuse.py.jinja", vars={}))
    postprocessor = postprocessor_context(graph, _render_template)
    defined = "\n".join([*blocks, *(postprocessor["blocks"] if postprocessor else [])])
    namespace = Namespace(taken=set(_defined_names(defined)))
    model_class = namespace.create(class_name(graph.graph["name"]), suffix="Model")
    full = nodes[0] if nodes[0].kind == "full" else None
    context = {
        "version": __version__,
        "spec_file": _comment_text(Path(options.spec_file).name),
        "spec_sha256": options.spec_sha256 or "-",
        "title": f"{graph.graph['task'].replace('_', ' ').capitalize()} model compiled by npc.",
        "blocks": blocks,
        "model_class": model_class,
        "base_class": full.built.class_name if full else "nn.Module",
        "model_doc": _model_doc(graph, nodes),
        "num_classes_default": "" if options.num_classes is None else f" = {int(options.num_classes)}",
        "full": _full_context(full) if full else None,
        "components": [_component_context(node, graph.graph.get("late_values", {})) for node in nodes]
        if not full
        else [],
        "forward": _forward_steps(graph, nodes) if not full else [],
        "return_annotation": "dict[str, torch.Tensor]" if graph.graph["task"] in _TENSOR_TASKS else "dict",
        "task": graph.graph["task"],
        "fuse": options.fuse,
        "postprocessor": postprocessor,
        "key_remap": _key_remap_lines(graph.graph.get("remap_keys") or {}),
    }
    body = _render_template("model.py.jinja", imports=[], **context)
    source = _render_template("model.py.jinja", imports=_imports(body), **context)
    return source + "\n"


def _key_remap_lines(remap: dict[str, str]) -> list[str]:
    """``key_remap = ((old, new), ...)`` inside the model class, longest old prefix first (the one that wins)."""
    if not remap:
        return []
    pairs = tuple(sorted(remap.items(), key=lambda pair: (-len(pair[0]), pair[0])))
    flat = f"    key_remap = {literal(pairs)}"
    if len(flat) <= LINE_LENGTH:
        return [flat]
    return ["    key_remap = (", *(f"        {literal(pair)}," for pair in pairs), "    )"]


_TENSOR_TASKS = ("classification", "segmentation", "pose_estimation")


def _blocks(nodes: list[Node]) -> list[str]:
    """Shared blocks first (each once, in first-use order), then one rendered template per family."""
    shared: dict[str, None] = {}
    for node in nodes:
        shared.update(dict.fromkeys(node.built.blocks))
    rendered = [_render_template(f"block_{name}.py.jinja", vars={}) for name in shared]
    seen_templates: dict[str, dict] = {}
    for node in nodes:
        template = node.family.template
        merged = seen_templates.setdefault(template, {})
        for key, value in node.built.template_vars.items():
            merged[key] = merged.get(key, False) or value if isinstance(value, bool) else value
    rendered += [_render_template(name, vars=flags) for name, flags in seen_templates.items()]
    return [block for block in rendered if block]


def _defined_names(source: str) -> list[str]:
    return re.findall(r"^(?:class|def) (\w+)", source, flags=re.MULTILINE)


def _comment_text(text: str) -> str:
    """Text for a comment or docstring: printable, one line, no quotes that could end a string."""
    shown = literal(text)[1:-1]
    return shown.replace('"""', '\\"\\"\\"')


def _model_doc(graph: nx.DiGraph, nodes: list[Node]) -> str:
    parts = " → ".join(f"{node.kind} {node.family.name}" for node in nodes)
    return f"{_comment_text(graph.graph['name'])}: {parts}."


def _kwargs(built: Built) -> dict:
    return dict(built.kwargs)


def _component_context(node: Node, late_values: dict[str, tuple[str, object]]) -> dict:
    lines = format_assignment(f"self.{node.kind}", node.built.class_name, _kwargs(node.built), " " * 8)
    return {
        "pointer": node.pointer,
        "family": node.family.name,
        "inferred": _inferred_notes(node.pointer, late_values),
        "lines": lines,
    }


_NOTE_LENGTH = LINE_LENGTH - 12  # after "        #   "


def _inferred_notes(holder: str, late_values: dict[str, tuple[str, object]]) -> list[str]:
    """One comment line per param that read inferred values: ``params/in_channels = 256  # =backbone.channels[-1]``."""
    notes = []
    for pointer, (text, value) in late_values.items():
        if pointer.startswith(holder + "/"):
            where, shown = _comment_text(pointer[len(holder) + 1 :]), _comment_text(literal(value))
            note = f"{where} = {shown} from {_comment_text(text)}"
            notes.append(note if len(note) <= _NOTE_LENGTH else note[: _NOTE_LENGTH - 3] + "...")
    return notes


def _full_context(node: Node) -> dict:
    kwargs = _kwargs(node.built)
    # Laid out as ``_ = super().__init__(...)``, then the placeholder dropped. At indent 4, "_ = " is as wide as
    # the 4 spaces it stands for, so a call that fits on one line at indent 8 stays on one line (as ruff keeps it).
    lines = format_assignment("_", "super().__init__", kwargs, " " * 4)
    if len(lines) > 1:
        lines = format_assignment("_", "super().__init__", kwargs, " " * 8)
    lines[0] = " " * 8 + lines[0].lstrip().replace("_ = super().__init__", "super().__init__", 1)
    return {"pointer": node.pointer, "family": node.family.name, "lines": lines}


def _shapes(features, task: str) -> str:
    """A shape comment for the features between components; compact when the plain form is too long."""
    if task == "classification":  # backbones hand the classifier a pooled (B, C) vector
        plain = ", ".join(f"(B, {f.channels})" for f in features)
    else:
        plain = ", ".join(f"(B, {f.channels}, H/{f.stride}, W/{f.stride})" for f in features)
    if len(plain) <= LINE_LENGTH - 20:
        return f"[{plain}]"
    levels = ", ".join(f"({f.channels}, {f.stride})" for f in features)
    return f"{len(features)} maps (B, C, H/s, W/s) with (C, s) = {levels}"


def _forward_steps(graph: nx.DiGraph, nodes: list[Node]) -> list[str]:
    """The top-level forward, each step preceded by a comment saying what it returns."""
    lines = []
    for node in nodes[:-1]:
        argument = "x" if node.kind == "backbone" else "features"
        lines.append(f"# {_shapes(node.built.outputs, graph.graph['task'])}")
        lines.append(f"features = self.{node.kind}({argument})")
    head = nodes[-1]
    if head.built.output_keys:
        lines.append(f"# {{{', '.join(head.built.output_keys)}}}")
    lines.append(f"return self.{head.kind}(features)")
    return lines


def _imports(body: str) -> list[str]:
    """Only the imports the emitted code references, in ruff/isort order (stdlib, blank line, torch)."""
    code = "\n".join(line.split("#", 1)[0] for line in body.splitlines())
    lines = []
    if re.search(r"\bmath\.", code):
        lines += ["import math", ""]
    lines.append("import torch")
    if re.search(r"\bF\.", code):
        lines.append("import torch.nn.functional as F")
    lines.append("from torch import nn")
    return lines
