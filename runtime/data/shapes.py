"""The built-in ``shapes`` set: circles, squares and triangles on noisy backgrounds, generated from a seed.

Each image holds 1..``max_shapes`` non-overlapping shapes of random size and bright random colour on a dark,
noisy background; the colour says nothing about the class, only the outline does. Masks (``0`` background,
``1 + class`` inside a shape) and boxes (``x1, y1, x2, y2`` in pixel-edge coordinates, tight around the mask) are
exact. The same (count, size, seed, max_shapes) always gives the same arrays: one ``numpy.random.RandomState``
draws everything in a fixed order. Needs numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SHAPE_NAMES", "ShapeSet", "generate_shapes"]

SHAPE_NAMES = ("circle", "square", "triangle")
MIN_RADIUS, MAX_RADIUS = 0.1, 0.2  # half the shape's side, as a fraction of the image side
NOISE_STD = 12.0  # grey levels of Gaussian noise over the whole image
PLACEMENT_TRIES = 30  # random positions tried per shape before giving up on it (the image keeps its others)


@dataclass(frozen=True)
class ShapeSet:
    images: np.ndarray  # (N, S, S, 3) uint8
    masks: np.ndarray  # (N, S, S) uint8: 0 background, 1 + class index
    boxes: list[np.ndarray]  # per image (K, 4) float32, x1 y1 x2 y2
    labels: list[np.ndarray]  # per image (K,) int64 class indices into SHAPE_NAMES


def generate_shapes(count: int, image_size: int, seed: int, max_shapes: int = 3) -> ShapeSet:
    """``count`` images of ``image_size`` pixels square; deterministic in all four arguments."""
    rng = np.random.RandomState(seed)
    ys, xs = np.mgrid[0:image_size, 0:image_size].astype(np.float32) + 0.5  # pixel centres
    images = np.empty((count, image_size, image_size, 3), dtype=np.uint8)
    masks = np.zeros((count, image_size, image_size), dtype=np.uint8)
    all_boxes, all_labels = [], []
    for index in range(count):
        canvas = np.broadcast_to(rng.uniform(0, 90, size=3), (image_size, image_size, 3)).copy()
        wanted = rng.randint(1, max_shapes + 1)
        boxes, labels = [], []
        for _ in range(wanted):
            kind = rng.randint(len(SHAPE_NAMES))
            radius = rng.uniform(MIN_RADIUS, MAX_RADIUS) * image_size
            colour = rng.uniform(130, 255, size=3)
            inside = _place(rng, kind, radius, xs, ys, masks[index] > 0, image_size)
            if inside is None:
                continue
            canvas[inside] = colour
            masks[index][inside] = kind + 1
            rows, columns = np.nonzero(inside)
            boxes.append([columns.min(), rows.min(), columns.max() + 1, rows.max() + 1])
            labels.append(kind)
        canvas += rng.normal(0, NOISE_STD, size=canvas.shape)
        images[index] = np.clip(canvas, 0, 255).astype(np.uint8)
        all_boxes.append(np.asarray(boxes, dtype=np.float32).reshape(-1, 4))
        all_labels.append(np.asarray(labels, dtype=np.int64))
    return ShapeSet(images, masks, all_boxes, all_labels)


def _place(rng, kind, radius, xs, ys, taken, size) -> np.ndarray | None:
    """The pixels of one shape at a random position that touches no earlier shape (with a 1-pixel gap)."""
    for _ in range(PLACEMENT_TRIES):
        cx, cy = rng.uniform(radius, size - radius, size=2)
        inside = _outline(kind, cx, cy, radius, xs, ys)
        if not inside.any():
            continue
        grown = _outline(kind, cx, cy, radius + 1.5, xs, ys)
        if not (grown & taken).any():
            return inside
    return None


def _outline(kind: int, cx: float, cy: float, radius: float, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    if kind == 0:  # circle
        return (xs - cx) ** 2 + (ys - cy) ** 2 <= radius**2
    if kind == 1:  # axis-aligned square
        return (np.abs(xs - cx) <= radius) & (np.abs(ys - cy) <= radius)
    # upright isosceles triangle: apex at the top centre, base along the bottom of the square
    depth = ys - (cy - radius)  # 0 at the apex, 2 * radius at the base
    return (depth >= 0) & (depth <= 2 * radius) & (np.abs(xs - cx) <= depth / 2)
