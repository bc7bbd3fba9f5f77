"""LightFPN neck family (YOLO-Fastest-v2's), as NetsPresso Trainer 1.4.1 builds it
(``models/necks/experimental/fpn.py``, class ``LightFPN``).

It fuses the last two incoming levels C2 (finer) and C3 (coarser): ``conv_C3`` projects C3 to ``out_channels``;
C3 itself (not its projection) is upsampled x2 (nearest), concatenated with C2 and projected by ``conv_C2``.
Both projections are 1x1 conv-BN-ReLU. The outputs are ``[S2, S3]``, both with ``out_channels``.

Peer quirks and deliberate differences:
- Levels before the last two are ignored (the peer still reports one output width per input level, but returns
  two maps); npc passes on the two maps it returns.
- The upsampling is a fixed x2, so C2 must have exactly half C3's stride; the peer builds other combinations and
  fails at the first forward pass, npc rejects them when compiling. A single input level is rejected too (the
  peer fails building).
- With an odd C2 size the x2 upsampled C3 does not match it and the forward fails, as in the peer (ShuffleNetV2
  at an input size divisible by 32 never hits this).
- The peer has no docs page for it and no default for ``out_channels``; the default is its example's.
"""

from __future__ import annotations

from typing import Any

from .._registry import DENSE_TASKS, BuildError, Built, Component, Feature, register
from ._zoo_schema import integer


@register
class LightFPN(Component):
    """Light FPN neck (YOLO-Fastest-v2): fuses the last two backbone levels with 1x1 convs and one upsampling."""

    kind = "neck"
    name = "lightfpn"
    tasks = DENSE_TASKS
    template = "lightfpn.py.jinja"
    params = {
        "out_channels": integer(72, "Output channels of both fused levels."),
    }

    @classmethod
    def build(
        cls, params: dict[str, Any], stage_params: list | None, inputs: tuple[Feature, ...], *, task: str
    ) -> Built:
        if len(inputs) < 2:
            raise BuildError("", f"lightfpn fuses two feature maps, but gets {len(inputs)}")
        fine, coarse = inputs[-2], inputs[-1]
        if coarse.stride != 2 * fine.stride:
            raise BuildError(
                "",
                f"lightfpn upsamples its last input (stride {coarse.stride}) x2 onto the one before it "
                f"(stride {fine.stride}): their strides must differ by exactly 2",
            )
        out_channels = params["out_channels"]
        return Built(
            class_name="LightFPN",
            kwargs={"in_channels": [fine.channels, coarse.channels], "out_channels": out_channels},
            outputs=(Feature(out_channels, fine.stride), Feature(out_channels, coarse.stride)),
            blocks=("conv_layer",),
        )
