"""MobileViT backbone family, as NetsPresso Trainer 1.4.1 reads it (``models/backbones/experimental/mobilevit.py``).

Validated only (not compilable yet). Classification only in the peer. A stage is either ``mv2`` (inverted
residual blocks) or ``mobilevit`` (an optional strided inverted residual, then a MobileViT block whose
transformer has ``num_blocks`` layers); only ``mobilevit`` stages read ``attention_channels``,
``ffn_intermediate_channels`` and ``dilate``. The stem (16 channels) and the final 1x1 expansion are fixed.
The peer reads every key without a default; the defaults here are those of its MobileViT-S example.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .._registry import Component, Issue, register
from ._zoo_schema import boolean, divisible_issue, field, integer, probability

MOBILEVIT_ONLY = ("attention_channels", "ffn_intermediate_channels", "dilate")


@register
class MobileViT(Component):
    """MobileViT backbone: MobileNetV2 blocks interleaved with local-global MobileViT transformer blocks."""

    kind = "backbone"
    name = "mobilevit"
    tasks = ("classification",)
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
    def check(cls, params: dict[str, Any], stage_params: list | None, task: str) -> Iterator[Issue]:
        params = cls.resolve_params(params)
        stages = stage_params or []
        if not stages:
            yield Issue("/stage_params", "mobilevit needs at least one stage")
        for index, stage in enumerate(stages):
            if stage["block_type"] == "mv2":
                for key in MOBILEVIT_ONLY:
                    if key in stage:
                        yield Issue(f"/stage_params/{index}/{key}", f"{key} is only read by mobilevit stages")
            else:
                yield from divisible_issue(
                    f"/stage_params/{index}/attention_channels",
                    stage["attention_channels"],
                    params["num_attention_heads"],
                    "attention_channels",
                    "params.num_attention_heads",
                )
