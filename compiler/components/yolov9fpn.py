"""YOLOv9 FPN neck family, as NetsPresso Trainer 1.4.1 builds it (``models/necks/experimental/yolov9fpn.py``).

SPP-ELAN on the deepest of three incoming levels, then a top-down and a bottom-up path of RepNCSP-ELAN blocks
(``repeat_num`` bottlenecks per branch, no identity branches); the outputs have ``p3_channels``,
``p4_channels`` and ``p5_channels`` at the strides of the three inputs.

Peer behaviour reproduced here:
- The SPP-ELAN block pools at half of ``spp_channels``; the bottom-up downsampling is AConv or ADown
  (``bu_type``); every BatchNorm gets ``eps=1e-3, momentum=0.03`` (YOLOv9's settings).
- The peer has no docs page for it and reads every key without a default; the defaults here are those of its
  YOLOv9-S example. ``use_aux_loss`` is read by no code in the peer (its auxiliary branch is commented out).
- The fusion blocks split their width with ``chunk(2)``, so odd widths work as in the backbone's ELAN blocks.

Deliberate differences (specs the peer mishandles are rejected instead):
- Exactly three input levels, each twice as coarse as the one before: the peer sizes its blocks from the
  first three and fails at run time on any other count or spacing.
- With ``bu_type: adown`` the widths it halves must be even, and every fusion width must be at least 4
  (narrower ones give the peer zero-width convs).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .._registry import DENSE_TASKS, BuildError, Built, Code, Component, Feature, Issue, register
from ._common import ACTIVATIONS, act_param
from ._zoo_schema import boolean, choice, integer

WIDTHS = ("spp_channels", "n4_channels", "p3_channels", "p3_to_p4_channels", "p4_channels")
WIDTHS += ("p4_to_p5_channels", "p5_channels")
ADOWN_WIDTHS = ("p3_channels", "p3_to_p4_channels", "p4_channels", "p4_to_p5_channels")
DOWNSAMPLE = {"aconv": (Code("AConv"), "gelan_aconv"), "adown": (Code("ADown"), "gelan_adown")}


@register
class YOLOv9FPN(Component):
    """YOLOv9 neck: SPP-ELAN plus top-down and bottom-up RepNCSP-ELAN fusion of three levels."""

    kind = "neck"
    name = "yolov9fpn"
    tasks = DENSE_TASKS
    template = "yolov9fpn.py.jinja"
    params = {
        "repeat_num": integer(3, "Number of RepNCSP bottlenecks in each branch of every fusion block."),
        "act_type": act_param("silu", "Activation used throughout the neck."),
        "use_aux_loss": boolean(False, "Auxiliary branch switch; accepted for compatibility, the peer ignores it."),
        "bu_type": choice(["aconv", "adown"], "aconv", "Downsampling block of the bottom-up path: `aconv` or `adown`."),
        "spp_channels": integer(256, "Output channels of the SPP-ELAN block on the deepest level.", minimum=2),
        "n4_channels": integer(192, "Output channels of the first top-down fusion block.", minimum=4),
        "p3_channels": integer(128, "Output channels of the finest output.", minimum=4),
        "p3_to_p4_channels": integer(96, "Output channels of the first bottom-up downsampling block."),
        "p4_channels": integer(192, "Output channels of the middle output.", minimum=4),
        "p4_to_p5_channels": integer(128, "Output channels of the second bottom-up downsampling block."),
        "p5_channels": integer(256, "Output channels of the coarsest output.", minimum=4),
    }

    @classmethod
    def build(
        cls, params: dict[str, Any], stage_params: list | None, inputs: tuple[Feature, ...], *, task: str
    ) -> Built:
        if len(inputs) != 3:
            raise BuildError(
                "",
                f"yolov9fpn fuses exactly three feature maps (P3, P4, P5) but gets {len(inputs)}; "
                "set the backbone's return_stage_idx to three stages",
            )
        strides = [feature.stride for feature in inputs]
        if strides[1] != 2 * strides[0] or strides[2] != 2 * strides[1]:
            raise BuildError(
                "",
                f"yolov9fpn needs each input twice as coarse as the one before, but the strides are {strides}",
            )
        downsample, block = DOWNSAMPLE[params["bu_type"]]
        kwargs: dict[str, Any] = {"in_channels": [feature.channels for feature in inputs]}
        kwargs.update({key: params[key] for key in WIDTHS})
        kwargs["repeat_num"] = params["repeat_num"]
        kwargs["downsample"] = downsample
        kwargs["act_layer"] = ACTIVATIONS[params["act_type"]]
        return Built(
            class_name="YOLOv9FPN",
            kwargs=kwargs,
            outputs=tuple(
                Feature(params[key], feature.stride)
                for key, feature in zip(("p3_channels", "p4_channels", "p5_channels"), inputs, strict=True)
            ),
            blocks=("conv_layer", "gelan_repncspelan", "gelan_sppelan", block),
        )

    @classmethod
    def check(cls, params: dict[str, Any], stage_params: list | None, task: str) -> Iterator[Issue]:
        params = cls.resolve_params(params)
        if params["bu_type"] == "adown":
            for key in ADOWN_WIDTHS:
                if params[key] % 2:
                    yield Issue(
                        f"/params/{key}", f"{key} ({params[key]}) must be even: adown splits channels in halves"
                    )
