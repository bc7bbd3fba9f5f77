"""LightFPN neck family (YOLO-Fastest-v2's), as NetsPresso Trainer 1.4.1 reads it
(``models/necks/experimental/fpn.py``, class ``LightFPN``).

Validated only (not compilable yet). It fuses the last two incoming levels: the deepest is projected to
``out_channels``; it is also upsampled x2, concatenated with the level before it and projected the same way.
The peer has no docs page for it and no default for ``out_channels``; the default is its example's.
"""

from __future__ import annotations

from .._registry import Component, register
from ._zoo_schema import integer

DENSE_TASKS = ("segmentation", "detection", "pose_estimation")


@register
class LightFPN(Component):
    """Light FPN neck (YOLO-Fastest-v2): fuses the last two backbone levels with 1x1 convs and one upsampling."""

    kind = "neck"
    name = "lightfpn"
    tasks = DENSE_TASKS
    params = {
        "out_channels": integer(72, "Output channels of both fused levels."),
    }
