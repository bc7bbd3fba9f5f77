"""CSPDarknet backbone (YOLOX's), as NetsPresso Trainer 1.4.1 builds it (``models/backbones/experimental/darknet.py``).

A Focus stem and four fixed CSP stages (dark2..dark5, the last with an SPP block), scaled by ``wid_mul`` (base
width ``int(wid_mul * 64)``) and ``dep_mul`` (base depth ``max(round(dep_mul * 3), 1)``). It takes no
``stage_params``. The peer reads every key without a default; the defaults here are those of its YOLOX-L example.

Peer behaviour reproduced here:
- ``depthwise`` swaps the stride-2 stage convs and the bottlenecks' 3x3 convs for depthwise-separable ones
  (depthwise conv-norm-act, pointwise conv-norm, act); the Focus stem, the SPP block and the CSP layers' 1x1
  convs stay plain ConvLayers.
- dark3 and dark4 hold ``3 * base_depth`` bottlenecks; dark5's bottlenecks have no shortcut.
- Every BatchNorm gets ``eps=1e-3, momentum=0.03`` (YOLOX's settings); the norm is always BatchNorm.
- Dense tasks receive dark3, dark4, dark5 (strides 8, 16, 32; widths 4, 8, 16 x base); classification gets
  dark5 average-pooled to (B, C).

The helpers at the bottom are shared with the ``yolopafpn`` neck and ``anchor_free_decoupled_head`` head: the
three YOLOX families pass the same conv class (plain or depthwise-separable) and use the same CSP block.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .._registry import TASKS, Built, Code, Component, Feature, Issue, register
from ._common import ACTIVATIONS, act_param
from ._zoo_schema import boolean, positive

STAGE_WIDTHS = (2, 4, 8, 16)  # dark2..dark5, in multiples of the base width
STAGE_STRIDES = (4, 8, 16, 32)  # the Focus stem halves the input, then every stage strides by 2
DENSE_STAGES = (1, 2, 3)  # dark3, dark4, dark5: what the neck/head receives

# Classes defined by block_conv_layer.py.jinja and block_yolox_separable_conv.py.jinja.
CONV_LAYERS = {False: Code("ConvLayer"), True: Code("DepthwiseSeparableConv")}


@register
class CSPDarknet(Component):
    """CSPDarknet backbone (YOLOX): Focus stem and four cross-stage-partial stages scaled by width and depth."""

    kind = "backbone"
    name = "cspdarknet"
    tasks = TASKS
    template = "cspdarknet.py.jinja"
    params = {
        "depthwise": boolean(False, "Use depthwise-separable convolutions for the strided and bottleneck convs."),
        "dep_mul": positive(1.0, "Depth multiplier of the CSP stages (YOLOX-S: 0.33, -M: 0.67, -L: 1.0, -X: 1.33)."),
        "wid_mul": positive(1.0, "Width multiplier of every layer (YOLOX-S: 0.5, -M: 0.75, -L: 1.0, -X: 1.25)."),
        "act_type": act_param("silu", "Activation used throughout the network."),
    }

    @classmethod
    def build(
        cls, params: dict[str, Any], stage_params: list | None, inputs: tuple[Feature, ...], *, task: str
    ) -> Built:
        base_channels = int(params["wid_mul"] * 64)  # the peer's rounding: truncation
        base_depth = max(round(params["dep_mul"] * 3), 1)  # Python's round(), as in the peer
        stages = tuple(
            Feature(base_channels * width, stride) for width, stride in zip(STAGE_WIDTHS, STAGE_STRIDES, strict=True)
        )
        global_pool = task == "classification"
        selected = (len(stages) - 1,) if global_pool else DENSE_STAGES
        return Built(
            class_name="CSPDarknet",
            kwargs={
                "base_channels": base_channels,
                "base_depth": base_depth,
                "conv_layer": CONV_LAYERS[bool(params["depthwise"])],
                "act_layer": ACTIVATIONS[params["act_type"]],
            },
            outputs=tuple(stages[index] for index in selected),
            stages=stages,
            selected=selected,
            template_vars={"global_pool": global_pool},
            blocks=yolox_blocks(bool(params["depthwise"]), csp=True),
        )

    @classmethod
    def check(cls, params: dict[str, Any], stage_params: list | None, task: str) -> Iterator[Issue]:
        params = cls.resolve_params(params)
        if int(params["wid_mul"] * 64) < 1:
            yield Issue("/params/wid_mul", "wid_mul is too small: the base width int(wid_mul * 64) would be 0")


def yolox_blocks(depthwise: bool, *, csp: bool) -> tuple[str, ...]:
    """Shared blocks a YOLOX family uses: ConvLayer, the separable conv when ``depthwise``, the CSP layer."""
    blocks = ["conv_layer"]
    if depthwise:
        blocks.append("yolox_separable_conv")
    if csp:
        blocks.append("yolox_csp_layer")
    return tuple(blocks)
