"""What predict draws: boxes in the class's colour where the box is, masks blended at the documented opacity,
keypoints as dots, each written as a PNG the size of the image."""

import numpy as np
from PIL import Image

from npc.runtime.tools.drawing import MASK_OPACITY, colour_for, draw_boxes, draw_keypoints, draw_mask


def _grey(path, size=(64, 48)):
    Image.new("RGB", size, (100, 100, 100)).save(path)
    return path


def test_a_box_is_drawn_in_its_class_colour_on_its_edges_only(tmp_path):
    image = _grey(tmp_path / "in.png")
    draw_boxes(image, [{"index": 2, "label": "square", "score": 0.9, "box": [10, 20, 40, 40]}], tmp_path / "out.png")
    drawn = np.asarray(Image.open(tmp_path / "out.png"))
    assert drawn.shape == (48, 64, 3)
    assert tuple(drawn[30, 10]) == colour_for(2) and tuple(drawn[40, 25]) == colour_for(2)  # left and bottom edges
    assert tuple(drawn[30, 25]) == (100, 100, 100)  # inside the box: the image
    assert tuple(drawn[5, 60]) == (100, 100, 100)  # far away: the image


def test_a_mask_is_blended_over_the_image(tmp_path):
    image = _grey(tmp_path / "in.png", (4, 2))
    mask = np.array([[0, 0, 1, 1], [0, 0, 1, 1]])
    draw_mask(image, mask, tmp_path / "out.png")
    drawn = np.asarray(Image.open(tmp_path / "out.png")).astype(float)
    for (row, col), index in (((0, 0), 0), ((1, 3), 1)):
        expected = (1 - MASK_OPACITY) * 100 + MASK_OPACITY * np.array(colour_for(index))
        assert np.abs(drawn[row, col] - expected).max() <= 0.5


def test_keypoints_are_dots_in_their_colour(tmp_path):
    image = _grey(tmp_path / "in.png")
    draw_keypoints(image, [{"index": 0, "x": 30, "y": 20}, {"index": 3, "x": 50, "y": 40}], tmp_path / "out.png")
    drawn = np.asarray(Image.open(tmp_path / "out.png"))
    assert tuple(drawn[20, 30]) == colour_for(0) and tuple(drawn[40, 50]) == colour_for(3)


def test_neighbouring_classes_get_distinct_colours():
    colours = [colour_for(i) for i in range(8)]
    assert len(set(colours)) == 8
