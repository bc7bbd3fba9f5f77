"""MobileViT backbone family, as NetsPresso Trainer 1.4.1 builds it (``models/backbones/experimental/mobilevit.py``).

Classification only in the peer. A stage is either ``mv2`` (inverted residual blocks) or ``mobilevit`` (an
optional strided inverted residual, then a MobileViT block whose transformer has ``num_blocks`` layers); only
``mobilevit`` stages read ``attention_channels``, ``ffn_intermediate_channels`` and ``dilate``. The peer reads
every key without a default; the defaults here are those of its MobileViT-S example.

Peer behaviour reproduced here (each one changes the state_dict or the outputs):
- The stem (3x3 stride-2 conv, 16 channels) is fixed; every conv is batch-normalised with SiLU, LayerNorm eps
  is 1e-5, the MLP activation is SiLU and attention has query/key/value biases.
- An inverted residual has its 1x1 expansion conv only when the expanded width differs from the input width
  (``ir_expansion_ratio: 1``), so the keys ``block.0``/``block.1``/``block.2`` shift.
- A ``mobilevit`` stage adds an inverted residual only when ``stride`` is 2; with ``dilate`` that block does not
  stride, and every later mobilevit-stage inverted residual is dilated by a dilation that grows by 2 (not x2 as
  in the reference MobileViT) and never strides, though it keeps no residual when it was asked to stride.
  ``mv2`` stages are never dilated.
- The final 1x1 conv widens the last stage ``output_expansion_ratio`` times, capped at 960 channels; the backbone
  returns it global-average-pooled, (B, C).
- Attention runs between patches (``patch_size`` x ``patch_size``): each MobileViT block needs H and W divisible
  by ``patch_size`` at its resolution, or the forward fails, as in the peer.

Deliberate differences (specs the peer mishandles are rejected instead):
- A ``mobilevit`` stage with ``stride: 1`` and an ``out_channels`` different from its input width: the peer's
  MobileViT block keeps its input width, so the next layer gets the wrong width and the forward fails.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from .._registry import Built, Component, Feature, Issue, register
from ._zoo_schema import boolean, divisible_issue, field, integer, probability

MOBILEVIT_ONLY = ("attention_channels", "ffn_intermediate_channels", "dilate")
STEM_CHANNELS = 16  # fixed in the peer
STEM_STRIDE = 2
MAX_EXP_CHANNELS = 960  # the peer caps the final 1x1 expansion here
STAGE_KEYS = ("block_type", "out_channels", "num_blocks", "stride", "ir_expansion_ratio", *MOBILEVIT_ONLY)


@register
class MobileViT(Component):
    """MobileViT backbone: MobileNetV2 blocks interleaved with local-global MobileViT transformer blocks."""

    kind = "backbone"
    name = "mobilevit"
    tasks = ("classification",)
    template = "mobilevit.py.jinja"
    params = {
        "patch_size": integer(2, "Side of the patches the MobileViT blocks unfold feature maps into."),
        "num_attention_heads": integer(4, "Number of attention heads in every MobileViT block."),
        "attention_dropout_prob": probability(0.1, "Dropout probability on the attention weights."),
        "ffn_dropout_prob": probability(0.0, "Dropout probability in the transformer feed-forward networks."),
        "output_expansion_ratio": integer(
            4, "The final 1x1 conv widens the last stage by this factor, capped at 960 channels."
        ),
        "use_fusion_layer": boolean(
            True, "Fuse each MobileViT block's input with its output through a 3x3 conv (concatenation first)."
        ),
    }
    stage_params = {
        "type": "object",
        "description": "One stage: inverted residual blocks (mv2) or a MobileViT block (mobilevit).",
        "properties": {
            "block_type": field("string", "Kind of stage: `mv2` or `mobilevit`.", enum=["mv2", "mobilevit"]),
            "out_channels": field("integer", "Output width of the stage.", minimum=1),
            "num_blocks": field(
                "integer",
                "mv2: number of inverted residual blocks; mobilevit: number of transformer layers.",
                minimum=1,
            ),
            "stride": field(
                "integer",
                "Stride of the stage's first block (1 or 2); a mobilevit stage adds a strided inverted "
                "residual only when this is 2.",
                enum=[1, 2],
            ),
            "ir_expansion_ratio": field("integer", "Expansion factor of the inverted residual blocks.", minimum=1),
            "attention_channels": field(
                "integer",
                "mobilevit only: token width of the transformer; must be divisible by num_attention_heads.",
                minimum=1,
            ),
            "ffn_intermediate_channels": field(
                "integer", "mobilevit only: hidden width of the transformer feed-forward networks.", minimum=1
            ),
            "dilate": field("boolean", "mobilevit only: keep the resolution and dilate instead of striding."),
        },
        "required": ["block_type", "out_channels", "num_blocks", "stride", "ir_expansion_ratio"],
        "additionalProperties": False,
        "if": {"properties": {"block_type": {"const": "mobilevit"}}, "required": ["block_type"]},
        "then": {"required": list(MOBILEVIT_ONLY)},
    }

    @classmethod
    def build(
        cls, params: dict[str, Any], stage_params: list | None, inputs: tuple[Feature, ...], *, task: str
    ) -> Built:
        stages = stage_params or []
        dilation = any(stage["block_type"] == "mobilevit" and stage["dilate"] for stage in stages)
        keys = STAGE_KEYS if dilation else STAGE_KEYS[:-1]  # ``dilate`` is only read when some stage dilates
        exp_channels = min(params["output_expansion_ratio"] * stages[-1]["out_channels"], MAX_EXP_CHANNELS)
        features = _stage_features(stages, exp_channels)
        return Built(
            class_name="MobileViT",
            kwargs={
                "stages": [{key: stage[key] for key in keys if key in stage} for stage in stages],
                "patch_size": params["patch_size"],
                "num_heads": params["num_attention_heads"],
                "attention_dropout_prob": float(params["attention_dropout_prob"]),
                "ffn_dropout_prob": float(params["ffn_dropout_prob"]),
                "exp_channels": exp_channels,
            },
            outputs=features[-1:],
            stages=features,
            selected=(len(features) - 1,),
            template_vars={
                "dilation": dilation,
                "fusion": bool(params["use_fusion_layer"]),
                "sequence_reduction": False,
                "attention_bias": False,
            },
            blocks=("conv_layer",),
        )

    @classmethod
    def input_multiple(cls, params: dict[str, Any], stage_params: list | None) -> int:
        """Each MobileViT block unfolds its map into patch_size x patch_size patches, so the input must divide by
        patch_size times the stride at every mobilevit stage (64 for MobileViT-S: 224 fails, 256 works)."""
        stages = stage_params or []
        features = _stage_features(stages, 1)
        strides = [feature.stride for feature, stage in zip(features, stages) if stage["block_type"] == "mobilevit"]
        return math.lcm(1, *(stride * params["patch_size"] for stride in strides))

    @classmethod
    def check(cls, params: dict[str, Any], stage_params: list | None, task: str) -> Iterator[Issue]:
        params = cls.resolve_params(params)
        stages = stage_params or []
        if not stages:
            yield Issue("/stage_params", "mobilevit needs at least one stage")
        in_channels = STEM_CHANNELS
        for index, stage in enumerate(stages):
            if stage["block_type"] == "mv2":
                for key in MOBILEVIT_ONLY:
                    if key in stage:
                        yield Issue(f"/stage_params/{index}/{key}", f"{key} is only read by mobilevit stages")
            else:
                if stage["stride"] == 1 and stage["out_channels"] != in_channels:
                    yield Issue(
                        f"/stage_params/{index}/out_channels",
                        f"is {stage['out_channels']} but a mobilevit stage with stride 1 keeps its input width "
                        f"({in_channels}); use stride 2 to change the width",
                    )
                yield from divisible_issue(
                    f"/stage_params/{index}/attention_channels",
                    stage["attention_channels"],
                    params["num_attention_heads"],
                    "attention_channels",
                    "params.num_attention_heads",
                )
            in_channels = stage["out_channels"]


def _stage_features(stages: list[dict[str, Any]], exp_channels: int) -> tuple[Feature, ...]:
    """Each stage's output; the last one after the final 1x1 expansion conv."""
    features, stride, dilation = [], STEM_STRIDE, 1
    for index, stage in enumerate(stages):
        if stage["block_type"] == "mv2":
            stride *= stage["stride"]
        elif stage["stride"] == 2:
            if not stage["dilate"] and dilation == 1:  # a dilated inverted residual never strides
                stride *= 2
            if stage["dilate"]:
                dilation += 2
        last = index == len(stages) - 1
        features.append(Feature(exp_channels if last else stage["out_channels"], stride))
    return tuple(features)
