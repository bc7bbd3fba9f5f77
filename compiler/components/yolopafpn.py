"""YOLOPAFPN neck (YOLOX's PAFPN), as NetsPresso Trainer 1.4.1 builds it (``models/necks/experimental/yolopafpn.py``).

A top-down then bottom-up path over exactly three incoming levels with CSP layers of ``round(3 * dep_mul)``
bottlenecks (no shortcuts); every output keeps the width and stride of the matching input. The peer reads every
key without a default; the defaults here are those of its YOLOX-L example.

Peer behaviour reproduced here:
- ``depthwise`` makes only the two bottom-up stride-2 convs and the bottlenecks' 3x3 convs depthwise-separable;
  the lateral/reduce 1x1 convs and the CSP layers' 1x1 convs stay plain.
- Unlike the backbone, the depth is not clamped to 1: ``round(3 * dep_mul) == 0`` gives CSP layers without
  bottlenecks.
- Every BatchNorm gets ``eps=1e-3, momentum=0.03`` (YOLOX's settings).

Deliberate differences: the peer fails at its first forward when it gets other than three levels or levels whose
strides do not double (2x upsampling then concatenation); both are rejected here when the model is built.
"""

from __future__ import annotations

from typing import Any

from .._registry import DENSE_TASKS, BuildError, Built, Component, Feature, register
from ._common import ACTIVATIONS, act_param
from ._zoo_schema import boolean, positive
from .cspdarknet import CONV_LAYERS, yolox_blocks


@register
class YOLOPAFPN(Component):
    """YOLOX path-aggregation FPN neck: top-down and bottom-up fusion of three levels with CSP layers."""

    kind = "neck"
    name = "yolopafpn"
    tasks = DENSE_TASKS
    template = "yolopafpn.py.jinja"
    params = {
        "depthwise": boolean(
            False, "Use depthwise-separable convolutions for the bottom-up strided convs and CSP bottlenecks."
        ),
        "dep_mul": positive(1.0, "Depth multiplier: each CSP layer has round(3 * dep_mul) bottlenecks."),
        "act_type": act_param("silu", "Activation used throughout the neck."),
    }

    @classmethod
    def build(
        cls, params: dict[str, Any], stage_params: list | None, inputs: tuple[Feature, ...], *, task: str
    ) -> Built:
        if len(inputs) != 3:
            raise BuildError("", f"yolopafpn fuses exactly three feature maps, got {len(inputs)}")
        for finer, coarser in zip(inputs, inputs[1:]):
            if coarser.stride != 2 * finer.stride:
                raise BuildError(
                    "",
                    "yolopafpn needs each incoming level at twice the stride of the previous one, got strides "
                    f"{[feature.stride for feature in inputs]}",
                )
        depthwise = bool(params["depthwise"])
        return Built(
            class_name="YOLOPAFPN",
            kwargs={
                "in_channels": [feature.channels for feature in inputs],
                "depth": round(3 * params["dep_mul"]),  # Python's round(), as in the peer
                "conv_layer": CONV_LAYERS[depthwise],
                "act_layer": ACTIVATIONS[params["act_type"]],
            },
            outputs=inputs,
            blocks=yolox_blocks(depthwise, csp=True),
        )
