"""AnchorFreeDecoupledHead detection head (YOLOX's), as NetsPresso Trainer 1.4.1 builds it
(``models/heads/detection/experimental/anchor_free_decoupled_head.py``).

Per level: a 1x1 stem to the *first* level's width, then separate classification and regression towers of two
3x3 convs; 1x1 biased convs predict the classes, the box (4) and the objectness (1). The output is ``pred``: per
level (B, 4 + 1 + num_classes, H, W), channels ordered box, objectness, classes.

Peer behaviour reproduced here:
- ``depthwise`` makes the towers' 3x3 convs depthwise-separable; the stems stay plain 1x1 ConvLayers.
- Every BatchNorm gets ``eps=1e-3, momentum=0.03``; the class and objectness biases start at
  ``-log((1 - 0.01) / 0.01)`` (prior probability 0.01).

Post-processing (``AnchorFreeDecoupledDecoder``): boxes are ``(offset + cell) * stride`` centres and
``exp(log-size) * stride`` sizes, where the stride is input width // level width for both axes (as the peer
computes it); score = objectness x best class probability, kept when ``>= score_thresh``; not clipped.

Doc vs source: the docs call the head ``yolox_head`` and type ``act_type`` as a float; the registry name is
``anchor_free_decoupled_head`` and ``act_type`` is an activation name.
"""

from __future__ import annotations

from typing import Any

from .._postprocess import settings
from .._registry import NUM_CLASSES, Built, Component, Decoder, Feature, register
from ._common import ACTIVATIONS, act_param
from ._zoo_schema import boolean
from .cspdarknet import CONV_LAYERS, yolox_blocks


@register
class AnchorFreeDecoupledHead(Component):
    """YOLOX anchor-free detection head with decoupled classification and box/objectness branches per level."""

    kind = "head"
    name = "anchor_free_decoupled_head"
    tasks = ("detection",)
    template = "anchor_free_decoupled_head.py.jinja"
    postprocessor_template = "postprocess_anchor_free_decoupled_head.py.jinja"
    params = {
        "act_type": act_param("silu", "Activation used throughout the head."),
        "depthwise": boolean(False, "Use depthwise-separable convolutions in the 3x3 towers."),
    }

    @classmethod
    def build(
        cls, params: dict[str, Any], stage_params: list | None, inputs: tuple[Feature, ...], *, task: str
    ) -> Built:
        depthwise = bool(params["depthwise"])
        return Built(
            class_name="AnchorFreeDecoupledHead",
            kwargs={
                "in_channels": [feature.channels for feature in inputs],
                "num_classes": NUM_CLASSES,
                "conv_layer": CONV_LAYERS[depthwise],
                "act_layer": ACTIVATIONS[params["act_type"]],
            },
            outputs=(),
            blocks=yolox_blocks(depthwise, csp=False),
            output_keys=("pred",),
        )

    @classmethod
    def decoder(cls, params: dict[str, Any], postprocessor_params: dict[str, Any]) -> Decoder:
        # The peer's default for this head (postprocessors/detection.py, anchor_free_decoupled_head_decode).
        return Decoder("AnchorFreeDecoupledDecoder", settings(postprocessor_params, {"score_thresh": 0.7}))
