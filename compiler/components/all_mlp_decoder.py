"""AllMLPDecoder segmentation head (SegFormer), as NetsPresso Trainer 1.4.1 builds it
(``models/heads/segmentation/experimental/all_mlp_decoder.py``).

Every incoming feature map gets a 1x1 conv-BN-ReLU projection (``linear_c``), all are resized bilinearly to
the first map's size, concatenated and fused by another 1x1 conv-BN-ReLU (``linear_fuse``), then a biased 1x1
conv classifies. The logits stay at the first map's stride: the peer resizes them to the label size in the loss.
"""

from __future__ import annotations

from typing import Any

from .._registry import NUM_CLASSES, Built, Component, Feature, register
from ._common import param


@register
class AllMLPDecoder(Component):
    """SegFormer all-MLP decoder head: fuses every incoming level at the first level's resolution."""

    kind = "head"
    name = "all_mlp_decoder"
    tasks = ("segmentation",)
    template = "all_mlp_decoder.py.jinja"
    params = {
        "intermediate_channels": param(
            "integer", 256, "Channels each level is projected to, and of the fused map.", minimum=1
        ),
        "classifier_dropout_prob": param(
            "number", 0.0, "Dropout probability before the classifier.", minimum=0, maximum=1
        ),
        # The peer's segformer config sets it, but NetsPresso Trainer 1.4.1 never reads it: accepted, no effect.
        "resize_output": param(
            ["array", "null"],
            None,
            "Accepted for compatibility with NetsPresso configs; has no effect (the peer ignores it too).",
            items={"type": "integer", "minimum": 1},
        ),
    }

    @classmethod
    def build(
        cls, params: dict[str, Any], stage_params: list | None, inputs: tuple[Feature, ...], *, task: str
    ) -> Built:
        return Built(
            class_name="AllMLPDecoder",
            kwargs={
                "in_channels": [feature.channels for feature in inputs],
                "intermediate_channels": params["intermediate_channels"],
                "num_classes": NUM_CLASSES,
                "classifier_dropout_prob": float(params["classifier_dropout_prob"]),
            },
            outputs=(),
            blocks=("conv_layer",),
            output_keys=("pred",),
        )
