"""YOLO-Fastest-v2 detection head family, as NetsPresso Trainer 1.4.1 builds it
(``models/heads/detection/experimental/yolo_fastest_head.py``, class ``YOLOFastestHeadV2``).

Two levels, each with its own classification/objectness tower (``cls_head``) and box tower (``reg_head``) of two
5x5 depthwise-separable convs (depthwise conv-BN-ReLU, pointwise conv-BN, no activation after it), then biased
1x1 predictions: ``num_classes`` logits per cell (shared by the cell's anchors), one objectness per anchor and
four box values per anchor. The class and objectness biases start at -log(99) (prior probability 0.01).
The output is ``pred``: per level a (B, A, 4 + 1 + num_classes, H, W) tensor (box, objectness, class logits).

Peer quirks and deliberate differences:
- Only the number of anchors (``len(anchors[0]) // 2``) reaches the head; the anchors themselves are used by
  the loss and the post-processor.
- The towers are sized by the first level's width: every level must have that width. The peer builds other
  widths and fails at the first forward pass; npc rejects them when compiling.
- The towers exist for exactly two levels. The peer also runs on one level (leaving the second tower unused)
  and fails on three; npc requires exactly two incoming levels, matching the two levels of anchors.
- The peer has no docs page for it and no default for ``anchors``; the default is its example's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .._postprocess import settings
from .._registry import NUM_CLASSES, BuildError, Built, Component, Decoder, Feature, Issue, register
from ._common import param

NUM_LEVELS = 2
DEFAULT_ANCHORS = [[12.0, 18.0, 37.0, 49.0, 52.0, 132.0], [115.0, 73.0, 119.0, 199.0, 242.0, 238.0]]


@register
class YOLOFastestHeadV2(Component):
    """YOLO-Fastest-v2 head: anchor-based, two levels of depthwise-separable classification and box towers."""

    kind = "head"
    name = "yolo_fastest_head_v2"
    tasks = ("detection",)
    template = "yolo_fastest_head_v2.py.jinja"
    postprocessor_template = "postprocess_yolo_fastest_head_v2.py.jinja"
    params = {
        "anchors": param(
            "array",
            DEFAULT_ANCHORS,
            "Anchor sizes in pixels for each of the two levels, as a flat list of (width, height) pairs; "
            "every level needs the same number of anchors. The yolofastest_loss anchors should match.",
            items={"type": "array", "minItems": 2, "items": {"type": "number", "exclusiveMinimum": 0}},
            minItems=1,
        ),
    }

    @classmethod
    def build(
        cls, params: dict[str, Any], stage_params: list | None, inputs: tuple[Feature, ...], *, task: str
    ) -> Built:
        anchors = params["anchors"]
        for issue in anchor_issues(anchors, "/params/anchors"):
            raise BuildError(issue.pointer, issue.message)
        if len(inputs) != NUM_LEVELS:
            raise BuildError(
                "", f"yolo_fastest_head_v2 predicts on exactly {NUM_LEVELS} levels, but gets {len(inputs)}"
            )
        if len({feature.channels for feature in inputs}) != 1:
            raise BuildError(
                "",
                "yolo_fastest_head_v2 needs the same channels on both levels (use the lightfpn neck), got "
                f"{[feature.channels for feature in inputs]}",
            )
        return Built(
            class_name="YOLOFastestHeadV2",
            kwargs={
                "in_channels": inputs[0].channels,
                "num_classes": NUM_CLASSES,
                "num_anchors": len(anchors[0]) // 2,
            },
            outputs=(),
            blocks=("conv_layer",),
            output_keys=("pred",),
        )

    @classmethod
    def decoder(cls, params: dict[str, Any], postprocessor_params: dict[str, Any]) -> Decoder:
        """The peer decodes with ``postprocessor.params.anchors``; they default to the head's own, and must have
        the head's shape (anchors per level) when given."""
        head_anchors = cls.resolve_params(params)["anchors"]
        chosen = settings(postprocessor_params, {"anchors": head_anchors, "score_thresh": 0.7})
        if [len(level) for level in chosen["anchors"]] != [len(level) for level in head_anchors]:
            raise BuildError("/params/anchors", f"must give the head's {len(head_anchors[0]) // 2} anchors per level")
        return Decoder("YOLOFastestDecoder", chosen)

    @classmethod
    def check(cls, params: dict[str, Any], stage_params: list | None, task: str) -> Iterator[Issue]:
        yield from anchor_issues(cls.resolve_params(params)["anchors"], "/params/anchors")


def anchor_issues(anchors: list, pointer: str) -> Iterator[Issue]:
    """YOLO-Fastest anchors: two levels of flattened (w, h) pairs, the same number on each level."""
    if len(anchors) != NUM_LEVELS:
        yield Issue(pointer, f"YOLO-Fastest-v2 has exactly {NUM_LEVELS} levels, got anchors for {len(anchors)}")
    for level, sizes in enumerate(anchors):
        if len(sizes) % 2:
            yield Issue(f"{pointer}/{level}", f"has {len(sizes)} numbers: anchors are (width, height) pairs")
        elif level > 0 and len(sizes) != len(anchors[0]) and len(anchors[0]) % 2 == 0:
            yield Issue(
                f"{pointer}/{level}",
                f"has {len(sizes) // 2} anchors but level 0 has {len(anchors[0]) // 2}: every level needs the same",
            )
