"""RTMCC pose-estimation head family (RTMPose's SimCC head), as NetsPresso Trainer 1.4.1 reads it
(``models/heads/pose_estimation/experimental/rtmcc.py``).

Validated only (not compilable yet). A conv turns the last feature map into one map per keypoint, an MLP embeds
each flattened map, a gated attention unit mixes the keypoints, and two linear layers classify the x and y
coordinates into ``target_size * simcc_split_ratio`` bins. The flattened size is computed from ``target_size``
and ``backbone_stride``, so both must describe the real input. The peer reads every key without a default; the
defaults here are those of its RTMPose example.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .._registry import Component, Issue, register
from ._common import param
from ._zoo_schema import boolean, choice, integer, positive, probability


@register
class RTMCC(Component):
    """RTMPose SimCC head: gated attention over keypoint embeddings, then x/y coordinate classification."""

    kind = "head"
    name = "rtmcc"
    tasks = ("pose_estimation",)
    params = {
        "conv_kernel": integer(7, "Kernel size (odd) of the conv that produces one map per keypoint."),
        "attention_channels": integer(256, "Width of the keypoint embeddings and the gated attention unit."),
        "attention_act_type": choice(["silu", "relu"], "silu", "Activation of the gated attention unit."),
        "attention_pos_enc": boolean(False, "Apply rotary position encoding inside the gated attention unit."),
        "s": integer(128, "Width of the shared query/key projection of the gated attention unit."),
        "expansion_factor": positive(2, "Hidden width of the gated attention unit as a multiple of its input."),
        "dropout_rate": probability(0.0, "Dropout probability on the attention kernel."),
        "drop_path": probability(0.0, "Stochastic-depth probability of the gated attention unit."),
        "use_rel_bias": boolean(False, "Add a learned relative position bias to the attention."),
        "simcc_split_ratio": positive(2.0, "Coordinate bins per input pixel (the x/y classifiers' resolution)."),
        "target_size": param(
            "array",
            [256, 256],
            "Input image size as (height, width); both must be multiples of backbone_stride.",
            items={"type": "integer", "minimum": 1},
            minItems=2,
            maxItems=2,
        ),
        "backbone_stride": integer(32, "Stride of the feature map the head reads, relative to the input."),
    }

    @classmethod
    def check(cls, params: dict[str, Any], stage_params: list | None, task: str) -> Iterator[Issue]:
        params = cls.resolve_params(params)
        if params["conv_kernel"] % 2 == 0:
            yield Issue("/params/conv_kernel", "must be odd: an even kernel changes the map size the MLP expects")
        stride = params["backbone_stride"]
        for axis, size in enumerate(params["target_size"]):
            if size % stride:
                yield Issue(
                    f"/params/target_size/{axis}",
                    f"{size} is not a multiple of backbone_stride ({stride}): the flattened size would not match",
                )
