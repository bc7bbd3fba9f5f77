"""RT-DETR hybrid encoder neck family, as NetsPresso Trainer 1.4.1 reads it
(``models/necks/experimental/rtdetr_hybrid_encoder.py``).

Every incoming level is projected to ``hidden_dim``; the levels listed in
``use_encoder_idx`` go through a transformer encoder with 2-D sine-cosine positions (AIFI), then a top-down and a
bottom-up path of RepVGG-style CSP blocks fuses them (CCFF). The peer reads every key without a default; the
defaults here follow its docs and its RT-DETR-R18 example.

Peer behaviour reproduced here:
- The projections are unnamed ``Sequential(Conv2d, BatchNorm2d)`` (keys ``input_proj.<i>.0/1``), unlike the
  head's, which are named ``conv``/``norm``.
- The sine-cosine grid is flattened column-major while the tokens are row-major (as in RT-DETR), so on a square
  map the "x" half of the embedding follows the row.
- The fusion blocks have ``round(3 * depth_mult)`` RepVGG blocks (Python rounding: 2.5 gives 2) of width
  ``int(hidden_dim * expansion)``; their closing 1x1 conv is an Identity (no keys) when that width is hidden_dim.
- ``num_encoder_layers: 0`` builds no encoder layer at all; an empty ``use_encoder_idx`` likewise.

Deliberate differences (specs the peer mishandles are rejected instead): an index in ``use_encoder_idx`` beyond
the incoming levels, and incoming levels whose strides do not double from one to the next (the peer's fusion
upsamples by exactly 2), are build errors rather than failures at the first forward.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .._registry import DENSE_TASKS, BuildError, Built, Component, Feature, Issue, register
from ._common import ACTIVATIONS, act_param, param
from ._zoo_schema import divisible_issue, integer, positive, probability


@register
class RTDETRHybridEncoder(Component):
    """RT-DETR hybrid encoder neck: attention on selected levels, then CSP-based cross-scale fusion."""

    kind = "neck"
    name = "rtdetr_hybrid_encoder"
    tasks = DENSE_TASKS
    template = "rtdetr_hybrid_encoder.py.jinja"
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
    def build(
        cls, params: dict[str, Any], stage_params: list | None, inputs: tuple[Feature, ...], *, task: str
    ) -> Built:
        for position, index in enumerate(params["use_encoder_idx"]):
            if index >= len(inputs):
                raise BuildError(
                    f"/params/use_encoder_idx/{position}",
                    f"level index {index} out of range: the neck gets {len(inputs)} feature maps (0-based)",
                )
        for finer, coarser in zip(inputs, inputs[1:]):
            if coarser.stride != 2 * finer.stride:
                raise BuildError(
                    "",
                    "rtdetr_hybrid_encoder fuses levels whose strides double from one to the next, got strides "
                    f"{[feature.stride for feature in inputs]}",
                )
        hidden = params["hidden_dim"]
        encoder = bool(params["use_encoder_idx"]) and params["num_encoder_layers"] > 0
        kwargs: dict[str, Any] = {"in_channels": [feature.channels for feature in inputs], "hidden_dim": hidden}
        if encoder:
            kwargs.update(
                use_encoder_idx=list(params["use_encoder_idx"]),
                num_encoder_layers=params["num_encoder_layers"],
                num_heads=params["num_attention_heads"],
                dim_feedforward=params["dim_feedforward"],
                dropout=float(params["dropout"]),
                attn_act_layer=ACTIVATIONS[params["attn_act_type"]],
                pe_temperature=float(params["pe_temperature"]),
            )
        kwargs.update(
            expansion=float(params["expansion"]),
            num_blocks=round(3 * params["depth_mult"]),
            act_layer=ACTIVATIONS[params["conv_act_type"]],
        )
        return Built(
            class_name="HybridEncoder",
            kwargs=kwargs,
            outputs=tuple(Feature(hidden, feature.stride) for feature in inputs),
            template_vars={"encoder": encoder},
            blocks=("conv_layer", "rtdetr_csp_rep_layer"),
        )

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
