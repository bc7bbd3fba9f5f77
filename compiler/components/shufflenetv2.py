"""ShuffleNetV2 backbone family, as NetsPresso Trainer 1.4.1 reads it
(``models/backbones/experimental/shufflenetv2.py``).

Validated only (not compilable yet). Detection only in the peer, where it feeds YOLO-Fastest-v2 with its last two
stages. The layout (three stages of 4, 8 and 4 shuffle blocks) is fixed; ``model_size`` picks the widths. It
takes no ``stage_params``. The peer has no docs page for it; its model_size has no default, so the default here
is that of its YOLO-Fastest-v2 example.
"""

from __future__ import annotations

from .._registry import Component, register
from ._zoo_schema import choice

MODEL_SIZES = {"0.5x": (48, 96, 192), "1.0x": (116, 232, 464), "1.5x": (176, 352, 704), "2.0x": (244, 488, 976)}


@register
class ShuffleNetV2(Component):
    """ShuffleNetV2 backbone: channel-split and channel-shuffle blocks in three fixed stages."""

    kind = "backbone"
    name = "shufflenetv2"
    tasks = ("detection",)
    params = {
        "model_size": choice(
            list(MODEL_SIZES),
            "0.5x",
            "Width multiplier of the network: stage widths 48/96/192 (0.5x), 116/232/464 (1.0x), "
            "176/352/704 (1.5x) or 244/488/976 (2.0x).",
        ),
    }
