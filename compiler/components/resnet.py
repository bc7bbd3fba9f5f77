"""ResNet backbone, as NetsPresso Trainer 1.4.1 builds it (``models/backbones/core/resnet.py``).

Peer behaviour reproduced here (each one changes the state_dict or the outputs):
- The stem always has 64 output channels and is always batch-normalised, whatever ``norm_type`` is.
- The first stage never strides, dilates or pools: its ``replace_stride_with_*`` flags are ignored.
- ``replace_stride_with_dilation`` keeps the resolution and multiplies the dilation by 2 from the stage's
  *second* block on (its first block keeps the previous dilation), as torchvision does.
- ``replace_stride_with_pooling`` moves the shortcut's stride into an average pool, so that shortcut's keys are
  ``downsample.1.block.*`` instead of ``downsample.block.*``.
- ``return_stage_idx: ~`` (or ``[]``) means the last stage only. Classification ignores it: the peer pools the
  last stage to a (B, C) vector and hands that to the head.

Deliberate differences (specs the peer mishandles are rejected instead):
- ``basicblock`` with any effective dilation: the peer raises NotImplementedError for a dilated BasicBlock
  (except in one degenerate case where the dilation never reaches a block).
- ``return_stage_idx`` must be increasing and in range: the peer sizes the neck/head in the listed order but
  returns the features in stage order, and silently drops negative indices.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .._registry import TASKS, BuildError, Built, Code, Component, Feature, Issue, register
from ._common import NORMALIZATIONS, norm_param, param

STEM_CHANNELS = 64  # fixed in the peer (torchvision's inplanes)
STEM_STRIDE = 4  # stride-2 conv, then stride-2 max pool
EXPANSION = {"basicblock": 1, "bottleneck": 4}
BLOCKS = {"basicblock": Code("BasicBlock"), "bottleneck": Code("Bottleneck")}  # classes in resnet.py.jinja


@register
class ResNet(Component):
    """ResNet backbone (He et al.) with basic or bottleneck blocks and any number of stages."""

    kind = "backbone"
    name = "resnet"
    tasks = TASKS
    template = "resnet.py.jinja"
    stage_module = "stages.{index}"
    params = {
        "block_type": param(
            "string",
            "basicblock",
            "Residual block: `basicblock` (two 3x3 convs, ResNet-18/34) "
            "or `bottleneck` (1x1-3x3-1x1 with 4x expansion, ResNet-50 and deeper).",
            enum=list(BLOCKS),
        ),
        "norm_type": norm_param(
            "batch_norm",
            "Normalisation inside the residual blocks and shortcuts "
            "(the stem is always batch-normalised). Null means batch_norm.",
            nullable=True,
        ),
        "return_stage_idx": param(
            ["array", "null"],
            None,
            "Indices (0-based, increasing) of the stages whose "
            "outputs go to the neck/head for segmentation, detection and pose estimation. "
            "Null or empty: the last stage only. Ignored for classification, where the last "
            "stage is average-pooled.",
            items={"type": "integer", "minimum": 0},
        ),
        "split_stem_conv": param(
            "boolean",
            False,
            "Replace the 7x7 stem convolution by three 3x3 convolutions (32, 32, 64 channels; the ResNet-C stem).",
        ),
        "first_stage_shortcut_conv": param(
            "boolean",
            False,
            "Give the first block of the first stage a 1x1 "
            "projection shortcut even when its input and output shapes match.",
        ),
    }
    stage_params = {
        "type": "object",
        "description": "One stage: a sequence of residual blocks.",
        "properties": {
            "channels": {
                "type": "integer",
                "minimum": 1,
                "description": "Width of the blocks' 3x3 convolutions; "
                "the stage outputs channels x 4 with bottleneck blocks, channels with basic blocks.",
            },
            "num_blocks": {"type": "integer", "minimum": 1, "description": "Number of residual blocks."},
            "replace_stride_with_dilation": {
                "type": "boolean",
                "default": False,
                "description": "Keep the resolution: dilate the 3x3 convolutions (x2) instead of "
                "striding. Bottleneck blocks only; ignored on the first stage.",
            },
            "replace_stride_with_pooling": {
                "type": "boolean",
                "default": False,
                "description": "Stride the shortcut with a 2x2 average pool before its 1x1 "
                "convolution (ResNet-D). Ignored on the first stage.",
            },
        },
        "required": ["channels", "num_blocks"],
        "additionalProperties": False,
    }

    @classmethod
    def build(
        cls, params: dict[str, Any], stage_params: list | None, inputs: tuple[Feature, ...], *, task: str
    ) -> Built:
        for issue in _issues(params, stage_params):
            raise BuildError(issue.pointer, issue.message)
        stages = stage_params or []
        block_type = params["block_type"]
        channels = [stage["channels"] for stage in stages]
        # The first stage never dilates or pools (the peer does not read its flags).
        dilate = [index > 0 and bool(stage.get("replace_stride_with_dilation")) for index, stage in enumerate(stages)]
        pool = [index > 0 and bool(stage.get("replace_stride_with_pooling")) for index, stage in enumerate(stages)]
        features = _stage_features(channels, dilate, EXPANSION[block_type])
        global_pool = task == "classification"

        kwargs: dict[str, Any] = {
            "block": BLOCKS[block_type],
            "channels": channels,
            "num_blocks": [stage["num_blocks"] for stage in stages],
        }
        if any(dilate):
            kwargs["replace_stride_with_dilation"] = dilate
        if any(pool):
            kwargs["replace_stride_with_pooling"] = pool
        kwargs["first_stage_shortcut_conv"] = bool(params["first_stage_shortcut_conv"])
        kwargs["norm_layer"] = NORMALIZATIONS[params["norm_type"]]
        if global_pool:  # the last stage, pooled to (B, C) inside the backbone as in the peer
            selected = [len(stages) - 1]
        else:
            selected = _return_stage_idx(params, len(stages))
            kwargs["return_stage_idx"] = selected
        return Built(
            class_name="ResNet",
            kwargs=kwargs,
            outputs=tuple(features[index] for index in selected),
            stages=features,
            selected=tuple(selected),
            template_vars={
                "bottleneck": block_type == "bottleneck",
                "split_stem": bool(params["split_stem_conv"]),
                "dilation": any(dilate),
                "pool_shortcut": any(pool),
                "global_pool": global_pool,
            },
            blocks=("conv_layer",),
        )

    @classmethod
    def check(cls, params: dict[str, Any], stage_params: list | None, task: str) -> Iterator[Issue]:
        yield from _issues(cls.resolve_params(params), stage_params)


def _return_stage_idx(params: dict[str, Any], num_stages: int) -> list[int]:
    return list(params.get("return_stage_idx") or [num_stages - 1])


def _stage_features(channels: list[int], dilate: list[bool], expansion: int) -> tuple[Feature, ...]:
    features, stride = [], STEM_STRIDE
    for index, (width, dilated) in enumerate(zip(channels, dilate, strict=True)):
        if index > 0 and not dilated:
            stride *= 2
        features.append(Feature(width * expansion, stride))
    return tuple(features)


def _issues(params: dict[str, Any], stage_params: list | None) -> Iterator[Issue]:
    stages = stage_params or []
    if not stages:
        yield Issue("/stage_params", "resnet needs at least one stage")
        return
    indices = params.get("return_stage_idx") or []
    for position, index in enumerate(indices):
        pointer = f"/params/return_stage_idx/{position}"
        if not 0 <= index < len(stages):
            yield Issue(pointer, f"stage index {index} out of range: there are {len(stages)} stages (0-based)")
        elif position > 0 and index <= indices[position - 1]:
            yield Issue(pointer, "return_stage_idx must be strictly increasing (features come out in stage order)")
    if params.get("block_type") == "basicblock":
        for index, stage in enumerate(stages[1:], start=1):
            if stage.get("replace_stride_with_dilation"):
                yield Issue(
                    f"/stage_params/{index}/replace_stride_with_dilation",
                    "basicblock has no dilated variant; use block_type: bottleneck to dilate",
                )
