"""PIDNet full segmentation model family, as NetsPresso Trainer 1.4.1 reads it
(``models/full/experimental/pidnet.py``).

Validated only (not compilable yet). Its parameters sit beside ``name`` under ``architecture.full``. Three
branches (proportional: detail, integral: context, derivative: boundaries) are fused by a boundary-attention
module; ``m == 2`` selects the light variant (PAPPM context module, light fusion), other values the full one
(DAPPM). The defaults are PIDNet-S.
"""

from __future__ import annotations

from .._registry import Component, register
from ._zoo_schema import integer


@register
class PIDNet(Component):
    """PIDNet real-time segmentation model with proportional, integral and derivative branches."""

    kind = "full"
    name = "pidnet"
    tasks = ("segmentation",)
    inline_params = True
    params = {
        "m": integer(
            2,
            "Residual blocks in the first two stages and in the detail branch (2 selects the light "
            "PAPPM/Light-Bag variant).",
        ),
        "n": integer(3, "Residual blocks in the third and fourth stages of the context branch."),
        "channels": integer(32, "Base width of the network (S: 32, M and L: 64)."),
        "ppm_channels": integer(96, "Width of the pyramid pooling module."),
        "head_channels": integer(128, "Width of the segmentation heads."),
    }
