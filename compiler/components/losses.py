"""Losses (kind ``loss``): ``criterion`` names one; its other keys (besides ``weight``) are its parameters.

Names and parameters follow NetsPresso Trainer 1.4.1's loss registry and its example configs.
"""

from __future__ import annotations

from .._registry import Component, register
from ._common import param

DETECTION = ("detection",)
SEGMENTATION = ("segmentation",)
IGNORE_INDEX = param("integer", 255, "Target value that is ignored (contributes no gradient), e.g. unlabelled pixels.")
L1_ACTIVATE_EPOCH = param(
    ["integer", "null"], None, "Epoch from which the L1 box loss is added (null: never).", minimum=0
)


@register
class CrossEntropy(Component):
    """Cross-entropy over class logits, with optional label smoothing."""

    kind, name, tasks = "loss", "cross_entropy", ("classification",)
    params = {
        "label_smoothing": param(
            "number", 0.0, "Share of the target mass spread over all classes (0 = none).", minimum=0, maximum=1
        ),
    }


@register
class SegCrossEntropy(Component):
    """Per-pixel cross-entropy for semantic segmentation."""

    kind, name, tasks = "loss", "seg_cross_entropy", SEGMENTATION
    params = {"ignore_index": IGNORE_INDEX}


@register
class FocalLoss(Component):
    """Sigmoid focal loss (Lin et al.): down-weights easy examples."""

    kind, name, tasks = "loss", "focal_loss", ("classification", "detection")
    params = {
        "alpha": param("number", 0.25, "Weight of the positive class.", minimum=0, maximum=1),
        "gamma": param("number", 2.0, "Focusing exponent: larger values down-weight easy examples more.", minimum=0),
    }


@register
class PIDNetLoss(Component):
    """PIDNet's combined loss: segmentation, boundary-aware and auxiliary-branch terms."""

    kind, name, tasks = "loss", "pidnet_loss", SEGMENTATION
    params = {"ignore_index": IGNORE_INDEX}


@register
class YOLOXLoss(Component):
    """YOLOX loss: IoU box loss, objectness and classification BCE, optional L1 box term."""

    kind, name, tasks = "loss", "yolox_loss", DETECTION
    params = {"l1_activate_epoch": L1_ACTIVATE_EPOCH}


@register
class RetinaNetLoss(Component):
    """RetinaNet loss: sigmoid focal classification loss plus box regression loss over anchors."""

    kind, name, tasks = "loss", "retinanet_loss", DETECTION
    params = {}


@register
class YOLOv9Loss(Component):
    """YOLOv9 loss: distribution focal loss and IoU box loss with task-aligned assignment."""

    kind, name, tasks = "loss", "yolov9_loss", DETECTION
    params = {
        "reg_max": param("integer", 16, "Distribution bins per box side; must match the head.", minimum=1),
        "l1_activate_epoch": L1_ACTIVATE_EPOCH,
    }


@register
class YOLOFastestLoss(Component):
    """YOLO-Fastest-v2 loss over its anchor-based outputs."""

    kind, name, tasks = "loss", "yolofastest_loss", DETECTION
    params = {
        "anchors": param(
            ["array", "null"],
            None,
            "Anchor (w, h) pairs per output level, flattened per level.",
            items={"type": "array", "items": {"type": "number"}},
        ),
        "l1_activate_epoch": L1_ACTIVATE_EPOCH,
    }


@register
class DETRLoss(Component):
    """DETR-style set loss (RT-DETR): Hungarian matching, then varifocal classification and box losses."""

    kind, name, tasks = "loss", "detr_loss", DETECTION
    params = {
        "weight_dict": param(
            "object",
            {"loss_vfl": 1, "loss_bbox": 5, "loss_giou": 2},
            "Weight of each loss term by name.",
            additionalProperties={"type": "number"},
        ),
        "losses": param(
            "array",
            ["vfl", "boxes"],
            "Which loss terms to compute.",
            items={"enum": ["vfl", "boxes", "focal", "labels", "cardinality"]},
        ),
        "alpha": param("number", 0.75, "Varifocal loss alpha.", minimum=0),
        "gamma": param("number", 2.0, "Varifocal loss gamma.", minimum=0),
        "matcher": param(
            "object",
            {
                "type": "HungarianMatcher",
                "weight_dict": {"cost_class": 2, "cost_bbox": 5, "cost_giou": 2},
                "alpha": 0.25,
                "gamma": 2.0,
                "use_focal_loss": True,
            },
            "How predictions are matched to targets before the loss.",
            properties={
                "type": {"enum": ["HungarianMatcher"], "description": "Matching algorithm."},
                "weight_dict": {
                    "type": "object",
                    "additionalProperties": {"type": "number"},
                    "description": "Cost of each matching term by name.",
                },
                "alpha": {"type": "number", "description": "Focal cost alpha."},
                "gamma": {"type": "number", "description": "Focal cost gamma."},
                "use_focal_loss": {"type": "boolean", "description": "Use the focal classification cost."},
            },
            additionalProperties=False,
        ),
    }


@register
class RTMCCLoss(Component):
    """RTMPose's SimCC loss: KL divergence between predicted and Gaussian-smoothed keypoint bins."""

    kind, name, tasks = "loss", "rtmcc_loss", ("pose_estimation",)
    params = {}
