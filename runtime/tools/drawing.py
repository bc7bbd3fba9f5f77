"""What ``npc predict`` draws on an image, written as PNG atomically: detection boxes with label and score, a
segmentation mask blended over the image, pose keypoints as numbered dots. One colour per class (or keypoint)
index, the same in every drawing, so a class keeps its colour across images."""

from __future__ import annotations

import colorsys
from pathlib import Path
from typing import Any

import numpy as np

from ..checkpoint import atomic_write
from ..data import open_image

__all__ = ["colour_for", "draw_boxes", "draw_keypoints", "draw_mask"]

MASK_OPACITY = 0.5  # of the class colour over the image


def colour_for(index: int) -> tuple[int, int, int]:
    """A bright RGB colour per index; steps of 0.13 around the hue circle keep neighbouring indices apart."""
    hue = (index * 0.13) % 1.0
    return tuple(int(255 * c) for c in colorsys.hsv_to_rgb(hue, 0.9, 1.0))


def draw_boxes(image: str | Path, detections: list[dict[str, Any]], target: str | Path) -> None:
    """``detections``: ``{index, label, score, box: [x1, y1, x2, y2]}`` in the image's pixels."""
    from PIL import ImageDraw

    picture = open_image(image).convert("RGB")
    pen = ImageDraw.Draw(picture)
    width = max(1, round(min(picture.size) / 200))
    for found in detections:
        colour = colour_for(found["index"])
        x1, y1, x2, y2 = found["box"]
        pen.rectangle([x1, y1, x2, y2], outline=colour, width=width)
        caption = f"{found['label']} {found['score']:.2f}"
        left, top, right, bottom = pen.textbbox((x1, y1), caption)
        lift = bottom - top + 2  # the caption sits on the box's top edge, inside the image
        y = y1 - lift if y1 - lift >= 0 else y1
        pen.rectangle([x1, y, x1 + right - left + 4, y + lift], fill=colour)
        pen.text((x1 + 2, y + 1), caption, fill=(0, 0, 0))
    atomic_write(target, lambda tmp: picture.save(tmp, format="PNG"))


def draw_mask(image: str | Path, mask: np.ndarray, target: str | Path) -> None:
    """``mask``: (H, W) class indices at the image's size, blended over it in each class's colour."""
    from PIL import Image

    picture = np.asarray(open_image(image).convert("RGB"), dtype=np.float32)
    palette = np.array([colour_for(i) for i in range(int(mask.max()) + 1)], dtype=np.float32)
    blended = (1 - MASK_OPACITY) * picture + MASK_OPACITY * palette[mask]
    drawing = Image.fromarray(blended.round().astype(np.uint8))
    atomic_write(target, lambda tmp: drawing.save(tmp, format="PNG"))


def draw_keypoints(image: str | Path, keypoints: list[dict[str, Any]], target: str | Path) -> None:
    """``keypoints``: ``{index, x, y}`` in the image's pixels, drawn as numbered dots."""
    from PIL import ImageDraw

    picture = open_image(image).convert("RGB")
    pen = ImageDraw.Draw(picture)
    radius = max(2.0, min(picture.size) / 80)
    for point in keypoints:
        colour = colour_for(point["index"])
        x, y = point["x"], point["y"]
        pen.ellipse([x - radius, y - radius, x + radius, y + radius], fill=colour, outline=(0, 0, 0))
        pen.text((x + radius + 1, y - radius), str(point["index"]), fill=colour)
    atomic_write(target, lambda tmp: picture.save(tmp, format="PNG"))
