"""RTMCC pose-estimation head family (RTMPose's SimCC head), as NetsPresso Trainer 1.4.1 builds it
(``models/heads/pose_estimation/experimental/rtmcc.py``, after mmpose's RTMCCHead).

A conv (``final_layer``) turns the last feature map into one map per keypoint, ``mlp`` (scale norm, then a
bias-free linear layer) embeds each flattened map, a gated attention unit (``gau``, self-attention over the
keypoint tokens) mixes the keypoints, and ``cls_x`` / ``cls_y`` classify the x and y coordinates into
``target_size * simcc_split_ratio`` bins. The output is ``pred``: (B, num_classes, W*r + H*r), the x logits then
the y logits. The flattened size comes from ``target_size`` and ``backbone_stride``, so the compiled model only
accepts inputs of ``target_size``. The peer reads every key without a default; the defaults here are those of its
RTMPose example.

Peer behaviour reproduced here:
- The rotary position encoding (``attention_pos_enc``) raises 10000 to ``+i / (s/2)``, not ``-i / (s/2)`` as in
  RoFormer, so its frequencies grow along the feature axis; kept so that trained checkpoints behave the same.
- The gated attention unit always has its scaled residual (``res_scale``): its input and output widths are both
  ``attention_channels``. Its hidden width is ``int(attention_channels * expansion_factor)``.
- The relative position bias (``use_rel_bias``) has ``2 * num_classes - 1`` learned values, so ``gau.w``
  depends on the number of keypoints.

Deliberate differences (specs the peer mishandles are rejected or fixed instead):
- ``backbone_stride`` must equal the real stride of the feature map the head reads; the peer builds a
  mismatched head and fails on the first forward pass.
- ``s`` must be even when ``attention_pos_enc`` is on (the peer fails on the first forward pass otherwise).
- With one keypoint and ``use_rel_bias`` the peer's bias slicing yields an empty tensor and fails; the compiled
  module indexes the bias as ``w[j - i + K - 1]``, which equals the peer's for every other keypoint count.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .._registry import NUM_CLASSES, BuildError, Built, Component, Feature, Issue, register
from ._common import ACTIVATIONS, param
from ._zoo_schema import boolean, choice, integer, positive, probability


@register
class RTMCC(Component):
    """RTMPose SimCC head: gated attention over keypoint embeddings, then x/y coordinate classification."""

    kind = "head"
    name = "rtmcc"
    tasks = ("pose_estimation",)
    template = "rtmcc.py.jinja"
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
    def build(
        cls, params: dict[str, Any], stage_params: list | None, inputs: tuple[Feature, ...], *, task: str
    ) -> Built:
        for issue in _issues(params):
            raise BuildError(issue.pointer, issue.message)
        feature = inputs[-1]
        stride = params["backbone_stride"]
        if stride != feature.stride:
            raise BuildError(
                "/params/backbone_stride",
                f"is {stride} but the head reads the backbone's last feature map, at stride {feature.stride}",
            )
        height, width = params["target_size"]
        ratio = params["simcc_split_ratio"]
        relative_bias = bool(params["use_rel_bias"])
        dropout = params["dropout_rate"] > 0
        drop_path = params["drop_path"] > 0
        attention: dict[str, Any] = {
            "hidden_channels": _hidden_channels(params),
            "qk_channels": params["s"],
            "act_layer": ACTIVATIONS[params["attention_act_type"]],
        }
        if dropout:
            attention["dropout_prob"] = float(params["dropout_rate"])
        if drop_path:
            attention["drop_path_prob"] = float(params["drop_path"])
        return Built(
            class_name="RTMCC",
            kwargs={
                "in_channels": feature.channels,
                "num_classes": NUM_CLASSES,
                "conv_kernel": params["conv_kernel"],
                "flatten_size": (height // stride) * (width // stride),
                "attention_channels": params["attention_channels"],
                **attention,
                "num_bins_x": int(width * ratio),
                "num_bins_y": int(height * ratio),
            },
            outputs=(),
            template_vars={
                "relative_bias": relative_bias,
                "pos_enc": bool(params["attention_pos_enc"]),
                "dropout": dropout,
                "drop_path": drop_path,
            },
            output_keys=("pred",),
        )

    @classmethod
    def check(cls, params: dict[str, Any], stage_params: list | None, task: str) -> Iterator[Issue]:
        yield from _issues(cls.resolve_params(params))


def _hidden_channels(params: dict[str, Any]) -> int:
    return int(params["attention_channels"] * params["expansion_factor"])  # the peer truncates


def _issues(params: dict[str, Any]) -> Iterator[Issue]:
    if params["conv_kernel"] % 2 == 0:
        yield Issue("/params/conv_kernel", "must be odd: an even kernel changes the map size the MLP expects")
    stride = params["backbone_stride"]
    for axis, size in enumerate(params["target_size"]):
        if size % stride:
            yield Issue(
                f"/params/target_size/{axis}",
                f"{size} is not a multiple of backbone_stride ({stride}): the flattened size would not match",
            )
    if int(min(params["target_size"]) * params["simcc_split_ratio"]) < 1:
        yield Issue("/params/simcc_split_ratio", "leaves a coordinate classifier with no bin")
    if _hidden_channels(params) < 1:
        yield Issue("/params/expansion_factor", "leaves the gated attention unit no hidden channel")
    if params["attention_pos_enc"] and params["s"] % 2:
        yield Issue("/params/s", "must be even with attention_pos_enc: the rotary encoding rotates pairs")
