"""MixTransformer (MiT) backbone family, the SegFormer encoder, as NetsPresso Trainer 1.4.1 builds it
(``models/backbones/experimental/mixtransformer.py``).

Each stage is an overlapping patch embedding (conv with padding ``patch // 2``, then LayerNorm) followed by
transformer blocks with sequence-reduced attention and a Mix-FFN, then a LayerNorm.

Doc vs source: the peer's docs call the stage width ``encoder_chananels`` but its source and example configs read
``attention_chananels`` (sic). The spelling the peer actually reads, ``attention_chananels``, is the one accepted.
The peer reads every key without a default; the defaults here are those of its MiT-b0 example.

Peer behaviour reproduced here (each one changes the state_dict or the outputs):
- A stage with ``sequence_reduction_ratio: 1`` has no ``sr``/``sr_layer_norm`` (full attention); with r > 1 keys
  and values come from an r x r, stride-r conv of the token grid plus a LayerNorm.
- The Mix-FFN's depthwise conv is at ``channel_mlp.dwconv.dwconv``; its width is ``int(width * ratio)``.
- LayerNorm eps is 1e-6 everywhere except the attention's ``sr_layer_norm`` (1e-5).
- Segmentation and detection get every stage's map (there is no ``return_stage_idx``); classification gets the
  last stage averaged over its grid, (B, C).

Deliberate differences (specs the peer mishandles are rejected instead):
- ``pose_estimation``: the peer lists it as supported but then hands the pose head no multi-level features (its
  backbone returns only the pooled vector for that task), so the model fails at its first forward.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .._registry import BuildError, Built, Component, Feature, Issue, register
from ._common import ACTIVATIONS, act_param
from ._zoo_schema import divisible_issue, field, positive, probability, stage_object


@register
class MixTransformer(Component):
    """MixTransformer (SegFormer MiT) backbone: overlapping patch embeddings and efficient self-attention stages."""

    kind = "backbone"
    name = "mixtransformer"
    tasks = ("classification", "segmentation", "detection")
    template = "mixtransformer.py.jinja"
    params = {
        "ffn_intermediate_expansion_ratio": positive(
            4, "Hidden width of each Mix-FFN as a multiple of the stage width."
        ),
        "ffn_act_type": act_param("gelu", "Activation inside each Mix-FFN."),
        "ffn_dropout_prob": probability(0.0, "Dropout probability at the end of each Mix-FFN."),
        "attention_dropout_prob": probability(0.0, "Dropout probability on the attention weights."),
    }
    stage_params = stage_object(
        "One stage: a patch embedding followed by transformer blocks.",
        {
            "num_blocks": field("integer", "Number of transformer blocks in the stage.", minimum=1),
            "sequence_reduction_ratio": field(
                "integer",
                "Keys and values are computed on a grid downsampled by this factor (1 = full attention).",
                minimum=1,
            ),
            "attention_chananels": field(
                "integer",
                "Width of the stage (spelt as the peer spells it); must be divisible by num_attention_heads.",
                minimum=1,
            ),
            "embedding_patch_sizes": field("integer", "Kernel size of the patch-embedding convolution.", minimum=1),
            "embedding_strides": field("integer", "Stride of the patch-embedding convolution.", minimum=1),
            "num_attention_heads": field("integer", "Number of attention heads.", minimum=1),
        },
    )

    @classmethod
    def build(
        cls, params: dict[str, Any], stage_params: list | None, inputs: tuple[Feature, ...], *, task: str
    ) -> Built:
        for issue in _issues(stage_params):
            raise BuildError(issue.pointer, issue.message)
        stages = stage_params or []
        features, stride = [], 1
        for stage in stages:
            stride *= stage["embedding_strides"]
            features.append(Feature(stage["attention_chananels"], stride))
        global_pool = task == "classification"
        selected = [len(stages) - 1] if global_pool else list(range(len(stages)))
        return Built(
            class_name="MixTransformer",
            kwargs={
                "channels": [stage["attention_chananels"] for stage in stages],
                "num_blocks": [stage["num_blocks"] for stage in stages],
                "num_heads": [stage["num_attention_heads"] for stage in stages],
                "patch_sizes": [stage["embedding_patch_sizes"] for stage in stages],
                "strides": [stage["embedding_strides"] for stage in stages],
                "sequence_reduction_ratios": [stage["sequence_reduction_ratio"] for stage in stages],
                "ffn_expansion_ratio": params["ffn_intermediate_expansion_ratio"],
                "act_layer": ACTIVATIONS[params["ffn_act_type"]],
                "attention_dropout_prob": float(params["attention_dropout_prob"]),
                "dropout_prob": float(params["ffn_dropout_prob"]),
            },
            outputs=tuple(features[index] for index in selected),
            stages=tuple(features),
            selected=tuple(selected),
            template_vars={"global_pool": global_pool, "sequence_reduction": True, "attention_bias": False},
        )

    @classmethod
    def check(cls, params: dict[str, Any], stage_params: list | None, task: str) -> Iterator[Issue]:
        yield from _issues(stage_params)


def _issues(stage_params: list | None) -> Iterator[Issue]:
    stages = stage_params or []
    if not stages:
        yield Issue("/stage_params", "mixtransformer needs at least one stage")
    for index, stage in enumerate(stages):
        yield from divisible_issue(
            f"/stage_params/{index}/attention_chananels",
            stage["attention_chananels"],
            stage["num_attention_heads"],
            "attention_chananels",
            "num_attention_heads",
        )
