"""MobileNetV4 backbone, as NetsPresso Trainer 1.4.1 builds it (``models/backbones/experimental/mobilenetv4.py``).

Every stage is a list of rows, one per block, whose first item names the block: ``conv`` (ConvLayer),
``fi`` (fused inverted bottleneck), ``uir`` (universal inverted residual) or ``mmqa`` (mobile multi-query
attention). The peer reads every ``params`` key without a default; the defaults here are those of its
MobileNetV4-conv-small example.

Peer behaviour reproduced here (each one changes the state_dict or the outputs):
- A final conv-norm-activation (``final_conv_*``) is appended to the *last stage* (so its keys are
  ``stages.<last>.<n>.*``) for every task: the last stage hands on ``final_conv_out_channel`` channels.
- Null ``norm_type`` / ``act_type`` mean batch_norm / relu, as in the peer's ConvLayer. mmqa blocks are always
  batch-normalised (the peer does not pass ``norm_type`` to them) and have no qkv biases.
- A uir block has a 1x1 expansion conv only when ``hidden_channels`` differs from its input width; its extra
  depthwise conv and its projection have no activation; it adds its input back when the stride is 1 and the
  width is unchanged. Only the middle depthwise conv strides.
- The key/value downsampling depthwise conv pads by ``kernel // 2``; ``layer_scale`` adds a ``gamma`` vector
  (``layer_scale.gamma``) to every uir and mmqa block.
- Classification pools the last stage to (B, C); other tasks get the stages of ``return_stage_idx`` (null or
  empty: the last stage only), in stage order.

Deliberate differences (specs the peer mishandles):
- ``query_pooling_stride`` > 1: the peer pools the queries but reshapes the attention output to the *unpooled*
  size, so its forward fails. npc reshapes to the pooled size and lets the upsampling restore it (as the
  MobileNetV4 paper does); the parameters and state_dict keys are the peer's. H and W at that block must be
  divisible by the stride.
- Rejected: a uir row with stride 2 but no middle depthwise conv (the peer silently drops the stride), a
  residual uir row with an even depthwise kernel (the peer's forward fails on the size mismatch), an mmqa row
  that changes the width, and ``return_stage_idx`` out of range or not increasing (the peer sizes the
  neck/head in the listed order but returns features in stage order).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .._registry import TASKS, Built, Component, Feature, Issue, register
from ._common import ACTIVATIONS, NORMALIZATIONS, act_param, norm_param
from ._zoo_schema import (
    divisible_issue,
    field,
    integer,
    number,
    return_stage_idx_issues,
    return_stage_idx_param,
    row,
    rows,
)

CHANNELS = field("integer", "output channels.", minimum=1)
KERNEL = field("integer", "kernel size.", minimum=1)
OPTIONAL_KERNEL = field(["integer", "null"], "kernel size (null when unused).", minimum=1)


@register
class MobileNetV4(Component):
    """MobileNetV4 backbone: conv, fused-IB, universal inverted residual and mobile MQA blocks listed row by row."""

    kind = "backbone"
    name = "mobilenetv4"
    tasks = TASKS
    template = "mobilenetv4.py.jinja"
    params = {
        "stem_out_channel": integer(32, "Output channels of the stem convolution."),
        "stem_kernel_size": integer(3, "Kernel size of the stem convolution."),
        "stem_stride": integer(2, "Stride of the stem convolution."),
        "final_conv_out_channel": integer(960, "Output channels of the conv appended to the last stage."),
        "final_conv_kernel_size": integer(1, "Kernel size of the conv appended to the last stage."),
        "final_conv_stride": integer(1, "Stride of the conv appended to the last stage."),
        "norm_type": norm_param(
            "batch_norm",
            "Normalisation after every convolution (mmqa blocks always use batch_norm); null means batch_norm.",
            nullable=True,
        ),
        "act_type": act_param("relu", "Activation used throughout the network; null means relu.", nullable=True),
        "return_stage_idx": return_stage_idx_param(),
        "layer_scale": number(
            None,
            "Initial value of the learnable per-channel scale on the output of uir and mmqa blocks; "
            "null disables layer scale.",
            exclusiveMinimum=0,
        ),
    }
    stage_params = rows(
        "One stage: a list of blocks, one row each.",
        row(
            "conv",
            ("out_channels", CHANNELS),
            ("kernel_size", KERNEL),
            ("stride", field("integer", "stride.", minimum=1)),
        ),
        row(
            "fi",
            ("out_channels", CHANNELS),
            ("hidden_channels", field("integer", "width of the expanding full convolution.", minimum=1)),
            ("kernel_size", KERNEL),
            ("stride", field("integer", "stride.", minimum=1)),
        ),
        row(
            "uir",
            ("out_channels", CHANNELS),
            ("hidden_channels", field("integer", "expanded width.", minimum=1)),
            ("extra_dw", field("boolean", "add a depthwise conv before the expansion.")),
            ("extra_dw_kernel_size", OPTIONAL_KERNEL),
            ("middle_dw", field("boolean", "add a depthwise conv after the expansion (it carries the stride).")),
            ("middle_dw_kernel_size", OPTIONAL_KERNEL),
            ("stride", field("integer", "stride (1 or 2).", enum=[1, 2])),
        ),
        row(
            "mmqa",
            ("out_channels", field("integer", "output channels; must equal the input channels.", minimum=1)),
            ("attention_channel", field("integer", "total width of the attention queries.", minimum=1)),
            ("num_attention_heads", field("integer", "number of attention heads.", minimum=1)),
            (
                "query_pooling_stride",
                field(["integer", "null"], "average-pool the queries by this stride (null: no pooling).", minimum=1),
            ),
            ("key_val_downsample", field("boolean", "downsample keys and values with a strided depthwise conv.")),
            ("key_val_downsample_kernel_size", OPTIONAL_KERNEL),
            (
                "key_val_downsample_stride",
                field(["integer", "null"], "key/value downsampling stride (null when unused).", minimum=1),
            ),
            ("stride", field("integer", "stride; attention blocks only support 1.", const=1)),
        ),
    )

    @classmethod
    def build(
        cls, params: dict[str, Any], stage_params: list | None, inputs: tuple[Feature, ...], *, task: str
    ) -> Built:
        stages = stage_params or []
        kinds = {block[0] for stage in stages for block in stage}
        features = _stage_features(params, stages)
        global_pool = task == "classification"
        # Layer scale only exists inside uir and mmqa blocks.
        layer_scale = params["layer_scale"] is not None and bool(kinds & {"uir", "mmqa"})

        kwargs: dict[str, Any] = {
            "stem_channels": params["stem_out_channel"],
            "stem_kernel_size": params["stem_kernel_size"],
            "stem_stride": params["stem_stride"],
            "stages": [[_row(block) for block in stage] for stage in stages],
            "final_conv_channels": params["final_conv_out_channel"],
            "final_conv_kernel_size": params["final_conv_kernel_size"],
            "final_conv_stride": params["final_conv_stride"],
            "norm_layer": NORMALIZATIONS[params["norm_type"] or "batch_norm"],
            "act_layer": ACTIVATIONS[params["act_type"] or "relu"],
        }
        if layer_scale:
            kwargs["layer_scale"] = float(params["layer_scale"])
        if global_pool:  # the last stage, pooled to (B, C) inside the backbone as in the peer
            selected = [len(stages) - 1]
        else:
            selected = list(params["return_stage_idx"] or [len(stages) - 1])
            kwargs["return_stage_idx"] = selected
        return Built(
            class_name="MobileNetV4",
            kwargs=kwargs,
            outputs=tuple(features[index] for index in selected),
            stages=features,
            selected=tuple(selected),
            template_vars={
                "conv": "conv" in kinds,
                "fused_ib": "fi" in kinds,
                "uir": "uir" in kinds,
                "mmqa": "mmqa" in kinds,
                "layer_scale": layer_scale,
                "global_pool": global_pool,
            },
            blocks=("conv_layer",),
        )

    @classmethod
    def check(cls, params: dict[str, Any], stage_params: list | None, task: str) -> Iterator[Issue]:
        params = cls.resolve_params(params)
        stages = stage_params or []
        if not stages:
            yield Issue("/stage_params", "mobilenetv4 needs at least one stage")
            return
        yield from return_stage_idx_issues(params, len(stages))
        channels = params["stem_out_channel"]
        for index, stage in enumerate(stages):
            for position, block in enumerate(stage):
                pointer = f"/stage_params/{index}/{position}"
                yield from _block_issues(pointer, block, channels)
                channels = block[1]


def _row(block: list) -> tuple:
    """One emitted row ``(kind, out_channels, *args)``: flags folded into their kernel sizes (None = absent)."""
    kind = block[0]
    if kind == "uir":
        _, out_channels, hidden, extra_dw, extra_kernel, middle_dw, middle_kernel, stride = block
        return (
            kind,
            out_channels,
            hidden,
            extra_kernel if extra_dw else None,
            middle_kernel if middle_dw else None,
            stride,
        )
    if kind == "mmqa":  # the stride is always 1
        _, out_channels, attention, heads, query_stride, downsample, kv_kernel, kv_stride, _ = block
        # The peer pools the queries whenever the stride is truthy.
        return (
            kind,
            out_channels,
            attention,
            heads,
            query_stride or None,
            kv_kernel if downsample else None,
            kv_stride if downsample else None,
        )
    return tuple(block)  # conv: (kind, out, kernel, stride); fi: (kind, out, hidden, kernel, stride)


def _stage_features(params: dict[str, Any], stages: list) -> tuple[Feature, ...]:
    """Each stage's output; the last one ends with the final conv (its width and stride)."""
    features, stride = [], params["stem_stride"]
    for stage in stages:
        for block in stage:
            stride *= block[-1]  # every row ends with its stride (always 1 for mmqa)
        features.append(Feature(stage[-1][1], stride))
    last = features[-1]
    features[-1] = Feature(params["final_conv_out_channel"], last.stride * params["final_conv_stride"])
    return tuple(features)


def _block_issues(pointer: str, block: list, in_channels: int) -> Iterator[Issue]:
    kind = block[0]
    if kind == "uir":
        _, out_channels, _, extra_dw, extra_kernel, middle_dw, middle_kernel, stride = block
        if extra_dw and extra_kernel is None:
            yield Issue(f"{pointer}/4", "extra_dw is true, so extra_dw_kernel_size must be given")
        if middle_dw and middle_kernel is None:
            yield Issue(f"{pointer}/6", "middle_dw is true, so middle_dw_kernel_size must be given")
        if stride != 1 and not middle_dw:
            yield Issue(f"{pointer}/7", "only the middle depthwise conv strides: stride 2 needs middle_dw true")
        if stride == 1 and out_channels == in_channels:  # the block adds its input back
            for index, used, kernel in ((4, extra_dw, extra_kernel), (6, middle_dw, middle_kernel)):
                if used and kernel is not None and kernel % 2 == 0:
                    yield Issue(
                        f"{pointer}/{index}",
                        f"an even kernel ({kernel}) shrinks the map by one pixel, so this residual block "
                        "cannot add its input back; use an odd kernel size",
                    )
    elif kind == "mmqa":
        _, out_channels, attention, heads, _, downsample, kv_kernel, kv_stride, _ = block
        if out_channels != in_channels:
            yield Issue(
                f"{pointer}/1",
                f"attention blocks keep the width: out_channels is {out_channels} but the input has "
                f"{in_channels} channels",
            )
        yield from divisible_issue(f"{pointer}/2", attention, heads, "attention_channel", "num_attention_heads")
        if downsample and kv_kernel is None:
            yield Issue(f"{pointer}/6", "key_val_downsample is true, so its kernel size must be given")
        if downsample and kv_stride is None:
            yield Issue(f"{pointer}/7", "key_val_downsample is true, so its stride must be given")
