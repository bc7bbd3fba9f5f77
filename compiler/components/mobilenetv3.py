"""MobileNetV3 backbone, as NetsPresso Trainer 1.4.1 builds it (``models/backbones/experimental/mobilenetv3.py``).

The peer takes no ``params``: the stem (3x3, stride 2, hard-swish), the normalisation (batch norm with
eps 1e-3 and momentum 0.01) and the final 1x1 conv (6x the last width, hard-swish, appended to the last stage)
are fixed. Each stage lists its inverted residual blocks column-wise: entry ``j`` of every list describes block
``j``. A block has a 1x1 expansion conv only when ``expanded_channels`` differs from ``in_channels``, its
squeeze-excitation squeezes to ``make_divisible(expanded_channels // 4, 8)`` channels (ReLU, hard-sigmoid gate),
and it adds its input back when the stride is 1 and the width is unchanged.

Outputs: classification gets the last stage global-average-pooled to (B, C); every other task gets every
stage's output (the peer has no ``return_stage_idx`` here), the last one after the final 1x1 conv.

Doc vs source: the peer's docs name the per-block activation ``activation`` and list a ``dilation`` key; the
source reads ``act_type`` and fixes the dilation to 1, so ``act_type`` is accepted and ``dilation`` is rejected.

Deliberate differences (specs the peer mishandles are rejected instead):
- A block's ``in_channels`` must equal the previous block's output (the first one sets the stem's width):
  the peer builds a mismatched block as written and then fails on the first forward pass.
- Per-block lists of unequal length: the peer silently drops the extra entries (``zip``).
- ``act_type`` names are matched exactly (lower case); the peer lowercases them first.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .._registry import TASKS, Built, Component, Feature, Issue, register
from ._common import ACTIVATIONS
from ._zoo_schema import ACT_NAMES, equal_length_issues, field, per_block, stage_object

STEM_STRIDE = 2
LAST_CONV_EXPANSION = 6  # the final 1x1 conv widens the last block's output 6x
BLOCK_KEYS = ("in_channels", "kernel_sizes", "expanded_channels", "out_channels", "use_se", "act_type", "stride")


@register
class MobileNetV3(Component):
    """MobileNetV3 backbone: inverted residual blocks with optional squeeze-excitation, configured per block."""

    kind = "backbone"
    name = "mobilenetv3"
    tasks = TASKS
    template = "mobilenetv3.py.jinja"
    params: dict[str, dict[str, Any]] = {}
    stage_params = stage_object(
        "One stage: parallel lists with one entry per inverted residual block.",
        {
            "in_channels": per_block(
                field("integer", "Input width of the block.", minimum=1),
                "Input width of each block; the first block of the first stage also sets the stem's width.",
            ),
            "kernel_sizes": per_block(
                field("integer", "Depthwise kernel size.", minimum=1),
                "Kernel size of each block's depthwise convolution.",
            ),
            "expanded_channels": per_block(
                field("integer", "Expanded width.", minimum=1),
                "Width each block expands to before its depthwise convolution (no expansion conv when equal "
                "to the input width).",
            ),
            "out_channels": per_block(
                field("integer", "Output width of the block.", minimum=1), "Output width of each block."
            ),
            "use_se": per_block(
                field("boolean", "Whether the block has squeeze-excitation."),
                "Whether each block applies squeeze-and-excitation after its depthwise convolution.",
            ),
            "act_type": per_block(
                field("string", "Activation of the block.", enum=ACT_NAMES),
                "Activation used inside each block.",
            ),
            "stride": per_block(
                field("integer", "Depthwise stride (1 or 2).", enum=[1, 2]),
                "Stride of each block's depthwise convolution (1 or 2).",
            ),
        },
    )

    @classmethod
    def build(
        cls, params: dict[str, Any], stage_params: list | None, inputs: tuple[Feature, ...], *, task: str
    ) -> Built:
        stages = stage_params or []
        squeeze_excitation = any(any(stage["use_se"]) for stage in stages)
        blocks = [_stage_blocks(stage, squeeze_excitation) for stage in stages]
        features = list(_stage_features(stages))
        global_pool = task == "classification"
        selected = [len(stages) - 1] if global_pool else list(range(len(stages)))
        return Built(
            class_name="MobileNetV3",
            kwargs={"stem_channels": stages[0]["in_channels"][0], "stages": blocks},
            outputs=tuple(features[index] for index in selected),
            stages=tuple(features),
            selected=tuple(selected),
            template_vars={"squeeze_excitation": squeeze_excitation, "global_pool": global_pool},
            blocks=("conv_layer",),
        )

    @classmethod
    def check(cls, params: dict[str, Any], stage_params: list | None, task: str) -> Iterator[Issue]:
        stages = stage_params or []
        if not stages:
            yield Issue("/stage_params", "mobilenetv3 needs at least one stage")
            return
        previous_out = None
        for index, stage in enumerate(stages):
            mismatched = list(equal_length_issues(index, stage, BLOCK_KEYS))
            yield from mismatched
            if mismatched:
                previous_out = None
                continue
            for block, (width_in, width_out) in enumerate(zip(stage["in_channels"], stage["out_channels"])):
                if previous_out is not None and width_in != previous_out:
                    yield Issue(
                        f"/stage_params/{index}/in_channels/{block}",
                        f"is {width_in} but the previous block outputs {previous_out} channels",
                    )
                previous_out = width_out


def _stage_blocks(stage: dict[str, Any], squeeze_excitation: bool) -> list[tuple]:
    """One ``(kernel_size, expanded_channels, out_channels, [use_se,] act_layer, stride)`` tuple per block.

    ``in_channels`` is left out: check() makes it equal to the previous block's output, which the template uses.
    ``use_se`` is left out too when no block of the backbone has squeeze-excitation.
    """
    columns = [stage["kernel_sizes"], stage["expanded_channels"], stage["out_channels"]]
    if squeeze_excitation:
        columns.append([bool(use_se) for use_se in stage["use_se"]])
    columns += [[ACTIVATIONS[act] for act in stage["act_type"]], stage["stride"]]
    return [tuple(block) for block in zip(*columns, strict=True)]


def _stage_features(stages: list[dict[str, Any]]) -> Iterator[Feature]:
    """Each stage's output; the last one after the final 1x1 conv, which widens it 6x."""
    stride = STEM_STRIDE
    for index, stage in enumerate(stages):
        for block_stride in stage["stride"]:
            stride *= block_stride
        width = stage["out_channels"][-1]
        yield Feature(width * LAST_CONV_EXPANSION if index == len(stages) - 1 else width, stride)
