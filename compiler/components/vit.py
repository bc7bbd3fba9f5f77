"""Vision Transformer backbone family, as NetsPresso Trainer 1.4.1 reads it (``models/backbones/experimental/vit.py``).

Classification only in the peer; it takes no ``stage_params``. The peer reads every key without a default; the
defaults here are those of its ViT-tiny example.

Peer behaviour reproduced here (each one changes the state_dict or the outputs):
- The patch conv has an odd kernel: ``patch_size + 1`` when ``patch_size`` is even, stride ``patch_size`` and
  padding ``kernel // 2``, with a bias (so 224 px with 16 px patches gives 14 x 14 tokens).
- The sinusoidal position table ``patch_embed.pos_embed.pe`` (1, vocab_size, C) is a saved buffer, so it is in
  the state_dict and ``vocab_size`` changes the checkpoint; a sequence longer than ``vocab_size`` fails at the
  first forward, as in the peer.
- ``ffn_dropout_prob`` also drops the embeddings; one dropout (``attention_dropout_prob``) acts on both the
  attention weights and the attention output. The MLP activation is always GELU and LayerNorm eps is 1e-5.
- The backbone returns the class token (or, without one, the mean token) after the final LayerNorm, (B, C).

Deliberate differences (specs the peer mishandles are rejected instead):
- An odd ``attention_channels``: the peer's sinusoidal table cannot be built (a shape error at construction).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .._registry import BuildError, Built, Component, Feature, Issue, register
from ._zoo_schema import boolean, divisible_issue, integer, probability


@register
class ViT(Component):
    """Vision Transformer backbone: patch embedding, sinusoidal positions and a stack of transformer blocks."""

    kind = "backbone"
    name = "vit"
    tasks = ("classification",)
    template = "vit.py.jinja"
    params = {
        "patch_size": integer(16, "Side of the square image patch that becomes one token."),
        "attention_channels": integer(192, "Token width; must be even and divisible by num_attention_heads."),
        "num_blocks": integer(12, "Number of transformer blocks."),
        "num_attention_heads": integer(3, "Number of attention heads per block."),
        "attention_dropout_prob": probability(0.0, "Dropout probability on the attention weights."),
        "ffn_intermediate_channels": integer(768, "Hidden width of each block's feed-forward network."),
        "ffn_dropout_prob": probability(0.1, "Dropout probability in the feed-forward networks and on the embeddings."),
        "use_cls_token": boolean(
            True, "Prepend a learnable class token and classify from it; otherwise average all tokens."
        ),
        "vocab_size": integer(
            1000, "Longest token sequence the positional encoding covers (patches plus the class token)."
        ),
    }

    @classmethod
    def build(
        cls, params: dict[str, Any], stage_params: list | None, inputs: tuple[Feature, ...], *, task: str
    ) -> Built:
        for issue in _issues(params):
            raise BuildError(issue.pointer, issue.message)
        width = params["attention_channels"]
        features = (Feature(width, params["patch_size"]),)  # pooled to (B, C) inside the backbone
        return Built(
            class_name="ViT",
            kwargs={
                "patch_size": params["patch_size"],
                "hidden_size": width,
                "num_blocks": params["num_blocks"],
                "num_heads": params["num_attention_heads"],
                "intermediate_size": params["ffn_intermediate_channels"],
                "attention_dropout_prob": float(params["attention_dropout_prob"]),
                "dropout_prob": float(params["ffn_dropout_prob"]),
                "max_len": params["vocab_size"],
            },
            outputs=features,
            stages=features,
            selected=(0,),
            template_vars={
                "cls_token": bool(params["use_cls_token"]),
                "sequence_reduction": False,
                "attention_bias": False,
            },
            blocks=("conv_layer",),
        )

    @classmethod
    def check(cls, params: dict[str, Any], stage_params: list | None, task: str) -> Iterator[Issue]:
        yield from _issues(cls.resolve_params(params))


def _issues(params: dict[str, Any]) -> Iterator[Issue]:
    width = params["attention_channels"]
    yield from divisible_issue(
        "/params/attention_channels", width, params["num_attention_heads"], "attention_channels", "num_attention_heads"
    )
    if width % 2:
        yield Issue(
            "/params/attention_channels",
            f"attention_channels ({width}) must be even: the sinusoidal position codes pair sines with cosines",
        )
