"""bench/_train_e2e_data.py writes NetsPresso Trainer's local layouts (what its samplers read: integer classes in
``image_id,class`` CSVs, YOLO txt labels beside same-stem images, ``L`` masks) and six files npc reads as they are.
Needs neither the peer nor ``../shared``."""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
import json
import sys

import numpy as np
import pytest
from PIL import Image

from tests.helpers import REPO


def _module():
    path = REPO / "bench" / "_train_e2e_data.py"
    spec = importlib.util.spec_from_file_location("_train_e2e_data", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


data = _module()


def test_digits_are_the_peers_csv_layout(tmp_path):
    counts = data.write_digits(tmp_path, size=16, train=12, valid=5)
    assert counts == {"train": 12, "valid": 5}
    for split, count in counts.items():
        with open(tmp_path / "labels" / f"{split}.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert len(rows) == count and set(rows[0]) == {"image_id", "class"}
        assert all(0 <= int(row["class"]) < 10 for row in rows)  # the peer reads int(row['class'])
        image = Image.open(tmp_path / "images" / split / rows[0]["image_id"])
        assert image.size == (16, 16) and image.mode == "RGB"
    assert json.loads((tmp_path / "id_mapping.json").read_text()) == [str(i) for i in range(10)]


def test_shapes_detection_are_yolo_txt_beside_each_image(tmp_path):
    data.write_shapes_detection(tmp_path, size=32, train=4, valid=2)
    for split, count in (("train", 4), ("valid", 2)):
        images = sorted((tmp_path / "images" / split).glob("*.png"))
        assert len(images) == count
        for image in images:
            lines = (tmp_path / "labels" / split / f"{image.stem}.txt").read_text().split("\n")
            boxes = np.array([[float(v) for v in line.split()] for line in lines if line], dtype=np.float64)
            assert boxes.shape[1] == 5 and set(boxes[:, 0]) <= {0.0, 1.0, 2.0}
            assert (boxes[:, 1:] > 0).all() and (boxes[:, 1:] <= 1).all()
    assert json.loads((tmp_path / "id_mapping.json").read_text()) == ["circle", "square", "triangle"]


def test_shapes_segmentation_masks_are_class_indices(tmp_path):
    data.write_shapes_segmentation(tmp_path, size=32, train=3, valid=2)
    mask = Image.open(tmp_path / "labels" / "train" / "000000.png")
    assert mask.mode == "L" and mask.size == (32, 32)
    assert set(np.unique(np.asarray(mask))) <= {0, 1, 2, 3} and np.asarray(mask).max() > 0


def test_stick_figures_are_the_peers_keypoint_txt_with_swap_pairs(tmp_path):
    data.write_stick_figures(tmp_path, size=32, train=3, valid=2)
    values = [float(v) for v in (tmp_path / "labels" / "valid" / "000001.txt").read_text().split()]
    assert len(values) == 7 * 3 + 4  # x y visible per keypoint, then the person's box
    keypoints, box = np.array(values[:21]).reshape(7, 3), values[21:]
    assert (keypoints[:, 2] == 1).all() and box[0] < box[2] and box[1] < box[3]
    assert (keypoints[:, :2] >= box[:2]).all() and (keypoints[:, :2] <= box[2:]).all()
    mapping = json.loads((tmp_path / "id_mapping.json").read_text())
    assert {"name": "left_hand", "swap": "right_hand"} in mapping and len(mapping) == 7


@pytest.mark.parametrize("task", ["classification", "detection", "segmentation", "pose_estimation"])
def test_npc_reads_the_six_files_and_the_data(tmp_path, task):
    try:  # the restructured runtime, or the flat one
        from npc.runtime.data import build_data
        from npc.spec.run_config import load_run_config
    except ImportError:
        from npc.runtime._config import load_run_config
        from npc.runtime._data import build_data

    recipe = dataclasses.replace(data.RECIPES[task], size=32, train=8, valid=4)
    counts = data.write_dataset(recipe, tmp_path / "data")
    files = data.write_files(recipe, tmp_path / "files", tmp_path / "data", tmp_path / "out", epochs=2, workers=0)
    config = load_run_config(
        files["model"],
        **{f"{name}_path": files[name] for name in ("data", "augmentation", "training", "environment", "logging")},
    )
    assert config.training["epochs"] == 2 and config.spec.task == task
    bundle = build_data(config.data, ("train", "valid"), task=task)
    assert {split: len(bundle.splits[split]) for split in counts} == counts
