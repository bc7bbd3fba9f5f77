"""EfficientFormer backbone family, as NetsPresso Trainer 1.4.1 builds it
(``models/backbones/experimental/efficientformer.py``).

A two-conv stem (stride 4), then four stages of pooling "4D" meta-blocks with a stride-2 conv embedding between
stages; the last ``vit_num`` blocks of the fourth stage are attention "3D" meta-blocks on tokens. The peer
hard-codes four stages (attention in stage index 3, four normalised outputs for dense tasks), so exactly four are
required. The peer reads every key without a default; the defaults here are those of its EfficientFormer-L1
example.

Peer behaviour reproduced here (each one changes the state_dict or the outputs):
- The stages and the embeddings share one list, ``encoder.blocks`` (stages at 0, 2, 4, 6), and the last stage
  holds a parameter-free flatten layer just before its attention blocks, which shifts their indices.
- Segmentation, detection and pose estimation normalise each stage's output with ``GroupNorm(1, C)``
  (``encoder.norm0/2/4/6``), and the *normalised* map also feeds the next stage; classification has no such
  norms. ``backbone.norm`` (a LayerNorm for the classification tokens) exists for every task.
- The attention has query/key width ``attention_channels`` and value width ``attention_channels x
  attention_value_expansion_ratio``; its bias table is the peer's fixed (heads, 49) parameter with an all-ones
  49x49 index buffer, resized to the token grid (a per-head constant, so it does not change the attention).
- Every conv in the stem, embeddings and pooling MLPs has a bias followed by BatchNorm; layer scales start at 1e-5.
- ``vit_num: 0`` is allowed, as in the peer: the last stage ends on tokens without any attention block.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .._registry import TASKS, BuildError, Built, Component, Feature, Issue, register
from ._common import ACTIVATIONS, act_param
from ._zoo_schema import divisible_issue, field, integer, positive, probability, stage_object

NUM_STAGES = 4
STEM_STRIDE = 4  # two stride-2 convs; every later stage halves the resolution again


@register
class EfficientFormer(Component):
    """EfficientFormer backbone: pooling meta-blocks in four stages, attention blocks at the end of the last."""

    kind = "backbone"
    name = "efficientformer"
    tasks = TASKS
    template = "efficientformer.py.jinja"
    params = {
        "num_attention_heads": integer(8, "Number of heads in the attention blocks."),
        "attention_channels": integer(
            256, "Total query/key width of the attention blocks; must be divisible by num_attention_heads."
        ),
        "attention_dropout_prob": probability(0.0, "Dropout probability on the attention weights."),
        "attention_value_expansion_ratio": integer(
            4, "Value width of the attention blocks as a multiple of attention_channels."
        ),
        "ffn_intermediate_ratio": positive(4, "Hidden width of every MLP as a multiple of the stage width."),
        "ffn_dropout_prob": probability(0.0, "Dropout probability in the MLPs."),
        "ffn_act_type": act_param("gelu", "Activation inside the MLPs."),
        "vit_num": integer(
            1,
            "How many of the last stage's final blocks are attention blocks (0 to its num_blocks).",
            minimum=0,
        ),
    }
    stage_params = stage_object(
        "One stage: meta-blocks of one width (a strided embedding precedes every stage but the first).",
        {
            "num_blocks": field("integer", "Number of meta-blocks in the stage.", minimum=1),
            "channels": field("integer", "Width of the stage.", minimum=1),
        },
    )

    @classmethod
    def build(
        cls, params: dict[str, Any], stage_params: list | None, inputs: tuple[Feature, ...], *, task: str
    ) -> Built:
        for issue in _issues(params, stage_params):
            raise BuildError(issue.pointer, issue.message)
        stages = stage_params or []
        channels = [stage["channels"] for stage in stages]
        features = tuple(Feature(width, STEM_STRIDE * 2**index) for index, width in enumerate(channels))
        dense = task != "classification"
        attention = params["vit_num"] > 0
        kwargs: dict[str, Any] = {
            "channels": channels,
            "num_blocks": [stage["num_blocks"] for stage in stages],
            "vit_num": params["vit_num"],
        }
        if attention:
            kwargs["num_heads"] = params["num_attention_heads"]
            kwargs["attention_channels"] = params["attention_channels"]
            kwargs["value_channels"] = params["attention_channels"] * params["attention_value_expansion_ratio"]
        kwargs["ffn_ratio"] = params["ffn_intermediate_ratio"]
        kwargs["act_layer"] = ACTIVATIONS[params["ffn_act_type"]]
        if attention:
            kwargs["attention_dropout_prob"] = float(params["attention_dropout_prob"])
        kwargs["dropout_prob"] = float(params["ffn_dropout_prob"])
        selected = tuple(range(NUM_STAGES)) if dense else (NUM_STAGES - 1,)
        return Built(
            class_name="EfficientFormer",
            kwargs=kwargs,
            outputs=tuple(features[index] for index in selected),
            stages=features,
            selected=selected,
            template_vars={
                "dense": dense,
                "attention": attention,
                "sequence_reduction": False,
                "attention_bias": True,
            },
            blocks=("conv_layer",),
        )

    @classmethod
    def check(cls, params: dict[str, Any], stage_params: list | None, task: str) -> Iterator[Issue]:
        yield from _issues(cls.resolve_params(params), stage_params)


def _issues(params: dict[str, Any], stage_params: list | None) -> Iterator[Issue]:
    stages = stage_params or []
    if len(stages) != NUM_STAGES:
        yield Issue(
            "/stage_params",
            f"efficientformer has exactly {NUM_STAGES} stages (the peer builds its attention blocks in the "
            f"fourth), got {len(stages)}",
        )
    elif params["vit_num"] > stages[-1]["num_blocks"]:
        yield Issue(
            "/params/vit_num",
            f"vit_num ({params['vit_num']}) exceeds the last stage's num_blocks ({stages[-1]['num_blocks']})",
        )
    yield from divisible_issue(
        "/params/attention_channels",
        params["attention_channels"],
        params["num_attention_heads"],
        "attention_channels",
        "num_attention_heads",
    )
