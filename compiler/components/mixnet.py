"""MixNet backbone family, as NetsPresso Trainer 1.4.1 builds it (``models/backbones/experimental/mixnet.py``).

Each stage lists its block groups column-wise: entry ``j`` of every list describes group ``j``, which is repeated
``num_blocks[j]`` times (scaled by ``dep_mul``, rounded up; unless ``wid_mul`` is 1, widths are scaled by it
and rounded to multiples of 8). Only a group's first block strides. The stem is a 3x3 stride-2 ConvLayer with
ReLU; the last stage ends with a 1x1 ConvLayer to 1536 channels. The peer reads every key without a default; the
defaults here are those of its MixNet-S example.

Peer behaviour reproduced here (each one changes the state_dict or the outputs):
- Attribute names follow the peer: ``mod1`` (stem), ``stages.<i>.<j>`` with ``expansion`` / ``depth_wise`` /
  ``se_block`` / ``point_wise``, the 1x1 convs in ``group_point_wise.<g>`` and the mixed depthwise kernels in
  ``mixed_depth_wise.<k>``, even for a single group or kernel. The squeeze-excitation block is laid out as
  torchvision's ``SqueezeExcitation`` (``fc1``/``fc2`` biased 1x1 convs, ``activation`` = the group's act_type).
- Squeeze-excitation squeezes to ``max(1, int(block input width / se_reduction_ratio))`` channels although it acts
  on the expanded width; a ratio of null or 1 leaves it out.
- BatchNorms inside the blocks use ``eps=1e-3, momentum=0.01``; the stem's and the last conv's use torch defaults.
- A block adds its input back when its width and resolution are unchanged, with 2-D dropout of ``dropout_rate`` on
  the branch while training; classification also drops out the pooled (B, 1536) vector while training.
- Segmentation, detection and pose estimation get every stage's output (the peer has no ``return_stage_idx``);
  classification gets the last stage, average-pooled to (B, 1536).

Deliberate differences (specs the peer mishandles are rejected instead):
- Group counts and kernel counts must split the channels evenly: the peer asserts some of these and silently
  builds wrong widths for the rest. check() reproduces the peer's width rounding to verify them.
- Kernel sizes must be odd: with an even kernel the peer's "same" padding shrinks the map by one pixel, so mixed
  kernels cannot be concatenated and residual additions fail at run time.

The emitted ``MixNet`` receives widths and repeats already scaled by ``wid_mul`` / ``dep_mul``, and
``se_reduction_ratio`` 1 as null.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from .._registry import TASKS, BuildError, Built, Component, Feature, Issue, register
from ._common import ACTIVATIONS
from ._zoo_schema import ACT_NAMES, equal_length_issues, field, integer, per_block, positive, probability, stage_object

BLOCK_KEYS = (
    "expansion_ratio",
    "out_channels",
    "num_blocks",
    "kernel_sizes",
    "num_exp_groups",
    "num_poi_groups",
    "stride",
    "act_type",
    "se_reduction_ratio",
)
STEM_STRIDE = 2  # the stem is a stride-2 3x3 conv
LAST_CHANNELS = 1536  # width of the 1x1 conv closing the last stage (fixed in the peer)


@register
class MixNet(Component):
    """MixNet backbone: inverted residual blocks whose depthwise conv mixes several kernel sizes."""

    kind = "backbone"
    name = "mixnet"
    template = "mixnet.py.jinja"
    tasks = TASKS
    params = {
        "stem_channels": integer(16, "Output width of the stem convolution (before wid_mul scaling)."),
        "wid_mul": positive(1.0, "Width multiplier applied to the stem and every block's output width."),
        "dep_mul": positive(1.0, "Depth multiplier applied to every num_blocks (rounded up)."),
        "dropout_rate": probability(
            0.0, "Dropout probability on residual branches and, for classification, on the pooled feature."
        ),
    }
    stage_params = stage_object(
        "One stage: parallel lists with one entry per group of identical blocks.",
        {
            "expansion_ratio": per_block(
                field("integer", "Expansion factor.", minimum=1),
                "Factor each group's blocks widen their input by before the depthwise conv (1 = no expansion).",
            ),
            "out_channels": per_block(
                field("integer", "Output width.", minimum=1), "Output width of each group (before wid_mul)."
            ),
            "num_blocks": per_block(
                field("integer", "Repetitions.", minimum=1), "How many times each group's block is repeated."
            ),
            "kernel_sizes": per_block(
                field(
                    "array",
                    "Kernel sizes mixed in one depthwise conv.",
                    minItems=1,
                    items={"type": "integer", "minimum": 1},
                ),
                "For each group, the kernel sizes its mixed depthwise conv splits the channels between.",
            ),
            "num_exp_groups": per_block(
                field("integer", "Groups of the expansion conv.", minimum=1),
                "Number of groups of each group's expansion 1x1 conv.",
            ),
            "num_poi_groups": per_block(
                field("integer", "Groups of the projection conv.", minimum=1),
                "Number of groups of each group's final 1x1 projection conv.",
            ),
            "stride": per_block(
                field("integer", "Stride (1 or 2).", enum=[1, 2]),
                "Stride of the first block of each group (1 or 2); repeats use stride 1.",
            ),
            "act_type": per_block(
                field("string", "Activation.", enum=ACT_NAMES), "Activation used inside each group's blocks."
            ),
            "se_reduction_ratio": per_block(
                field(["integer", "null"], "Squeeze-excitation reduction (null: none).", minimum=1),
                "Squeeze-and-excitation reduction factor of each group, relative to the block input width; "
                "null (or 1) leaves squeeze-and-excitation out.",
            ),
        },
    )

    @classmethod
    def build(
        cls, params: dict[str, Any], stage_params: list | None, inputs: tuple[Feature, ...], *, task: str
    ) -> Built:
        for issue in _issues(params, stage_params):
            raise BuildError(issue.pointer, issue.message)
        width, depth = params["wid_mul"], params["dep_mul"]
        stages = [_scaled_stage(stage, width, depth) for stage in stage_params or []]
        features = _stage_features(stages)
        global_pool = task == "classification"
        dropout = params["dropout_rate"] > 0
        kwargs: dict[str, Any] = {
            "stem_channels": _round_filters(params["stem_channels"], width),
            "stages": stages,
            "last_channels": LAST_CHANNELS,
        }
        if dropout:
            kwargs["dropout_rate"] = params["dropout_rate"]
        # Classification pools the last stage; every other task gets every stage (the peer has no selection).
        selected = [len(stages) - 1] if global_pool else list(range(len(stages)))
        return Built(
            class_name="MixNet",
            kwargs=kwargs,
            outputs=tuple(features[index] for index in selected),
            stages=features,
            selected=tuple(selected),
            template_vars={
                "global_pool": global_pool,
                "dropout": dropout,
                "expansion": any(ratio != 1 for stage in stages for ratio in stage["expansion_ratio"]),
                "squeeze_excitation": any(ratio for stage in stages for ratio in stage["se_reduction_ratio"]),
            },
            blocks=("conv_layer",),
        )

    @classmethod
    def check(cls, params: dict[str, Any], stage_params: list | None, task: str) -> Iterator[Issue]:
        yield from _issues(cls.resolve_params(params), stage_params)


def _scaled_stage(stage: dict[str, Any], width: float, depth: float) -> dict[str, list]:
    """One stage's constructor entry: the spec's lists with widths and repeats scaled, activations looked up."""
    return {
        "expansion_ratio": list(stage["expansion_ratio"]),
        "out_channels": [_round_filters(channels, width) for channels in stage["out_channels"]],
        "num_blocks": [_round_repeats(repeats, depth) for repeats in stage["num_blocks"]],
        "kernel_sizes": [list(sizes) for sizes in stage["kernel_sizes"]],
        "num_exp_groups": list(stage["num_exp_groups"]),
        "num_poi_groups": list(stage["num_poi_groups"]),
        "stride": list(stage["stride"]),
        "act_layer": [ACTIVATIONS[name] for name in stage["act_type"]],
        # The peer leaves squeeze-excitation out for null and for 1 alike.
        "se_reduction_ratio": [ratio if ratio and ratio > 1 else None for ratio in stage["se_reduction_ratio"]],
    }


def _stage_features(stages: list[dict[str, list]]) -> tuple[Feature, ...]:
    features, stride = [], STEM_STRIDE
    for index, stage in enumerate(stages):
        stride *= math.prod(stage["stride"])
        channels = LAST_CHANNELS if index == len(stages) - 1 else stage["out_channels"][-1]
        features.append(Feature(channels, stride))
    return tuple(features)


def _issues(params: dict[str, Any], stage_params: list | None) -> Iterator[Issue]:
    stages = stage_params or []
    if not stages:
        yield Issue("/stage_params", "mixnet needs at least one stage")
        return
    width, depth = params["wid_mul"], params["dep_mul"]
    in_channels = _round_filters(params["stem_channels"], width)
    for index, stage in enumerate(stages):
        mismatched = list(equal_length_issues(index, stage, BLOCK_KEYS))
        yield from mismatched
        if mismatched:
            return  # widths downstream are unknown
        for group, sizes in enumerate(stage["kernel_sizes"]):
            for position, size in enumerate(sizes):
                if size % 2 == 0:
                    yield Issue(
                        f"/stage_params/{index}/kernel_sizes/{group}/{position}",
                        f"kernel size {size} must be odd: an even kernel changes the map size under 'same' padding",
                    )
        for group in range(len(stage["out_channels"])):
            out_channels = _round_filters(stage["out_channels"][group], width)
            for _repeat in range(_round_repeats(stage["num_blocks"][group], depth)):
                issues = list(_group_issues(index, group, stage, in_channels, out_channels))
                yield from issues
                in_channels = out_channels
                if issues:
                    break  # the repeats would report the same problem


def _group_issues(index: int, group: int, stage: dict, in_channels: int, out_channels: int) -> Iterator[Issue]:
    pointer = f"/stage_params/{index}"
    expansion = stage["expansion_ratio"][group]
    hidden = in_channels * expansion
    exp_groups = stage["num_exp_groups"][group]
    poi_groups = stage["num_poi_groups"][group]
    kernels = len(stage["kernel_sizes"][group])
    if expansion != 1 and (in_channels % exp_groups or hidden % exp_groups):
        yield Issue(
            f"{pointer}/num_exp_groups/{group}",
            f"{exp_groups} groups do not divide the expansion conv's {in_channels} input and {hidden} output channels",
        )
    if hidden % kernels:
        yield Issue(
            f"{pointer}/kernel_sizes/{group}",
            f"{kernels} kernel sizes do not split the {hidden} expanded channels evenly",
        )
    if hidden % poi_groups or out_channels % poi_groups:
        yield Issue(
            f"{pointer}/num_poi_groups/{group}",
            f"{poi_groups} groups do not divide the projection conv's {hidden} input and {out_channels} output "
            "channels",
        )


def _make_divisible(value: float, divisor: int = 8) -> int:
    new_value = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return new_value


def _round_filters(filters: int, width: float) -> int:
    return filters if width == 1.0 else int(_make_divisible(filters * width))


def _round_repeats(repeats: int, depth: float) -> int:
    return repeats if depth == 1.0 else int(math.ceil(depth * repeats))
