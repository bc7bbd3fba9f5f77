"""Losses (kind ``loss``), as NetsPresso Trainer 1.4.1 builds them (``losses/registry.py``).

``criterion`` names a loss; every other key except ``weight`` is passed to the loss's constructor, so those keys
are its parameters. Defaults are the constructors' own; where a constructor has none (the key is required by the
peer) the default is the value of the peer's example config.

Doc vs source: ``seg_cross_entropy`` and ``pidnet_loss`` default ``ignore_index`` to -100 (PyTorch's), not 255;
the examples set 255 explicitly. ``detr_loss`` defaults ``alpha`` to 0.2 (its examples set 0.75). Keys the peer
accepts but ignores (``size_average``/``reduce`` of the cross entropies) are not accepted.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .._registry import Component, Issue, register
from ._common import param
from ._zoo_schema import integer, number, probability
from .yolo_fastest_head_v2 import DEFAULT_ANCHORS, anchor_issues

CLASSIFICATION = ("classification",)
SEGMENTATION = ("segmentation",)
DETECTION = ("detection",)


def _ignore_index() -> dict[str, Any]:
    return integer(
        -100, "Target value that contributes nothing to the loss, e.g. 255 for unlabelled pixels.", minimum=None
    )


def _label_smoothing() -> dict[str, Any]:
    return probability(0.0, "Share of the target probability spread uniformly over all classes (0 = none).")


@register
class CrossEntropy(Component):
    """Cross-entropy over class logits, with optional label smoothing."""

    kind, name, tasks = "loss", "cross_entropy", CLASSIFICATION
    params = {"label_smoothing": _label_smoothing(), "ignore_index": _ignore_index()}


@register
class SegCrossEntropy(Component):
    """Per-pixel cross-entropy; logits are first upsampled bilinearly to the label map's size."""

    kind, name, tasks = "loss", "seg_cross_entropy", SEGMENTATION
    params = {"label_smoothing": _label_smoothing(), "ignore_index": _ignore_index()}


@register
class FocalLoss(Component):
    """Sigmoid focal loss: binary cross-entropy that down-weights well-classified examples."""

    kind, name, tasks = "loss", "focal_loss", CLASSIFICATION
    params = {
        "alpha": number(
            0.25, "Weight of the positive targets (1 - alpha for the negatives); a negative value disables it."
        ),
        "gamma": number(2.0, "Focusing exponent: larger values down-weight easy examples more.", minimum=0),
    }


@register
class PIDNetLoss(Component):
    """PIDNet's loss: cross-entropy on the main and detail outputs, boundary BCE, boundary-aware cross-entropy."""

    kind, name, tasks = "loss", "pidnet_loss", SEGMENTATION
    params = {"ignore_index": _ignore_index()}


@register
class YOLOXLoss(Component):
    """YOLOX loss: SimOTA assignment, IoU box loss, objectness and class BCE, and an L1 box term once enabled."""

    kind, name, tasks = "loss", "yolox_loss", DETECTION
    params = {
        "l1_activate_epoch": integer(
            1, "Epoch from which the L1 box term is added (the peer requires a number here).", minimum=0
        ),
    }


@register
class RetinaNetLoss(Component):
    """RetinaNet loss: focal classification loss and L1 box regression over IoU-matched anchors."""

    kind, name, tasks = "loss", "retinanet_loss", DETECTION
    params: dict[str, dict[str, Any]] = {}


@register
class YOLOv9Loss(Component):
    """YOLOv9 loss: task-aligned assignment, class BCE, CIoU box loss and distribution focal loss."""

    kind, name, tasks = "loss", "yolov9_loss", DETECTION
    params = {
        "reg_max": integer(16, "Distribution bins per box side; must match the yolo_detection_head reg_max."),
        "l1_activate_epoch": integer(
            None, "Accepted for compatibility and unused by this loss.", minimum=0, nullable=True
        ),
    }


@register
class YOLOFastestLoss(Component):
    """YOLO-Fastest-v2 loss: anchor-based assignment, GIoU box loss, objectness and class BCE."""

    kind, name, tasks = "loss", "yolofastest_loss", DETECTION
    params = {
        "anchors": param(
            "array",
            DEFAULT_ANCHORS,
            "Anchor sizes in pixels per output level as flat (width, height) pairs; should match the head's.",
            items={"type": "array", "minItems": 2, "items": {"type": "number", "exclusiveMinimum": 0}},
            minItems=1,
        ),
        "l1_activate_epoch": integer(
            None,
            "Accepted for compatibility and unused (this loss never adds an L1 term).",
            minimum=0,
            nullable=True,
        ),
    }

    @classmethod
    def check(cls, params: dict[str, Any], stage_params: list | None, task: str) -> Iterator[Issue]:
        yield from anchor_issues(cls.resolve_params(params)["anchors"], "/anchors")


LOSS_TERMS = {  # term in `losses` -> the weight_dict keys it produces
    "vfl": ("loss_vfl",),
    "focal": ("loss_focal",),
    "labels": ("loss_ce",),
    "boxes": ("loss_bbox", "loss_giou"),
    "cardinality": ("cardinality_error",),
}
TERM_WEIGHT = {"type": "number", "minimum": 0}


@register
class DETRLoss(Component):
    """DETR-style set loss (RT-DETR): Hungarian matching, then classification and box losses per layer."""

    kind, name, tasks = "loss", "detr_loss", DETECTION
    params = {
        "weight_dict": param(
            "object",
            {"loss_vfl": 1, "loss_bbox": 5, "loss_giou": 2},
            "Weight of each loss term; a term missing here is computed but contributes nothing.",
            properties={
                "loss_vfl": TERM_WEIGHT | {"description": "Varifocal classification loss (term `vfl`)."},
                "loss_focal": TERM_WEIGHT | {"description": "Sigmoid focal classification loss (term `focal`)."},
                "loss_ce": TERM_WEIGHT | {"description": "Softmax cross-entropy classification loss (term `labels`)."},
                "loss_bbox": TERM_WEIGHT | {"description": "L1 loss on normalised boxes (term `boxes`)."},
                "loss_giou": TERM_WEIGHT | {"description": "Generalised-IoU box loss (term `boxes`)."},
                "cardinality_error": TERM_WEIGHT | {"description": "Count error, for logging (term `cardinality`)."},
            },
            additionalProperties=False,
        ),
        "losses": param(
            "array",
            ["vfl", "boxes"],
            "Loss terms to compute: `vfl`, `focal` or `labels` for classes, `boxes`, `cardinality`.",
            items={"enum": list(LOSS_TERMS)},
            minItems=1,
            uniqueItems=True,
        ),
        "alpha": number(0.2, "Alpha of the varifocal and focal classification terms.", minimum=0),
        "gamma": number(2.0, "Gamma (focusing exponent) of the varifocal and focal classification terms.", minimum=0),
        "matcher": param(
            "object",
            {
                "type": "HungarianMatcher",
                "weight_dict": {"cost_class": 2, "cost_bbox": 5, "cost_giou": 2},
                "alpha": 0.25,
                "gamma": 2.0,
                "use_focal_loss": True,
            },
            "How predictions are matched one-to-one with targets before the loss.",
            properties={
                "type": {"enum": ["HungarianMatcher"], "description": "Matching algorithm (only HungarianMatcher)."},
                "weight_dict": {
                    "type": "object",
                    "description": "Weight of each matching cost; they cannot all be zero.",
                    "properties": {
                        "cost_class": {"type": "number", "description": "Classification cost."},
                        "cost_bbox": {"type": "number", "description": "L1 box-distance cost."},
                        "cost_giou": {"type": "number", "description": "Generalised-IoU cost."},
                    },
                    "required": ["cost_class", "cost_bbox", "cost_giou"],
                    "additionalProperties": False,
                },
                "alpha": {"type": "number", "description": "Alpha of the focal classification cost."},
                "gamma": {"type": "number", "description": "Gamma of the focal classification cost."},
                "use_focal_loss": {
                    "type": "boolean",
                    "description": "Score classes with sigmoid focal costs instead of softmax probabilities.",
                },
            },
            required=["type", "weight_dict", "alpha", "gamma", "use_focal_loss"],
            additionalProperties=False,
        ),
    }

    @classmethod
    def check(cls, params: dict[str, Any], stage_params: list | None, task: str) -> Iterator[Issue]:
        params = cls.resolve_params(params)
        costs = params["matcher"]["weight_dict"]
        if not any(costs.values()):
            yield Issue("/matcher/weight_dict", "the matching costs cannot all be zero")
        weights = params["weight_dict"]
        for position, term in enumerate(params["losses"]):
            if term != "cardinality" and not any(key in weights for key in LOSS_TERMS[term]):
                keys = " or ".join(LOSS_TERMS[term])
                yield Issue(
                    f"/losses/{position}",
                    f"term {term!r} has no weight: add {keys} to weight_dict, or it contributes nothing",
                )


@register
class RTMCCLoss(Component):
    """RTMPose's SimCC loss: KL divergence between predicted and Gaussian-smoothed x/y coordinate bins."""

    kind, name, tasks = "loss", "rtmcc_loss", ("pose_estimation",)
    params: dict[str, dict[str, Any]] = {}
