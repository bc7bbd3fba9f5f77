"""From spec to ``nn.Module``: compile (or take a given model.py), import it from a file, build, load weights, freeze.

The source is imported from a file on disk with importlib — the file a run folder keeps next to its weights — so
what trained is exactly what a user can later import. A model.py that fails to import or lacks
``build_model(num_classes)`` is reported with its path.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
import torch.fx
from torch import nn

from ...spec import Checkpoint, Diagnostic, SpecError
from ...spec.run_config import RunConfig
from ..checkpoint import LoadReport, apply_weights, load_weights
from ..errors import INVALID, UNUSABLE, RunError

__all__ = [
    "DETECTION_LAYOUTS",
    "apply_checkpoint",
    "build",
    "check_output",
    "compile_source",
    "freeze_backbone",
    "head_name",
    "import_model",
    "model_source",
    "takes_training_targets",
    "training_targets_feeder",
    "unused_in_training",
]


def compile_source(config: RunConfig) -> str:
    """The compiled model.py text for the run's spec; compile errors become located diagnostics."""
    from ...compiler import CompileError, compile_spec, sha256_of

    try:
        return compile_spec(config.spec, spec_sha256=sha256_of(config.spec_path)).source
    except CompileError as exc:
        line, col = config.spec_source.position(exc.pointer) or (None, None)
        diagnostic = Diagnostic(config.spec_path, exc.pointer, exc.message, line, col, "compile")
        raise SpecError([diagnostic], INVALID) from None


def model_source(config: RunConfig, model_py: str | Path | None) -> str:
    """``model_py``'s text when given, else the spec compiled now."""
    if model_py is None:
        return compile_source(config)
    try:
        return Path(model_py).read_text(encoding="utf-8")
    except OSError as exc:
        raise RunError(f"{model_py}: cannot read model file ({exc.strerror or exc})", UNUSABLE) from None


def import_model(path: str | Path) -> ModuleType:
    """Import ``path`` as a fresh module (a unique name per file content, so two runs never share one)."""
    path = Path(path).resolve()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    name = f"npc_model_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise RunError(f"{path}: cannot import (not a Python file?)", UNUSABLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses / pickling look modules up by name
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        where = _frame_in(path, exc)
        raise RunError(f"{where}: importing the model failed: {type(exc).__name__}: {exc}") from None
    if not callable(getattr(module, "build_model", None)):
        raise RunError(f"{path}: defines no build_model(num_classes) function")
    return module


def _frame_in(path: Path, exc: BaseException) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename).resolve() == path]
    if isinstance(exc, SyntaxError) and exc.lineno:
        return f"{path}:{exc.lineno}"
    return f"{path}:{frames[-1].lineno}" if frames else str(path)


def build(module: ModuleType, num_classes: int, path: str | Path) -> nn.Module:
    try:
        model = module.build_model(num_classes=num_classes)
    except Exception as exc:
        raise RunError(f"{path}: build_model(num_classes={num_classes}) failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(model, nn.Module):
        raise RunError(f"{path}: build_model() returned {type(model).__name__}, not an nn.Module")
    return model


def check_output(
    out: Any,
    num_classes: int,
    batch: int,
    path: str | Path,
    task: str = "classification",
    head: str | None = None,
) -> None:
    """A clear error when the first forward pass does not return what the task's loss and metrics read."""
    if task == "detection":
        _check_detection_output(out, num_classes, batch, path, head)
        return
    if task == "pose_estimation":
        _check_pose_output(out, num_classes, batch, path)
        return
    what = "classification logits" if task == "classification" else "per-pixel class logits"
    if not isinstance(out, dict) or "pred" not in out:
        got = f"dict with keys {sorted(out)}" if isinstance(out, dict) else type(out).__name__
        raise RunError(f"{path}: forward() must return a dict with 'pred' ({what}); got {got}")
    pred = out["pred"]
    shape = tuple(pred.shape) if isinstance(pred, torch.Tensor) else type(pred).__name__
    if task == "segmentation":
        if not isinstance(pred, torch.Tensor) or pred.dim() != 4 or tuple(pred.shape[:2]) != (batch, num_classes):
            raise RunError(f"{path}: forward()['pred'] has shape {shape}; expected ({batch}, {num_classes}, H, W)")
    elif not isinstance(pred, torch.Tensor) or tuple(pred.shape) != (batch, num_classes):
        raise RunError(f"{path}: forward()['pred'] has shape {shape}; expected ({batch}, {num_classes})")


@dataclass(frozen=True)
class DetectionLayout:
    """What one detection head's forward() returns, as its loss and postprocessor read it."""

    head: str
    outputs: str  # the layout in words, for error messages
    fits: Callable[[Any], bool]  # the output has this layout's structure
    mismatch: Callable[[Any, int, int], str | None]  # (out, num_classes, batch) -> what is wrong, or None


def _levels(out: Any, key: str, dims: int) -> bool:
    value = out.get(key) if isinstance(out, dict) else None
    return (
        isinstance(value, list) and bool(value) and all(isinstance(x, torch.Tensor) and x.dim() == dims for x in value)
    )


def _shapes(tensors: list[torch.Tensor]) -> list[tuple[int, ...]]:
    return [tuple(x.shape) for x in tensors]


def _anchor_decoupled_mismatch(out: Any, num_classes: int, batch: int) -> str | None:
    if any(x.shape[0] != batch or x.shape[-1] != num_classes for x in out["cls_logits"]):
        return f"forward()['cls_logits'] has shapes {_shapes(out['cls_logits'])}; expected (B, anchors, {num_classes})"
    return None


def _yolox_mismatch(out: Any, num_classes: int, batch: int) -> str | None:
    if any(x.shape[0] != batch or x.shape[1] != 5 + num_classes for x in out["pred"]):
        return f"forward()['pred'] levels have shapes {_shapes(out['pred'])}; expected (B, {5 + num_classes}, H, W)"
    return None


def _yolov9_mismatch(out: Any, num_classes: int, batch: int) -> str | None:
    box_channels = {x.shape[1] - num_classes for x in out["pred"]}
    if any(x.shape[0] != batch for x in out["pred"]) or len(box_channels) != 1 or min(box_channels) % 4:
        return (
            f"forward()['pred'] levels have shapes {_shapes(out['pred'])}; expected (B, 4 x reg_max + {num_classes}, "
            "H, W) on every level"
        )
    return None


def _yolo_fastest_mismatch(out: Any, num_classes: int, batch: int) -> str | None:
    if any(x.shape[0] != batch or x.shape[2] != 5 + num_classes for x in out["pred"]):
        return (
            f"forward()['pred'] levels have shapes {_shapes(out['pred'])}; expected (B, anchors, {5 + num_classes}, "
            "H, W)"
        )
    return None


def _rtdetr_mismatch(out: Any, num_classes: int, batch: int) -> str | None:
    pred = out["pred"]
    if pred.shape[0] != batch or pred.shape[-1] != 4 + num_classes:
        return f"forward()['pred'] has shape {tuple(pred.shape)}; expected (B, queries, {4 + num_classes})"
    return None


DETECTION_LAYOUTS: tuple[DetectionLayout, ...] = (
    DetectionLayout(
        "anchor_decoupled_head",
        "anchors, cls_logits and bbox_regression",
        lambda out: _levels(out, "cls_logits", 3) and "anchors" in out,
        _anchor_decoupled_mismatch,
    ),
    DetectionLayout(
        "anchor_free_decoupled_head",
        "pred: per level (B, 5 + classes, H, W)",
        lambda out: _levels(out, "pred", 4),
        _yolox_mismatch,
    ),
    DetectionLayout(
        "yolo_detection_head",
        "pred: per level (B, 4 x reg_max + classes, H, W)",
        lambda out: _levels(out, "pred", 4),
        _yolov9_mismatch,
    ),
    DetectionLayout(
        "yolo_fastest_head_v2",
        "pred: per level (B, anchors, 5 + classes, H, W)",
        lambda out: _levels(out, "pred", 5),
        _yolo_fastest_mismatch,
    ),
    DetectionLayout(
        "rtdetr_head",
        "pred: (B, queries, 4 + classes), in training also aux_pred, dn_aux_pred and dn_meta",
        lambda out: isinstance(out, dict) and isinstance(out.get("pred"), torch.Tensor) and out["pred"].dim() == 3,
        _rtdetr_mismatch,
    ),
)


def _check_detection_output(out: Any, num_classes: int, batch: int, path: str | Path, head: str | None) -> None:
    """The spec's head decides the layout; a model without a known head (a ``full`` model, another model.py)
    passes when any layout's structure and shapes fit."""
    got = f"a dict with keys {sorted(out)}" if isinstance(out, dict) else type(out).__name__
    supported = "; ".join(f"{layout.head} ({layout.outputs})" for layout in DETECTION_LAYOUTS)
    layout = next((layout for layout in DETECTION_LAYOUTS if layout.head == head), None)
    if layout is None:
        candidates = [layout for layout in DETECTION_LAYOUTS if layout.fits(out)]
        problems = [layout.mismatch(out, num_classes, batch) for layout in candidates]
        if candidates and None in problems:
            return
        if problems:
            raise RunError(f"{path}: {problems[0]}")
        named = f"the head {head}" if head else "this model"
        raise RunError(f"{path}: npc train cannot read the outputs of {named} ({got}); it supports {supported}")
    if not layout.fits(out):
        raise RunError(f"{path}: {head} should return {layout.outputs}; got {got} (npc train supports {supported})")
    problem = layout.mismatch(out, num_classes, batch)
    if problem:
        raise RunError(f"{path}: {head}: {problem}")


def takes_training_targets(model: nn.Module) -> bool:
    """Whether a module of ``model`` (RT-DETR's head) builds part of its training forward from the ground truth."""
    return any(callable(getattr(m, "set_training_targets", None)) for m in model.modules())


def unused_in_training(model: nn.Module, input_size: tuple[int, int]) -> list[str]:
    """Parameters one training forward at ``input_size`` leaves without a gradient, e.g. EfficientFormer's final
    norm under a detection neck, kept for the peer's state_dict. DistributedDataParallel must be told of them
    (``find_unused_parameters``) or it waits for their gradients forever; found on a ``meta`` copy, so the model's
    weights and running statistics are untouched and nothing is computed."""
    import copy

    probe = copy.deepcopy(model).to("meta").train()
    # Two images: BatchNorm refuses one sample when a feature map is 1x1 (the digits at 16 px end that small).
    outputs = probe(torch.zeros(2, 3, *input_size, device="meta"))
    total = sum(tensor.float().sum() for tensor in _tensors(outputs) if tensor.requires_grad)
    if isinstance(total, torch.Tensor):
        total.backward()
    return [name for name, p in probe.named_parameters() if p.requires_grad and p.grad is None]


def _tensors(value: Any):
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item)


def training_targets_feeder(model: nn.Module) -> Callable[[Any, tuple[int, int]], None]:
    """``feed(targets, image_size)``, to call before each training forward pass.

    RT-DETR's head makes its denoising queries from the ground truth inside forward(); the compiled head takes
    them through ``set_training_targets`` (boxes in pixels, as NetsPresso Trainer passes them). Models without
    such a module get a feeder that does nothing.
    """
    sinks = [m.set_training_targets for m in model.modules() if callable(getattr(m, "set_training_targets", None))]

    def feed(targets: Any, image_size: tuple[int, int]) -> None:
        for sink in sinks:
            sink({"img_size": image_size, "gt": targets})

    return feed


def _check_pose_output(out: Any, num_keypoints: int, batch: int, path: str | Path) -> None:
    """rtmcc_loss and the pose metrics read ``pred``: (B, K, X + Y) SimCC logits, x bins then y bins."""
    pred = out.get("pred") if isinstance(out, dict) else None
    if not isinstance(pred, torch.Tensor):
        got = f"a dict with keys {sorted(out)}" if isinstance(out, dict) else type(out).__name__
        raise RunError(f"{path}: forward() must return a dict with 'pred' (SimCC keypoint logits); got {got}")
    if pred.dim() != 3 or tuple(pred.shape[:2]) != (batch, num_keypoints):
        raise RunError(
            f"{path}: forward()['pred'] has shape {tuple(pred.shape)}; expected ({batch}, {num_keypoints}, x bins + "
            f"y bins) for {num_keypoints} keypoints"
        )


def head_name(config: RunConfig) -> str | None:
    """The name of the component whose outputs the loss reads: the spec's head, or a ``full`` model (``pidnet``)."""
    return next((c.name for c in config.spec.components if c.kind in ("head", "full")), None)


def apply_checkpoint(
    model: nn.Module, checkpoint: Checkpoint, *, trust_pickle: bool = False
) -> tuple[LoadReport | None, list[str]]:
    """Honour ``model.checkpoint``: load ``path`` when ``use_pretrained``; returns the report and notes.

    ``use_pretrained: true`` without a path asks NetsPresso Trainer to download its published weights; npc has
    no weight hub (it works offline), so it says so and trains from scratch. ``fx_model_checkpoint`` is a pickled
    torch.fx GraphModule: unpickling runs code, so it is read only when the user says they trust the file.
    """
    notes: list[str] = []
    if checkpoint.fx_model:
        return _apply_fx_model(model, checkpoint.fx_model, trust_pickle)
    if not checkpoint.use_pretrained:
        if checkpoint.path:
            notes.append(f"checkpoint.path {checkpoint.path} is not loaded because use_pretrained is false")
        return None, notes
    if not checkpoint.path:
        notes.append(
            "checkpoint.use_pretrained is true but no checkpoint.path is given: npc has no weight hub (it works "
            "offline), so the model starts from scratch. Download the weights and set checkpoint.path to use them"
        )
        return None, notes
    state, _ = load_weights(checkpoint.path)
    report = apply_weights(model, state, checkpoint.path, load_head=checkpoint.load_head)
    notes.append(
        f"loaded {report.loaded} tensors from {checkpoint.path}"
        + (f" (skipped {report.skipped_head} head tensors: load_head is false)" if report.skipped_head else "")
    )
    notes += report.warnings
    return report, notes


def _apply_fx_model(model: nn.Module, path: str, trust_pickle: bool) -> tuple[LoadReport, list[str]]:
    """Weights of a torch.fx GraphModule (``npc export --to fx``, or the peer's fx checkpoints).

    The compiled model is still what trains: the GraphModule only supplies its state dict, whose keys are the
    traced module's, so every tensor must fit (strict); a GraphModule of another architecture is an error.
    """
    if not trust_pickle:
        raise RunError(
            f"{path}: fx_model_checkpoint is a pickled torch.fx model and unpickling runs code from the file. "
            "Pass --trust-pickle if you made it (npc export --to fx) or trust its author; otherwise load a "
            "state dict (.safetensors) via checkpoint.path",
            UNUSABLE,
        )
    if not Path(path).is_file():
        raise RunError(f"{path}: fx_model_checkpoint not found", UNUSABLE)
    try:
        graph_module = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # a damaged or foreign file: say what it is, never a traceback
        raise RunError(f"{path}: cannot load fx_model_checkpoint: {type(exc).__name__}: {exc}") from None
    if not isinstance(graph_module, torch.fx.GraphModule):
        raise RunError(f"{path}: fx_model_checkpoint holds a {type(graph_module).__name__}, not a torch.fx GraphModule")
    report = apply_weights(model, graph_module.state_dict(), path, strict=True)
    return report, [f"loaded {report.loaded} tensors from the fx model {path}", *report.warnings]


def freeze_backbone(model: nn.Module) -> bool:
    """Stop the backbone learning: its parameters get no gradient and its BatchNorm statistics stay fixed.

    Call :func:`keep_frozen_eval` after every ``model.train()``. Returns False when the model has no ``backbone``
    (a ``full`` model), where nothing is frozen — as in NetsPresso Trainer.
    """
    backbone = getattr(model, "backbone", None)
    if not isinstance(backbone, nn.Module):
        return False
    for param in backbone.parameters():
        param.requires_grad_(False)
    return True


def keep_frozen_eval(model: nn.Module) -> None:
    """Put a frozen backbone back in eval mode (BatchNorm uses and keeps its running statistics)."""
    backbone = getattr(model, "backbone", None)
    if isinstance(backbone, nn.Module):
        backbone.eval()
