"""YOLO detection head family (YOLOv9's), as NetsPresso Trainer 1.4.1 builds it
(``models/heads/detection/experimental/yolo_head.py``).

Per level: a box branch predicting ``4 * reg_max`` distribution logits (grouped convs when ``use_group``) and a
class branch; the level's output is both concatenated, (B, 4 * reg_max + num_classes, H, W).

Peer behaviour reproduced here:
- Every level's branches are sized from the *first* level's width ``C0``: the box branch is
  ``max(C0 // 4 rounded up to the groups, 4 * reg_max)`` wide, the class branch ``max(C0, min(2 * num_classes,
  128))`` wide, so the class width depends on ``num_classes`` and is computed in the emitted module.
- Each level holds a frozen ``anchor2vec`` Conv3d with the bin values 0..reg_max-1 (a parameter with
  ``requires_grad=False``: counted in the parameters, not trainable) that the peer never calls.
- Both output convs' biases start at ``-log((1 - 0.01) / 0.01)``; every BatchNorm gets ``eps=1e-3,
  momentum=0.03``.
- The peer requires every key to be present but reads only ``act_type``, ``use_group`` and ``reg_max``:
  ``version`` is not read at all (only v9 exists), ``num_anchors`` is stored but unused, and the auxiliary
  branch behind ``use_aux_loss`` is commented out. The peer has no docs page for it; the defaults are those of
  its YOLOv9 examples.

Post-processing (``YOLODetectionDecoder``): each side's distance is the mean of its softmax over the bins times
the stride (input width // level width, as in the peer), measured from the cell centre (``cell * stride +
stride // 2``); score = best class probability, kept when ``>= score_thresh``. The spec's
``postprocessor.params.reg_max`` must equal the head's (the peer reads both).
"""

from __future__ import annotations

from typing import Any

from .._postprocess import settings
from .._registry import NUM_CLASSES, BuildError, Built, Component, Decoder, Feature, register
from ._common import ACTIVATIONS, act_param
from ._zoo_schema import boolean, choice, integer


@register
class YOLODetectionHead(Component):
    """YOLOv9 detection head: per-level distribution-focal box branch and classification branch."""

    kind = "head"
    name = "yolo_detection_head"
    tasks = ("detection",)
    template = "yolo_detection_head.py.jinja"
    postprocessor_template = "postprocess_yolo_detection_head.py.jinja"
    params = {
        "version": choice(["v9"], "v9", "YOLO head version; only v9 exists."),
        "num_anchors": integer(None, "Accepted for compatibility and unused (the head is anchor-free).", nullable=True),
        "use_group": boolean(True, "Use 4 groups in the box branch's second 3x3 conv and its 1x1 output conv."),
        "reg_max": integer(16, "Distribution bins per box side; must match the yolov9_loss reg_max."),
        "act_type": act_param("silu", "Activation used throughout the head."),
        "use_aux_loss": boolean(False, "Auxiliary head switch; accepted for compatibility, the peer ignores it."),
    }

    @classmethod
    def build(
        cls, params: dict[str, Any], stage_params: list | None, inputs: tuple[Feature, ...], *, task: str
    ) -> Built:
        return Built(
            class_name="YOLODetectionHead",
            kwargs={
                "in_channels": [feature.channels for feature in inputs],
                "num_classes": NUM_CLASSES,
                "reg_max": params["reg_max"],
                "use_group": bool(params["use_group"]),
                "act_layer": ACTIVATIONS[params["act_type"]],
            },
            outputs=(),
            blocks=("conv_layer",),
            output_keys=("pred",),
        )

    @classmethod
    def decoder(cls, params: dict[str, Any], postprocessor_params: dict[str, Any]) -> Decoder:
        reg_max = cls.resolve_params(params)["reg_max"]
        given = postprocessor_params.get("reg_max")
        if given is not None and given != reg_max:  # the peer reads both; they must agree
            raise BuildError("/params/reg_max", f"must equal the head's reg_max ({reg_max}), got {given}")
        # The peer's default for this head (postprocessors/detection.py, yolo_head_decode).
        return Decoder(
            "YOLODetectionDecoder", settings(postprocessor_params, {"score_thresh": 0.7}), {"reg_max": reg_max}
        )
