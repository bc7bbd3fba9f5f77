"""RT-DETR detection head family (its transformer decoder), as NetsPresso Trainer 1.4.1 reads it
(``models/heads/detection/experimental/rtdetr_head.py``).

Validated only (not compilable yet). Projects the (three) incoming levels, selects the top ``num_queries``
encoder proposals and refines them through deformable-attention decoder layers, with denoising queries in
training. Doc vs source: ``eval_spatial_size`` is read by the source and set by every example but missing from
the docs (accepted); the decoder applies ``act_type`` as ``torch.nn.functional.<act_type>``, so only the
activations that exist there as plain functions are accepted (``hard_swish``, ``swish`` and ``prelu`` would fail
in the peer). The peer reads every key without a default; the defaults follow its docs and RT-DETR-R50 example.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .._registry import Component, Issue, register
from ._common import param
from ._zoo_schema import boolean, choice, divisible_issue, integer, positive, probability

# ACTIVATIONS entries that are also plain functions of torch.nn.functional with the same name.
FUNCTIONAL_ACTIVATIONS = ["relu", "relu6", "leaky_relu", "gelu", "silu"]


@register
class RTDETRHead(Component):
    """RT-DETR head: query selection and a deformable-attention transformer decoder with denoising training."""

    kind = "head"
    name = "rtdetr_head"
    tasks = ("detection",)
    params = {
        "hidden_dim": integer(256, "Width of the decoder; must be divisible by num_attention_heads."),
        "num_attention_heads": integer(8, "Number of attention heads in the decoder."),
        "num_levels": integer(
            3, "Feature levels the deformable attention samples from; at least the 3 incoming levels.", minimum=3
        ),
        "num_queries": integer(300, "Number of object queries (boxes predicted per image)."),
        "eps": positive(0.01, "Margin that keeps proposal anchors away from the image border (0 < eps < 0.5).")
        | {"exclusiveMaximum": 0.5},
        "num_decoder_layers": integer(6, "Number of decoder layers."),
        "eval_spatial_size": param(
            ["array", "null"],
            None,
            "Fixed (height, width) of evaluation inputs, to precompute anchors; null computes them per input.",
            items={"type": "integer", "minimum": 1},
            minItems=2,
            maxItems=2,
        ),
        "position_embed_type": choice(["sine", "learned"], "sine", "Kind of position embedding: `sine` or `learned`."),
        "num_decoder_points": integer(4, "Sampling points per head and level in the deformable attention."),
        "dim_feedforward": integer(1024, "Hidden width of the decoder's feed-forward networks."),
        "dropout": probability(0.0, "Dropout probability in the decoder."),
        "act_type": choice(FUNCTIONAL_ACTIVATIONS, "relu", "Activation of the decoder's feed-forward networks."),
        "num_denoising": integer(100, "Number of denoising queries in training (0 disables denoising).", minimum=0),
        "label_noise_ratio": probability(0.5, "Share of denoising queries whose class label is randomly flipped."),
        "use_aux_loss": boolean(True, "Also return every decoder layer's predictions for auxiliary losses."),
    }

    @classmethod
    def check(cls, params: dict[str, Any], stage_params: list | None, task: str) -> Iterator[Issue]:
        params = cls.resolve_params(params)
        yield from divisible_issue(
            "/params/hidden_dim",
            params["hidden_dim"],
            params["num_attention_heads"],
            "hidden_dim",
            "num_attention_heads",
        )
