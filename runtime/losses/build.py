"""The spec's ``losses`` as one module: each criterion times its ``weight``, summed (weight ``~`` means 1).

Criteria: ``cross_entropy`` and ``focal_loss`` (classification), ``seg_cross_entropy`` and ``pidnet_loss``
(segmentation), ``rtmcc_loss`` (pose, ``rtmcc``; see :mod:`._losses_zoo`), ``retinanet_loss`` (detection,
``anchor_decoupled_head``) and ``yolox_loss`` (detection, ``anchor_free_decoupled_head``; see
:mod:`._losses_detection`), ``yolov9_loss`` (detection, ``yolo_detection_head``) and ``yolofastest_loss``
(detection, ``yolo_fastest_head_v2``; see :mod:`._losses_yolo`), ``detr_loss`` (detection, ``rtdetr_head``; see
:mod:`._losses_detr`).
Any other criterion, a parameter a criterion does not take, or a loss that does not fit the head is reported at its
spec position. Unlike NetsPresso Trainer, which keys losses by criterion name (so a second entry with the same
criterion replaces the first), every entry counts.

Every criterion is called as ``term(out, target, image_size)``: ``out`` the model's output dict, ``target`` what the
data gives (class indices, masks, or a list of box dicts), ``image_size`` the (H, W) of the input batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...compiler import registry
from ...spec import Diagnostic, LossSpec, Source, SpecError
from ..errors import INVALID, RunError
from .detection import RetinaNetLoss, YOLOXLoss, sigmoid_focal_loss
from .detr import DETRLoss, LossParamError
from .yolo import YOLOFastestLoss, YOLOv9Loss
from .zoo import PIDNetLoss, RTMCCLoss

__all__ = ["CRITERIA", "CombinedLoss", "build_loss", "default_loss"]


class CrossEntropy(nn.Module):
    def __init__(self, label_smoothing: float = 0.0, ignore_index: int = -100) -> None:
        super().__init__()
        self.loss = nn.CrossEntropyLoss(ignore_index=ignore_index, label_smoothing=label_smoothing)

    def forward(self, out: dict[str, Any], target: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        if target.is_floating_point():  # class probabilities (augmentation's mixing): no index to ignore
            return F.cross_entropy(out["pred"], target, label_smoothing=self.loss.label_smoothing)
        return self.loss(out["pred"], target)


class SegCrossEntropy(CrossEntropy):
    """Per-pixel cross-entropy; the logits are first upsampled (bilinear) to the mask's size, as the peer does."""

    def forward(self, out: dict[str, Any], target: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        logits = F.interpolate(out["pred"], size=target.shape[-2:], mode="bilinear", align_corners=False)
        labelled = target[target != self.loss.ignore_index]
        if labelled.numel() and int(labelled.max()) >= logits.shape[1]:
            raise RunError(
                f"a mask holds the value {int(labelled.max())}, but the model has {logits.shape[1]} classes; "
                f"unlabelled pixels (255) need seg_cross_entropy's ignore_index: 255 (it is {self.loss.ignore_index})"
            )
        return self.loss(logits, target)


class FocalLoss(nn.Module):
    """Sigmoid focal loss over one-hot class targets, averaged over every (sample, class) entry as the peer does."""

    def __init__(self, alpha: float = 0.25, gamma: float = 2.0) -> None:
        super().__init__()
        self.alpha, self.gamma = alpha, gamma

    def forward(self, out: dict[str, Any], target: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        logits = out["pred"]
        if target.is_floating_point():  # class probabilities (augmentation's mixing) are the soft one-hot
            one_hot = target.to(logits.dtype)
        else:
            one_hot = F.one_hot(target, logits.shape[-1]).to(logits.dtype)
        return sigmoid_focal_loss(logits, one_hot, self.alpha, self.gamma).mean()


@dataclass(frozen=True)
class Criterion:
    """How npc train builds a loss the registry declares (compiler/components/losses.py holds its tasks and its
    parameters with their defaults, the one place for them; the constructor takes the same defaults)."""

    make: Callable[..., nn.Module]
    head: str | None = None  # the detection head whose outputs the loss reads

    @staticmethod
    def declared(name: str) -> type[registry.Component]:
        return registry.get("loss", name)


CRITERIA: dict[str, Criterion] = {
    "cross_entropy": Criterion(CrossEntropy),
    "focal_loss": Criterion(FocalLoss),
    "seg_cross_entropy": Criterion(SegCrossEntropy),
    "pidnet_loss": Criterion(PIDNetLoss),
    "rtmcc_loss": Criterion(RTMCCLoss, head="rtmcc"),
    "retinanet_loss": Criterion(RetinaNetLoss, head="anchor_decoupled_head"),
    "yolox_loss": Criterion(YOLOXLoss, head="anchor_free_decoupled_head"),
    "yolov9_loss": Criterion(YOLOv9Loss, head="yolo_detection_head"),
    "yolofastest_loss": Criterion(YOLOFastestLoss, head="yolo_fastest_head_v2"),
    "detr_loss": Criterion(DETRLoss, head="rtdetr_head"),
}


def _tasks(name: str) -> tuple[str, ...]:
    return Criterion.declared(name).tasks


@dataclass(frozen=True)
class LossTerm:
    name: str  # "cross_entropy", or "cross_entropy#2" for a repeated criterion
    weight: float
    module: nn.Module


class CombinedLoss(nn.Module):
    """``forward(out, target, image_size) -> (total, {name: unweighted value})``; ``out`` is the model's output."""

    def __init__(self, terms: list[LossTerm]) -> None:
        super().__init__()
        self.names = [t.name for t in terms]
        self.weights = [t.weight for t in terms]
        self.terms = nn.ModuleList([t.module for t in terms])

    def set_epoch(self, epoch: int | None) -> None:
        """The 1-based epoch being trained (None: evaluation), for terms that change with it (yolox_loss's L1)."""
        for term in self.terms:
            if hasattr(term, "set_epoch"):
                term.set_epoch(epoch)

    def forward(
        self, out: dict[str, Any], target: Any, image_size: tuple[int, int] | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        total: torch.Tensor | float = 0.0
        parts: dict[str, float] = {}
        for name, weight, term in zip(self.names, self.weights, self.terms):
            value = term(out, target, image_size)
            parts[name] = float(value.detach())
            total = total + weight * value
        return total, parts


def default_loss(task: str, head: str | None) -> str | None:
    """The criterion used when the spec lists none (None: no default for this head)."""
    if task == "classification":
        return "cross_entropy"
    if task == "segmentation":  # pidnet's P and D branches learn only from pidnet_loss
        return "pidnet_loss" if head == "pidnet" else "seg_cross_entropy"
    return next((name for name, c in CRITERIA.items() if c.head is not None and c.head == head), None)


def build_loss(
    losses: tuple[LossSpec, ...],
    source: Source | None = None,
    *,
    task: str = "classification",
    head: str | None = None,
) -> tuple[CombinedLoss, list[str]]:
    """The combined loss and notes for the user; unsupported criteria or params raise :class:`SpecError`."""
    notes: list[str] = []
    if not losses:
        name = default_loss(task, head)
        if name is None:
            supported = ", ".join(f"{n} ({c.head})" for n, c in CRITERIA.items() if c.head)
            _raise([("/model/losses", f"no loss fits the head {head!r} yet (npc train supports {supported})")], source)
        params = {"ignore_index": 255} if _tasks(name) == ("segmentation",) else {}
        notes.append(f"the spec lists no losses: using {name}" + (" with ignore_index 255" if params else ""))
        return CombinedLoss([LossTerm(name, 1.0, CRITERIA[name].make(**params))]), notes
    problems: list[tuple[str, str]] = []
    terms: list[LossTerm] = []
    seen: dict[str, int] = {}
    for loss in losses:
        criterion = CRITERIA.get(loss.criterion)
        if criterion is None or task not in _tasks(loss.criterion):
            supported = ", ".join(n for n in CRITERIA if task in _tasks(n))
            problems.append(
                (
                    f"{loss.pointer}/criterion",
                    f"loss {loss.criterion!r} is not supported by npc train for {task} (supported: {supported})",
                )
            )
            continue
        if criterion.head is not None and head != criterion.head:
            problems.append(
                (f"{loss.pointer}/criterion", f"{loss.criterion} needs the head {criterion.head}; the head is {head}")
            )
            continue
        accepted = Criterion.declared(loss.criterion).defaults()
        unknown = sorted(k for k, v in loss.params.items() if k not in accepted and v is not None)
        for key in unknown:
            problems.append((f"{loss.pointer}/{key}", f"{loss.criterion}: parameter {key!r} is not supported"))
        if unknown:
            continue
        params = {k: v for k, v in loss.params.items() if v is not None}
        smoothing = params.get("label_smoothing", 0.0)
        if not 0.0 <= float(smoothing) <= 1.0:
            problems.append((f"{loss.pointer}/label_smoothing", f"must be in [0, 1], got {smoothing}"))
            continue
        seen[loss.criterion] = seen.get(loss.criterion, 0) + 1
        name = loss.criterion if seen[loss.criterion] == 1 else f"{loss.criterion}#{seen[loss.criterion]}"
        try:
            module = criterion.make(**params)
        except LossParamError as exc:
            problems.append((f"{loss.pointer}/{exc.key}", str(exc)))
            continue
        terms.append(LossTerm(name, loss.weight, module))
    if problems:
        _raise(problems, source)
    return CombinedLoss(terms), notes


def _raise(problems: list[tuple[str, str]], source: Source | None) -> None:
    path = source.path if source else "<spec>"
    diagnostics = []
    for pointer, message in problems:
        line, col = (source.position(pointer) if source else None) or (None, None)
        diagnostics.append(Diagnostic(path, pointer, message, line, col, "semantic"))
    raise SpecError(diagnostics, INVALID)
