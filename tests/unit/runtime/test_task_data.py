"""Segmentation and detection data: the generated shapes set, PNG masks, YOLO txt and COCO JSON, and their errors."""

import json

import numpy as np
import pytest
import torch

from npc.cli.exits import exit_code_for
from npc.runtime.data import build_data
from npc.runtime.data.shapes import generate_shapes
from npc.runtime.errors import DataError
from npc.spec.run_config import resolve_data


def test_shapes_are_deterministic_in_the_seed():
    a, b = generate_shapes(6, 24, seed=5), generate_shapes(6, 24, seed=5)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.masks, b.masks)
    assert all(np.array_equal(x, y) for x, y in zip(a.boxes, b.boxes))
    other = generate_shapes(6, 24, seed=6)
    assert not np.array_equal(a.images, other.images)


def test_shape_boxes_are_tight_around_their_mask_pixels():
    shapes = generate_shapes(8, 32, seed=0, max_shapes=3)
    for mask, boxes, labels in zip(shapes.masks, shapes.boxes, shapes.labels):
        assert 1 <= len(boxes) <= 3
        for (x1, y1, x2, y2), label in zip(boxes.astype(int), labels):
            inside = mask[y1:y2, x1:x2] == label + 1
            assert inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any()
        assert set(np.unique(mask)) <= {0, *(labels + 1).tolist()}


def _shapes(task, **extra):
    return resolve_data({"format": "shapes", "image_size": 16, "num_train": 6, "num_valid": 4, **extra}, task=task)


def test_builtin_sets_per_task():
    assert resolve_data(None, task="segmentation")["format"] == "shapes"
    seg = build_data(_shapes("segmentation"), task="segmentation")
    image, mask = seg.splits["train"][0]
    assert seg.class_names == ["background", "circle", "square", "triangle"] and seg.num_classes == 4
    assert image.shape == (3, 16, 16) and mask.shape == (16, 16) and mask.dtype == torch.int64
    det = build_data(_shapes("detection"), ("train", "valid", "test"), task="detection")
    images, targets = det.collate([det.splits["valid"][i] for i in range(3)])
    assert images.shape == (3, 3, 16, 16) and len(targets) == 3
    assert det.num_classes == 3 and set(targets[0]) == {"boxes", "labels"}
    assert (targets[0]["boxes"] >= 0).all() and (targets[0]["boxes"] <= 16).all()
    assert not torch.equal(det.splits["valid"][0][0], det.splits["test"][0][0])  # each split its own images


def test_a_format_of_another_task_is_refused():
    with pytest.raises(DataError, match="'digits' is not available for segmentation"):
        build_data(resolve_data({"format": "digits"}), task="segmentation")


# --- local segmentation -------------------------------------------------------------------------------------------


def _write_seg(root, masks, mode="L"):
    from PIL import Image

    (root / "img").mkdir(parents=True)
    (root / "mask").mkdir()
    for i, mask in enumerate(masks):
        Image.new("RGB", (8, 8), (10 * i, 0, 0)).save(root / "img" / f"s{i}.jpg")
        Image.fromarray(np.asarray(mask, dtype=np.uint8), mode).save(root / "mask" / f"s{i}.png")


def _seg_config(root, **extra):
    path = {"root": str(root), "train": {"image": "img", "label": "mask"}, "valid": {"image": "img", "label": "mask"}}
    return resolve_data({"path": path, "image_size": 8, **extra}, task="segmentation")


def test_grey_masks_map_through_id_mapping(tmp_path):
    mask = np.zeros((8, 8))
    mask[:4] = 3
    mask[0, 0] = 255  # noqa: E702
    _write_seg(tmp_path, [mask])
    data = build_data(_seg_config(tmp_path, id_mapping={"0": "sky", "3": "road"}), task="segmentation")
    _, target = data.splits["train"][0]
    assert data.class_names == ["sky", "road"]
    assert target[0, 0] == 255 and target[1, 0] == 1 and target[7, 7] == 0


def test_rgb_masks_map_colours_and_unlisted_colours_are_ignored(tmp_path):
    mask = np.zeros((8, 8, 3))
    mask[:4] = (128, 0, 0)
    mask[7, 7] = (1, 2, 3)  # noqa: E702
    _write_seg(tmp_path, [mask], "RGB")
    config = _seg_config(tmp_path, label_image_mode="RGB", id_mapping={"(0, 0, 0)": "bg", "(128, 0, 0)": "car"})
    _, target = build_data(config, task="segmentation").splits["train"][0]
    assert target[0, 0] == 1 and target[5, 0] == 0 and target[7, 7] == 255


def test_mask_errors_name_the_file(tmp_path):
    mask = np.full((8, 8), 7)
    _write_seg(tmp_path, [mask])
    with pytest.raises(DataError, match=r"s0.png: mask value\(s\) \[7\] are not in id_mapping"):
        build_data(_seg_config(tmp_path, id_mapping=["a", "b"]), task="segmentation")  # masks checked at build
    (tmp_path / "mask" / "s0.png").unlink()
    with pytest.raises(DataError, match=r"s0.jpg: no mask with the same name") as info:
        build_data(_seg_config(tmp_path, id_mapping=["a", "b"]), task="segmentation")
    assert exit_code_for(info.value) == 2
    with pytest.raises(DataError, match="id_mapping: required for segmentation"):
        build_data(_seg_config(tmp_path), task="segmentation")


# --- local detection ---------------------------------------------------------------------------------------------


def _write_det(root, labels: dict[str, str]):
    from PIL import Image

    (root / "img").mkdir(parents=True)
    (root / "lab").mkdir()
    for stem, text in labels.items():
        Image.new("RGB", (20, 10)).save(root / "img" / f"{stem}.png")
        if text is not None:
            (root / "lab" / f"{stem}.txt").write_text(text)


def _det_config(root, **extra):
    path = {"root": str(root), "train": {"image": "img", "label": "lab"}, "valid": {"image": "img", "label": "lab"}}
    return resolve_data({"path": path, "image_size": 10, **extra}, task="detection")


def test_yolo_labels_become_pixel_boxes(tmp_path):
    _write_det(tmp_path, {"a": "1 0.5 0.5 0.4 0.2\n\n0 0.25 0.25 0.5 0.5\n", "b": "", "c": None})
    data = build_data(_det_config(tmp_path, id_mapping=["cat", "dog"]), task="detection")
    _, target = data.splits["train"][0]
    assert torch.allclose(target["boxes"], torch.tensor([[3.0, 4.0, 7.0, 6.0], [0.0, 0.0, 5.0, 5.0]]))
    assert target["labels"].tolist() == [1, 0] and len(data.splits["train"]) == 2  # c has no label file
    assert any("without a .txt label file" in note for note in data.notes)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0 0.5 0.5 0.1\n", "a.txt:1: expected 'class cx cy w h'"),
        ("\nx 0.5 0.5 0.1 0.1\n", "a.txt:2: expected an integer class"),
        ("0 0.5 0.5 0 0.1\n", "a.txt:1: box .* has no area"),
        ("5 0.5 0.5 0.1 0.1\n", "a.txt:1: class 5 is not one of the 2 classes"),
    ],
)
def test_bad_yolo_lines_name_file_and_line(tmp_path, text, message):
    _write_det(tmp_path, {"a": text})
    with pytest.raises(DataError, match=message):
        build_data(_det_config(tmp_path, id_mapping=["cat", "dog"]), task="detection")


def test_coco_json(tmp_path):
    from PIL import Image

    (tmp_path / "img").mkdir()
    Image.new("RGB", (20, 10)).save(tmp_path / "img" / "x.png")
    document = {
        "images": [{"id": 7, "file_name": "x.png", "width": 20, "height": 10}],
        "annotations": [{"id": 1, "image_id": 7, "category_id": 3, "bbox": [2, 1, 10, 4], "iscrowd": 0}],
        "categories": [{"id": 3, "name": "car"}, {"id": 1, "name": "person"}],
    }
    (tmp_path / "train.json").write_text(json.dumps(document))
    path = {"root": str(tmp_path), "train": {"image": "img", "label": "train.json"}}
    data = build_data(
        resolve_data({"format": "coco", "path": path, "image_size": 10}, task="detection"), ("train",), task="detection"
    )
    _, target = data.splits["train"][0]
    assert data.class_names == ["person", "car"] and target["labels"].tolist() == [1]
    assert torch.allclose(target["boxes"], torch.tensor([[1.0, 1.0, 6.0, 5.0]]))
    document["annotations"][0]["category_id"] = 9
    (tmp_path / "train.json").write_text(json.dumps(document))
    with pytest.raises(DataError, match=r"train.json: annotations\[0\]: category_id 9"):
        build_data(resolve_data({"format": "coco", "path": path}, task="detection"), ("train",), task="detection")
