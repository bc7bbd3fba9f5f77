"""YOLO-Fastest-v2 detection head family, as NetsPresso Trainer 1.4.1 reads it
(``models/heads/detection/experimental/yolo_fastest_head.py``).

Validated only (not compilable yet). Two levels, each with classification/objectness and regression towers of two
5x5 depthwise-separable convs; the towers are built for exactly two levels, and every level must have the width
of the first. The peer has no docs page for it and no default for ``anchors``; the default is its example's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .._registry import Component, Issue, register
from ._common import param

NUM_LEVELS = 2
DEFAULT_ANCHORS = [[12.0, 18.0, 37.0, 49.0, 52.0, 132.0], [115.0, 73.0, 119.0, 199.0, 242.0, 238.0]]


@register
class YOLOFastestHeadV2(Component):
    """YOLO-Fastest-v2 head: anchor-based, two levels of depthwise-separable classification and box towers."""

    kind = "head"
    name = "yolo_fastest_head_v2"
    tasks = ("detection",)
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
