"""``npc summary``: per graph node (component, backbone stage) the output shape, parameters and FLOPs of a model.

The model is built from the compiled spec (or a given ``model.py``) and run once on a zero image under
:class:`torch.utils.flop_counter.FlopCounterMode`, with forward hooks on the modules behind the graph nodes:

* a component (``backbone``, ``neck``, ``head``) is the model's attribute of that name; a ``full`` model is the
  model itself;
* a backbone stage ``backbone.stage<i>`` is the submodule ``backbone.stages.<i>`` when the emitted backbone keeps
  its stages there (its state_dict keys start with ``backbone.stages.<i>.``); otherwise the stage has no row of its
  own and the component's row covers it. What a component holds outside its stages (a stem) gets an "other" row,
  so that the rows always add up to the totals.

The forward pass runs on the ``meta`` device first (shapes and FLOPs without computing anything, so a 640x640
detector costs milliseconds); a model that cannot run there (``.item()`` in its constructor or forward, say) runs
on the CPU instead. FLOPs are what FlopCounterMode counts: convolutions, matrix products and attention (2 FLOPs per
multiply-add; elementwise ops, norms and pooling are not counted); MACs are FLOPs / 2.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...compiler import DEFAULT_INPUT_SIZE, default_input_size
from ..errors import INVALID, UNUSABLE, RunError

__all__ = [
    "DEFAULT_INPUT_SIZE",
    "LoadedTarget",
    "Row",
    "Summary",
    "load_target",
    "output_shapes",
    "parameter_counts",
    "summarize",
    "summarize_target",
]

DEFAULT_NUM_CLASSES = 10


@dataclass
class Row:
    node: str  # graph node (``backbone.stage0``, ``neck``) or ``<component>.other`` / ``other``
    label: str  # what it is: family name, "resnet stage 0", "outside the stages"
    output: Any  # shapes: [1, 64, 56, 56], a list of shapes, or {key: shapes}; None when not hooked
    params: int
    trainable: int
    flops: int
    depth: int = 0  # 0: component; 1: part of the component above


@dataclass
class Summary:
    name: str
    task: str
    input: list[int]
    num_classes: int
    rows: list[Row]
    params: int
    trainable: int
    buffers: int
    flops: int
    output: Any
    ran_on: str  # "meta" (shapes only) or "cpu"
    notes: list[str] = field(default_factory=list)

    @property
    def macs(self) -> int:
        return self.flops // 2

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["macs"] = self.macs
        for row in data["rows"]:
            row["macs"] = row["flops"] // 2
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"


# --- shapes ------------------------------------------------------------------------------------------------------


def output_shapes(value: Any) -> Any:
    """Tensors replaced by their shapes, through lists, tuples and dicts."""
    if isinstance(value, torch.Tensor):
        return list(value.shape)
    if isinstance(value, dict):
        return {str(k): output_shapes(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [output_shapes(v) for v in value]
    return type(value).__name__


def format_shape(shape: Any) -> str:
    if isinstance(shape, list) and all(isinstance(d, int) for d in shape):
        return "×".join(str(d) for d in shape) if shape else "scalar"
    if isinstance(shape, dict):
        return "\n".join(f"{k}: {format_shape(v)}" for k, v in shape.items())
    if isinstance(shape, list):
        parts = [format_shape(s) for s in shape]
        return "[" + ", ".join(parts) + "]" if len(parts) <= 2 else "[" + ",\n ".join(parts) + "]"
    return "" if shape is None else str(shape)


# --- counting ------------------------------------------------------------------------------------------------------


def _params(module: nn.Module) -> tuple[int, int]:
    params = list(module.parameters())  # parameters() yields a shared tensor once
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)


def _parts(model: nn.Module, graph) -> list[tuple[str, str, str, list[tuple[str, str, str]]]]:
    """(node, label, module path, [(stage node, stage label, module path)]) per component, in data-flow order."""
    modules = dict(model.named_modules())
    parts = []
    if graph is not None:
        records = list(graph.graph["components"].values())
        stage_nodes = graph.graph.get("stages", {})
        for record in records:
            path = "" if record.kind == "full" else record.kind
            if path not in modules:
                path = ""
            stages = []
            names = stage_nodes.get(record.kind, [])
            paths = [f"{path}.stages.{i}" if path else f"stages.{i}" for i in range(len(names))]
            if names and all(p in modules for p in paths):
                stages = [(name, f"stage {i}", p) for i, (name, p) in enumerate(zip(names, paths))]
            parts.append((record.kind, record.family.name, path, stages))
        return parts
    # A model.py without its spec: the top-level children, stages where the emitted layout has them.
    for name, child in model.named_children():
        stages = []
        index = 0
        while f"{name}.stages.{index}" in modules:
            stages.append((f"{name}.stage{index}", f"stage {index}", f"{name}.stages.{index}"))
            index += 1
        parts.append((name, type(child).__name__, name, stages))
    return parts or [("model", type(model).__name__, "", [])]


def summarize(
    model: nn.Module, input_size: Sequence[int], *, graph=None, num_classes: int = 0, batch: int = 1
) -> Summary:
    """Run ``model`` (already built, on CPU or meta) once and tabulate it; see the module docstring."""
    from torch.utils.flop_counter import FlopCounterMode

    model.eval()
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    parts = _parts(model, graph)
    modules = dict(model.named_modules())
    outputs: dict[str, Any] = {}
    handles = []
    for _, _, path, stages in parts:
        for module_path in [path, *(p for _, _, p in stages)]:
            if module_path and module_path not in outputs:
                outputs[module_path] = None

                def hook(_module, _inputs, output, module_path=module_path):
                    if outputs[module_path] is None:  # the first call (a shared module may run again)
                        outputs[module_path] = output_shapes(output)

                handles.append(modules[module_path].register_forward_hook(hook))
    counter = FlopCounterMode(display=False, depth=None)
    x = torch.zeros(batch, 3, *input_size, device=device)
    try:
        with torch.no_grad(), counter:
            out = model(x)
    finally:
        for handle in handles:
            handle.remove()
    counts = counter.get_flop_counts()
    root = type(model).__name__

    def flops(path: str) -> int:
        return sum(counts.get(f"{root}.{path}" if path else root, {}).values())

    rows: list[Row] = []
    for node, label, path, stages in parts:
        module = modules[path]
        params, trainable = _params(module)
        total_flops = flops(path)
        rows.append(Row(node, label, outputs.get(path) if path else output_shapes(out), params, trainable, total_flops))
        if not stages:
            continue
        stage_params = stage_trainable = stage_flops = 0
        for stage_node, stage_label, stage_path in stages:
            p, t = _params(modules[stage_path])
            f = flops(stage_path)
            rows.append(Row(stage_node, stage_label, outputs.get(stage_path), p, t, f, depth=1))
            stage_params, stage_trainable, stage_flops = stage_params + p, stage_trainable + t, stage_flops + f
        if (params - stage_params) or (total_flops - stage_flops):
            rows.append(
                Row(
                    f"{node}.other",
                    "stem and other layers",
                    None,
                    params - stage_params,
                    trainable - stage_trainable,
                    total_flops - stage_flops,
                    depth=1,
                )
            )
    params, trainable = _params(model)
    covered = [r for r in rows if r.depth == 0]
    rest_params = params - sum(r.params for r in covered)
    rest_flops = sum(counts.get("Global", {}).values()) - sum(r.flops for r in covered)
    if rest_params or rest_flops:
        rest_trainable = trainable - sum(r.trainable for r in covered)
        rows.append(Row("other", "outside the components", None, rest_params, rest_trainable, rest_flops))
    buffers = sum(b.numel() for b in model.buffers())
    return Summary(
        name=getattr(graph, "graph", {}).get("name", root) if graph is not None else root,
        task=graph.graph["task"] if graph is not None else "",
        input=[batch, 3, *input_size],
        num_classes=num_classes,
        rows=rows,
        params=params,
        trainable=trainable,
        buffers=buffers,
        flops=sum(counts.get("Global", {}).values()),
        output=output_shapes(out),
        ran_on=device.type,
    )


# --- loading a SPEC or a model.py -------------------------------------------------------------------------------


@dataclass
class LoadedTarget:
    """What a tool command works on: the model's source, the module imported from it, and the graph (specs only)."""

    path: str  # what the user named
    source: str
    module: Any
    graph: Any  # networkx graph, or None for a model.py
    task: str  # "" when unknown (a model.py)
    name: str
    spec: Any = None  # the normalised ModelSpec (specs only)
    position: Any = None  # spec pointer -> (line, col) of the spec file (specs only)


def load_target(path: str | Path) -> LoadedTarget:
    """Compile SPEC (validated, with located diagnostics), or take a compiled ``*.py`` (or a run folder's
    ``model.py``); import it from a file."""
    from ..engine import import_model

    path = Path(path)
    if not path.exists():
        raise RunError(f"{path}: no such file", UNUSABLE)
    name = None
    if path.is_dir():  # an npc train run folder: the model.py it trained
        if not (path / "model.py").is_file():
            raise RunError(f"{path}: is a folder without model.py (not an npc train run folder)", UNUSABLE)
        name, path = path.resolve().name, path / "model.py"
    if path.suffix == ".py":
        try:
            source = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise RunError(f"{path}: cannot read model file ({exc.strerror or exc})", UNUSABLE) from None
        module = import_model(path)
        return LoadedTarget(str(path), source, module, None, _task_of(source), name or path.stem)
    compiled, config = _compile(path)
    with tempfile.TemporaryDirectory(prefix="npc-model-") as folder:
        model_py = Path(folder) / "model.py"
        model_py.write_text(compiled.source, encoding="utf-8")
        module = import_model(model_py)
    return LoadedTarget(
        str(path),
        compiled.source,
        module,
        compiled.graph,
        config.spec.task,
        config.spec.name,
        config.spec,
        config.spec_source.position,
    )


def _compile(path: Path):
    from ...compiler import CompileError, compile_spec, sha256_of
    from ...spec import Diagnostic, SpecError
    from ...spec.run_config import load_run_config

    config = load_run_config(path)  # the spec may carry training:/data: sections, as npc train accepts
    try:
        return compile_spec(config.spec, spec_sha256=sha256_of(path)), config
    except CompileError as exc:
        line, col = config.spec_source.position(exc.pointer) or (None, None)
        raise SpecError([Diagnostic(str(path), exc.pointer, exc.message, line, col, "compile")], INVALID) from None


def _task_of(source: str) -> str:
    """The task a compiled model.py names in its docstring ("Detection model compiled by npc.")."""
    for task in DEFAULT_INPUT_SIZE:
        if f'"""{task.replace("_", " ").capitalize()} model compiled by npc.' in source:
            return task
    return ""


def default_side(target: LoadedTarget) -> int:
    """The input side a target runs at by default: from its spec where there is one (the model may need a multiple
    of its patch grid), else the task's usual size."""
    if target.spec is not None:
        return default_input_size(target.spec)
    return DEFAULT_INPUT_SIZE.get(target.task, 224)


def parameter_counts(graph, num_classes: int = DEFAULT_NUM_CLASSES) -> dict[str, int] | None:
    """Parameters per graph node (components, backbone stages, ``<component>.other`` for a stem), plus ``total``:
    the labels of ``npc graph -o x.svg`` and the example counts of docs/models.md.

    Builds the emitted module on the ``meta`` device (CPU when meta fails); None when it cannot be built (a picture
    without counts beats no picture).
    """
    from ...compiler._emit import emit
    from ...compiler._graph import components

    namespace: dict[str, Any] = {"__name__": "npc_counted_model"}
    exec(compile(emit(graph), "<npc compiled model>", "exec"), namespace)  # our own emitted source
    try:
        with torch.device("meta"):
            model = namespace["build_model"](num_classes=num_classes)
    except Exception:  # noqa: BLE001 - a constructor meta cannot run (e.g. .item()): build for real
        try:
            model = namespace["build_model"](num_classes=num_classes)
        except Exception:  # noqa: BLE001
            return None
    modules = dict(model.named_modules())

    def count(module) -> int:
        return sum(p.numel() for p in module.parameters())

    counts = {"total": count(model)}
    stage_nodes = graph.graph.get("stages", {})
    for record in components(graph):
        path = "" if record.kind == "full" or record.kind not in modules else record.kind
        counts[record.kind] = count(modules[path])
        names = stage_nodes.get(record.kind, [])
        paths = [f"{path}.stages.{i}" if path else f"stages.{i}" for i in range(len(names))]
        if names and all(p in modules for p in paths):
            for name, stage_path in zip(names, paths):
                counts[name] = count(modules[stage_path])
            counts[f"{record.kind}.other"] = counts[record.kind] - sum(counts[name] for name in names)
    return counts


def build_model(target: LoadedTarget, num_classes: int) -> nn.Module:
    """``build_model(num_classes)`` of the target; failures become a RunError naming the file."""
    from ..engine import build

    return build(target.module, num_classes, target.path)


def summarize_target(target: LoadedTarget, input_size: Sequence[int] | None, num_classes: int) -> Summary:
    """Build on ``meta`` and summarise; fall back to the CPU when the model cannot run on meta."""
    size = tuple(input_size) if input_size else (default_side(target),) * 2
    notes = []
    try:
        with torch.device("meta"):
            model = target.module.build_model(num_classes=num_classes)
        summary = summarize(model, size, graph=target.graph, num_classes=num_classes)
    except Exception as exc:  # noqa: BLE001 - any failure on meta: build and run for real
        notes.append(f"ran on the CPU (the meta device failed: {type(exc).__name__})")
        model = build_model(target, num_classes)
        try:
            summary = summarize(model, size, graph=target.graph, num_classes=num_classes)
        except Exception as error:  # noqa: BLE001 - a model that fails on this input: say so, no traceback
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise RunError(
                f"{target.path}: forward pass on a 1x3x{size[0]}x{size[1]} input failed: {type(error).__name__}: "
                f"{first} (try another --input-size)"
            ) from None
    summary.name = target.name
    summary.task = target.task or summary.task
    summary.notes += notes
    return summary
