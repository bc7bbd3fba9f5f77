"""RT-DETR hybrid encoder neck family, as NetsPresso Trainer 1.4.1 reads it
(``models/necks/experimental/rtdetr_hybrid_encoder.py``).

Validated only (not compilable yet). Every incoming level is projected to ``hidden_dim``; the levels listed in
``use_encoder_idx`` go through a transformer encoder with 2-D sine-cosine positions (AIFI), then a top-down and a
bottom-up path of RepVGG-style CSP blocks fuses them (CCFF). The peer reads every key without a default; the
defaults here follow its docs and its RT-DETR-R18 example.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .._registry import Component, Issue, register
from ._common import act_param, param
from ._zoo_schema import divisible_issue, integer, positive, probability

DENSE_TASKS = ("segmentation", "detection", "pose_estimation")


@register
class RTDETRHybridEncoder(Component):
    """RT-DETR hybrid encoder neck: attention on selected levels, then CSP-based cross-scale fusion."""

    kind = "neck"
    name = "rtdetr_hybrid_encoder"
    tasks = DENSE_TASKS
    params = {
        "hidden_dim": integer(256, "Width every level is projected to; divisible by 4 and by num_attention_heads."),
        "use_encoder_idx": param(
            "array",
            [2],
            "Indices (0-based) of the incoming levels that go through the transformer encoder.",
            items={"type": "integer", "minimum": 0},
            uniqueItems=True,
        ),
        "num_encoder_layers": integer(1, "Transformer layers per encoded level (0 skips the encoder).", minimum=0),
        "pe_temperature": positive(10000, "Temperature of the sine-cosine position embedding."),
        "num_attention_heads": integer(8, "Number of attention heads in the encoder."),
        "dim_feedforward": integer(1024, "Hidden width of the encoder's feed-forward networks."),
        "dropout": probability(0.0, "Dropout probability in the encoder."),
        "attn_act_type": act_param("gelu", "Activation of the encoder's feed-forward networks."),
        "expansion": positive(0.5, "Hidden width of the CSP fusion blocks as a fraction of hidden_dim."),
        "depth_mult": positive(1.0, "Depth multiplier: each CSP fusion block has round(3 * depth_mult) RepVGG blocks."),
        "conv_act_type": act_param("silu", "Activation of the convolutional fusion layers."),
    }

    @classmethod
    def check(cls, params: dict[str, Any], stage_params: list | None, task: str) -> Iterator[Issue]:
        params = cls.resolve_params(params)
        hidden = params["hidden_dim"]
        yield from divisible_issue("/params/hidden_dim", hidden, 4, "hidden_dim", "4 (sine-cosine position embedding)")
        yield from divisible_issue(
            "/params/hidden_dim", hidden, params["num_attention_heads"], "hidden_dim", "num_attention_heads"
        )
        if int(hidden * params["expansion"]) < 1:
            yield Issue("/params/expansion", f"expansion is too small: int({hidden} * expansion) would be 0 channels")
