"""ShuffleNetV2 backbone family, as NetsPresso Trainer 1.4.1 builds it
(``models/backbones/experimental/shufflenetv2.py``, blocks from ``models/op/custom.py::ShuffleV2Block``).

The layout is fixed: a 3x3 stride-2 stem conv (24 channels) and a stride-2 max pool, then three stages
(``stage2``..``stage4``, the paper's names) of 4, 8 and 4 shuffle units; ``model_size`` picks the stage widths.
It takes no ``stage_params``. The first unit of a stage strides by 2 and runs two branches over the whole input
(a depthwise-pointwise projection keeping the input width and a pointwise-depthwise-pointwise main branch making
up the rest); the other units split the channels in two halves (even and odd channels: the channel shuffle),
pass one half through and transform the other. The depthwise convs have no activation.

Outputs: classification gets the last stage global-average-pooled to (B, C); every other task gets the last two
stages (strides 16 and 32), which is what the peer's LightFPN expects.

Peer quirks and deliberate differences:
- The peer asserts ``task == detection`` although its module has the classification (pooled) and dense
  (last two stages) code paths; npc also compiles classification and segmentation with those paths, so the
  state dict is the one the peer would build without the assertion.
- ``model_size`` has no default in the peer; the default here is that of its YOLO-Fastest-v2 example. The peer
  has no docs page for this backbone.
- The peer's channel shuffle is a reshape/permute; the compiled module slices even and odd channels (same values).
"""

from __future__ import annotations

from typing import Any

from .._registry import Built, Component, Feature, register
from ._zoo_schema import choice

MODEL_SIZES = {"0.5x": (48, 96, 192), "1.0x": (116, 232, 464), "1.5x": (176, 352, 704), "2.0x": (244, 488, 976)}
STEM_STRIDE = 4  # stride-2 conv, then stride-2 max pool
DENSE_STAGES = (1, 2)  # the last two stages go to the neck/head for every task but classification


@register
class ShuffleNetV2(Component):
    """ShuffleNetV2 backbone: channel-split and channel-shuffle blocks in three fixed stages."""

    kind = "backbone"
    name = "shufflenetv2"
    tasks = ("classification", "segmentation", "detection")
    template = "shufflenetv2.py.jinja"
    params = {
        "model_size": choice(
            list(MODEL_SIZES),
            "0.5x",
            "Width multiplier of the network: stage widths 48/96/192 (0.5x), 116/232/464 (1.0x), "
            "176/352/704 (1.5x) or 244/488/976 (2.0x).",
        ),
    }

    @classmethod
    def build(
        cls, params: dict[str, Any], stage_params: list | None, inputs: tuple[Feature, ...], *, task: str
    ) -> Built:
        channels = MODEL_SIZES[params["model_size"]]
        stages = tuple(Feature(width, STEM_STRIDE * 2 ** (index + 1)) for index, width in enumerate(channels))
        global_pool = task == "classification"
        selected = (len(stages) - 1,) if global_pool else DENSE_STAGES
        return Built(
            class_name="ShuffleNetV2",
            kwargs={"channels": list(channels)},
            outputs=tuple(stages[index] for index in selected),
            stages=stages,
            selected=selected,
            template_vars={"global_pool": global_pool},
            blocks=("conv_layer",),
        )
