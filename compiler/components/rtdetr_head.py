"""RT-DETR detection head family (its transformer decoder), as NetsPresso Trainer 1.4.1 reads it
(``models/heads/detection/experimental/rtdetr_head.py``).

Projects the three incoming levels, selects the top ``num_queries`` encoder proposals and refines them through
deformable-attention decoder layers, with denoising queries in training. Doc vs source: ``eval_spatial_size`` is
read by the source and set by every example but missing from the docs (accepted); the decoder applies
``act_type`` as ``torch.nn.functional.<act_type>``, so only the activations that exist there as plain functions
are accepted (``hard_swish``, ``swish`` and ``prelu`` would fail in the peer). The peer reads every key without a
default; the defaults follow its docs and RT-DETR-R50 example.

Peer behaviour reproduced here:
- The output is a dict with ``pred`` (B, num_queries, 4 + num_classes: boxes (cx, cy, w, h) in [0, 1], then
  logits), and ``aux_pred``, ``dn_aux_pred``, ``dn_meta``, which are None in eval mode. In training,
  ``aux_pred`` lists the earlier layers' and the encoder's predictions when ``use_aux_loss`` is set.
- ``position_embed_type`` is checked but changes nothing: the query positions always come from an MLP.
- The multi-scale deformable attention is plain torch (``grid_sample``), as in the peer.
- Denoising queries need the ground truth, passed before each training forward with
  ``model.head.set_training_targets({"img_size": ..., "gt": [{"boxes", "labels"}, ...]})`` as the peer's
  trainer does; the box noise scale is fixed at 1.0 as in the peer. ``denoising_class_embed`` exists only when
  ``num_denoising > 0``.
- Levels beyond the three incoming ones (``num_levels > 3``) come from stride-2 3x3 conv projections of the
  last incoming map, then of each other.

Deliberate differences:
- With ``eval_spatial_size`` the anchors are computed once from the real strides of the incoming levels (the peer
  hard-codes 8, 16, 32: the same anchors for those strides, while for others the peer's forward fails) and kept
  as non-persistent buffers (no state_dict keys, like the peer's plain attributes), so they follow ``.to()``.
- A training forward without targets skips denoising instead of failing the peer's assertion.
- The head takes exactly three incoming levels (the peer asserts it at build time); other counts are build
  errors.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .._postprocess import settings
from .._registry import NUM_CLASSES, BuildError, Built, Component, Decoder, Feature, Issue, register
from ._common import ACTIVATIONS, param
from ._zoo_schema import boolean, choice, divisible_issue, integer, positive, probability

# ACTIVATIONS entries that are also plain functions of torch.nn.functional with the same name.
FUNCTIONAL_ACTIVATIONS = ["relu", "relu6", "leaky_relu", "gelu", "silu"]
INCOMING_LEVELS = 3  # the peer hard-codes three feature strides (8, 16, 32)


@register
class RTDETRHead(Component):
    """RT-DETR head: query selection and a deformable-attention transformer decoder with denoising training."""

    kind = "head"
    name = "rtdetr_head"
    tasks = ("detection",)
    template = "rtdetr_head.py.jinja"
    postprocessor_template = "postprocess_rtdetr_head.py.jinja"
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
    def build(
        cls, params: dict[str, Any], stage_params: list | None, inputs: tuple[Feature, ...], *, task: str
    ) -> Built:
        if len(inputs) != INCOMING_LEVELS:
            raise BuildError(
                "", f"rtdetr_head takes exactly {INCOMING_LEVELS} feature maps (as the peer), got {len(inputs)}"
            )
        num_levels = params["num_levels"]
        denoising = params["num_denoising"] > 0
        eval_size = params["eval_spatial_size"]
        kwargs: dict[str, Any] = {
            "in_channels": [feature.channels for feature in inputs],
            "num_classes": NUM_CLASSES,
            "hidden_dim": params["hidden_dim"],
            "num_heads": params["num_attention_heads"],
            "num_levels": num_levels,
            "num_queries": params["num_queries"],
            "num_decoder_layers": params["num_decoder_layers"],
            "num_points": params["num_decoder_points"],
            "dim_feedforward": params["dim_feedforward"],
            "dropout": float(params["dropout"]),
            "act_layer": ACTIVATIONS[params["act_type"]],
            "eps": float(params["eps"]),
        }
        if denoising:
            kwargs.update(num_denoising=params["num_denoising"], label_noise_ratio=float(params["label_noise_ratio"]))
        if eval_size:
            strides = [feature.stride for feature in inputs]
            strides += [strides[-1] * 2 ** (extra + 1) for extra in range(num_levels - len(inputs))]
            kwargs.update(strides=strides, eval_spatial_size=list(eval_size))
        return Built(
            class_name="RTDETRHead",
            kwargs=kwargs,
            outputs=(),
            template_vars={
                "denoising": denoising,
                "aux_loss": bool(params["use_aux_loss"]),
                "extra_levels": num_levels > len(inputs),
                "fixed_anchors": bool(eval_size),
            },
            output_keys=("pred", "aux_pred", "dn_aux_pred", "dn_meta"),
        )

    @classmethod
    def decoder(cls, params: dict[str, Any], postprocessor_params: dict[str, Any]) -> Decoder:
        # The peer's defaults (postprocessors/detection.py, rtdetr_decode); its queries need no NMS.
        kwargs = settings(postprocessor_params, {"num_top_queries": 300, "score_thresh": 0.0})
        return Decoder("RTDETRDecoder", kwargs, nms=False)

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
