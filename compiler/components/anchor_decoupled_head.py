"""AnchorDecoupledHead detection head (RetinaNet's), as NetsPresso Trainer 1.4.1 builds it
(``models/heads/detection/experimental/anchor_decoupled_head.py``, after torchvision's RetinaNet head).

Peer behaviour reproduced here:
- One classification tower and one regression tower (``num_layers`` conv-norm-ReLU 3x3 convs each, no bias) are
  shared by all levels; the towers keep the input width, so every incoming level must have the same channels.
- Anchors are spaced by ``512 // feature size`` (the peer hard-codes a 512x512 image size), not by the real
  stride; the peer also caches them after the first call, the compiled module recomputes them each call (same
  values for the same input size).
- The output is ``anchors`` (all levels concatenated, (sum H*W*A, 4)), and per level ``cls_logits``
  (B, H*W*A, num_classes) and ``bbox_regression`` (B, H*W*A, 4).

Post-processing (``AnchorDecoupledDecoder``): per level, the ``topk_candidates`` best (anchor, class) sigmoid
scores strictly above ``score_thresh``, decoded with torchvision's BoxCoder rule (weights 1, log-scale clamped at
log(1000/16)) and clipped to the input size; the boxes live in the anchors' 512x512 frame, as in the peer.

Deliberate differences: the peer sizes its prediction convs by the first level's anchor count and only fails
later (in the loss) when levels differ, or at the first forward when the level counts differ; both are rejected
here when the model is built.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .._postprocess import settings
from .._registry import NUM_CLASSES, BuildError, Built, Component, Decoder, Feature, Issue, register
from ._common import NORMALIZATIONS, norm_param, param


@register
class AnchorDecoupledHead(Component):
    """RetinaNet-style anchor-based detection head with decoupled classification and regression towers."""

    kind = "head"
    name = "anchor_decoupled_head"
    tasks = ("detection",)
    template = "anchor_decoupled_head.py.jinja"
    postprocessor_template = "postprocess_anchor_decoupled_head.py.jinja"
    params = {
        "anchor_sizes": param(
            "array",
            [[32], [64], [128], [256]],
            "Anchor sizes (pixels) per input level, one "
            "list per level; every level must list the same number of sizes.",
            items={"type": "array", "items": {"type": "number", "exclusiveMinimum": 0}, "minItems": 1},
            minItems=1,
        ),
        "aspect_ratios": param(
            "array",
            [0.5, 1.0, 2.0],
            "Anchor aspect ratios (height / width), used at every size of every level.",
            items={"type": "number", "exclusiveMinimum": 0},
            minItems=1,
        ),
        "num_layers": param("integer", 1, "3x3 conv-norm-ReLU layers in each tower (4 in RetinaNet).", minimum=0),
        "norm_type": norm_param("batch_norm", "Normalisation in the towers. Null means batch_norm.", nullable=True),
    }

    @classmethod
    def build(
        cls, params: dict[str, Any], stage_params: list | None, inputs: tuple[Feature, ...], *, task: str
    ) -> Built:
        for issue in _issues(params):
            raise BuildError(issue.pointer, issue.message)
        channels = {feature.channels for feature in inputs}
        if len(channels) != 1:
            raise BuildError(
                "",
                "anchor_decoupled_head needs the same channels on every incoming level, got "
                f"{[feature.channels for feature in inputs]}",
            )
        if len(params["anchor_sizes"]) != len(inputs):
            raise BuildError(
                "/params/anchor_sizes",
                f"one list of sizes per incoming level: got "
                f"{len(params['anchor_sizes'])} lists for {len(inputs)} levels",
            )
        return Built(
            class_name="AnchorDecoupledHead",
            kwargs={
                "in_channels": inputs[0].channels,
                "num_classes": NUM_CLASSES,
                "anchor_sizes": [list(sizes) for sizes in params["anchor_sizes"]],
                "aspect_ratios": list(params["aspect_ratios"]),
                "num_layers": params["num_layers"],
                "norm_layer": NORMALIZATIONS[params["norm_type"]],
            },
            outputs=(),
            blocks=("conv_layer",),
            output_keys=("anchors", "cls_logits", "bbox_regression"),
        )

    @classmethod
    def decoder(cls, params: dict[str, Any], postprocessor_params: dict[str, Any]) -> Decoder:
        # The peer's defaults for this head (postprocessors/detection.py, anchor_decoupled_head_decode).
        defaults = {"score_thresh": 0.05, "topk_candidates": 1000}
        return Decoder("AnchorDecoupledDecoder", settings(postprocessor_params, defaults))

    @classmethod
    def check(cls, params: dict[str, Any], stage_params: list | None, task: str) -> Iterator[Issue]:
        yield from _issues(cls.resolve_params(params))


def _issues(params: dict[str, Any]) -> Iterator[Issue]:
    sizes = params.get("anchor_sizes") or []
    for level, level_sizes in enumerate(sizes[1:], start=1):
        if len(level_sizes) != len(sizes[0]):
            yield Issue(
                f"/params/anchor_sizes/{level}",
                f"level {level} lists {len(level_sizes)} sizes, level 0 "
                f"lists {len(sizes[0])}: every level needs the same number of anchors",
            )
