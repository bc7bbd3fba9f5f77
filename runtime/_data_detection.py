"""Detection data: the built-in ``shapes`` set, NetsPresso's local layout (YOLO txt labels) and COCO JSON.

A sample is ``(image (3, S, S) float, {"boxes": (K, 4) float, "labels": (K,) int64})`` with boxes as
``x1, y1, x2, y2`` in input pixels (after the resize to ``image_size`` square); :func:`collate` stacks the images
and keeps the targets as a list. Label files are parsed when the data is built, so a bad line is reported (file and
line) before training starts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ._data import IMAGE_SUFFIXES, DataBundle, Preprocess, _folder, _holdout, _root, _split_paths
from ._data_segmentation import SHAPES_MEAN, SHAPES_STD, shape_split_seed
from ._errors import EXIT_USAGE, DataError
from ._shapes import SHAPE_NAMES, generate_shapes

__all__ = ["build_detection", "collate"]

Target = dict[str, torch.Tensor]


def collate(batch: list[tuple[torch.Tensor, Target]]) -> tuple[torch.Tensor, list[Target]]:
    images, targets = zip(*batch, strict=True)
    return torch.stack(images), list(targets)


def build_detection(config: dict[str, Any], splits: Sequence[str]) -> DataBundle:
    if config["format"] == "shapes":
        return _shapes(config, splits)
    return _files(config, splits)


# --- shapes ------------------------------------------------------------------------------------------------------


class BoxTensors(Dataset):
    """Images already in memory, (K, 4) pixel boxes and (K,) labels per image."""

    def __init__(self, images: torch.Tensor, boxes: list[np.ndarray], labels: list[np.ndarray]) -> None:
        self.images, self.boxes, self.labels = images, boxes, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Target]:
        target = {"boxes": torch.from_numpy(self.boxes[index]), "labels": torch.from_numpy(self.labels[index])}
        return self.images[index], target


def _shapes(config: dict[str, Any], splits: Sequence[str]) -> DataBundle:
    size = int(config["image_size"])
    preprocess = Preprocess("rgb", size, SHAPES_MEAN, SHAPES_STD)
    out: dict[str, Dataset] = {}
    for split in splits:
        count = int(config["num_train"] if split == "train" else config["num_valid"])
        shapes = generate_shapes(count, size, shape_split_seed(int(config["seed"]), split), int(config["max_shapes"]))
        images = preprocess.normalise(torch.from_numpy(shapes.images).permute(0, 3, 1, 2).float() / 255.0)
        out[split] = BoxTensors(images, shapes.boxes, shapes.labels)
    sizes = ", ".join(f"{k} {len(v)}" for k, v in out.items())
    description = f"shapes (generated, {size}²; {sizes})"
    return DataBundle(out, 3, list(SHAPE_NAMES), preprocess, True, description, [], "detection", collate)


# --- files ---------------------------------------------------------------------------------------------------------


class BoxFiles(Dataset):
    """Image files decoded lazily, with boxes stored normalised to [0, 1] and scaled to the input size here."""

    def __init__(self, items: list[tuple[Path, np.ndarray, np.ndarray]], preprocess: Preprocess) -> None:
        self.items, self.preprocess = items, preprocess

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Target]:
        path, boxes, labels = self.items[index]
        scaled = torch.from_numpy(boxes * self.preprocess.image_size).float()
        return self.preprocess.image(path), {"boxes": scaled, "labels": torch.from_numpy(labels)}


def _files(config: dict[str, Any], splits: Sequence[str]) -> DataBundle:
    root = _root(config)
    coco = config["format"] == "coco"
    names = _names(config.get("id_mapping"))
    per_split: dict[str, list[tuple[Path, np.ndarray, np.ndarray]]] = {}
    notes: list[str] = []
    for split in dict.fromkeys([*splits, "train"] if "valid" in splits else splits):
        image_dir, label = _split_paths(config, split)
        if image_dir is None and label is None and split == "valid":
            continue
        if image_dir is None or label is None:
            missing = "image" if image_dir is None else "label"
            what = "a COCO JSON file" if coco else "a folder of YOLO .txt files"
            raise DataError(f"data.path.{split}.{missing}: required ({'images' if missing == 'image' else what})", 2)
        images = _folder(root, image_dir, f"data.path.{split}.image")
        if coco:
            items, coco_names = _read_coco(root / label, images)
            if names is None:
                names = coco_names
        else:
            items, skipped = _read_yolo(images, _folder(root, label, f"data.path.{split}.label"))
            if skipped:
                notes.append(f"{split}: {skipped} image(s) without a .txt label file are left out (as in NetsPresso)")
        if not items:
            raise DataError(f"{images}: the {split} split has no labelled images")
        per_split[split] = items
    if names is None:  # YOLO labels without id_mapping: classes 0..max
        top = max(
            (int(labels.max()) for items in per_split.values() for _, _, labels in items if len(labels)), default=0
        )
        names = [str(i) for i in range(top + 1)]
    for items in per_split.values():
        for path, _, labels in items:
            if len(labels) and int(labels.max()) >= len(names):
                raise DataError(f"{path}: class {int(labels.max())} is not one of the {len(names)} classes")
    preprocess = Preprocess("rgb", int(config["image_size"]), tuple(config["mean"]), tuple(config["std"]))
    datasets: dict[str, Dataset] = {split: BoxFiles(items, preprocess) for split, items in per_split.items()}
    if "valid" in splits and "valid" not in datasets:
        datasets["train"], datasets["valid"] = _holdout(datasets["train"], notes, "data.path.train")
    datasets = {split: datasets[split] for split in splits}
    sizes = ", ".join(f"{k} {len(v)}" for k, v in datasets.items())
    description = f"{config.get('name') or config['format']} ({config['format']}, {len(names)} classes; {sizes})"
    return DataBundle(datasets, len(names), names, preprocess, False, description, notes, "detection", collate)


def _names(mapping: Any) -> list[str] | None:
    if mapping is None:
        return None
    if isinstance(mapping, dict):
        return [str(v) for v in mapping.values()]
    return [str(v) for v in mapping]


def _read_yolo(image_dir: Path, label_dir: Path) -> tuple[list[tuple[Path, np.ndarray, np.ndarray]], int]:
    """YOLO labels: one ``<stem>.txt`` per image, lines ``class cx cy w h`` normalised to [0, 1]."""
    items, skipped = [], 0
    for image in sorted(image_dir.iterdir()):
        if not (image.is_file() and image.suffix.lower() in IMAGE_SUFFIXES):
            continue
        label = label_dir / f"{image.stem}.txt"
        if not label.is_file():
            skipped += 1
            continue
        boxes, labels = _parse_yolo(label)
        items.append((image, boxes, labels))
    return items, skipped


def _parse_yolo(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read label file ({exc})") from None
    boxes, labels = [], []
    for line_no, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path}:{line_no}"
        if len(fields) != 5:
            raise DataError(f"{where}: expected 'class cx cy w h' (5 numbers), got {len(fields)} field(s)")
        try:
            label = int(fields[0])
            cx, cy, w, h = (float(v) for v in fields[1:])
        except ValueError:
            raise DataError(f"{where}: expected an integer class and four numbers, got {line.strip()!r}") from None
        if label < 0:
            raise DataError(f"{where}: class {label} is negative")
        if not (w > 0 and h > 0) or not all(-0.01 <= v <= 1.01 for v in (cx, cy, w, h)):
            raise DataError(f"{where}: box {cx} {cy} {w} {h} is not normalised (centre and size in [0, 1], size > 0)")
        boxes.append([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
        labels.append(label)
    array = np.clip(np.asarray(boxes, dtype=np.float32).reshape(-1, 4), 0.0, 1.0)
    return array, np.asarray(labels, dtype=np.int64)


def _read_coco(path: Path, image_dir: Path) -> tuple[list[tuple[Path, np.ndarray, np.ndarray]], list[str]]:
    """COCO instances JSON: ``images`` (file_name, width, height), ``annotations`` (bbox x, y, w, h in pixels),
    ``categories`` (class index = order of category ids). Crowd annotations are skipped."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataError(f"{path}: cannot read COCO file ({exc.strerror or exc})", EXIT_USAGE) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a JSON file ({exc})") from None
    if not isinstance(document, dict) or not all(isinstance(document.get(k), list) for k in ("images", "categories")):
        raise DataError(f"{path}: expected a COCO object with 'images', 'annotations' and 'categories' lists")
    try:
        categories = sorted(document["categories"], key=lambda c: c["id"])
        index = {c["id"]: i for i, c in enumerate(categories)}
        names = [str(c.get("name", c["id"])) for c in categories]
        images = {
            im["id"]: (image_dir / im["file_name"], float(im["width"]), float(im["height"]))
            for im in document["images"]
        }
        per_image: dict[Any, list[tuple[list[float], int]]] = {key: [] for key in images}
        for n, ann in enumerate(document.get("annotations") or []):
            if ann.get("iscrowd"):
                continue
            where = f"{path}: annotations[{n}]"
            if ann["image_id"] not in images:
                raise DataError(f"{where}: image_id {ann['image_id']} is not in 'images'")
            if ann["category_id"] not in index:
                raise DataError(f"{where}: category_id {ann['category_id']} is not in 'categories'")
            x, y, w, h = (float(v) for v in ann["bbox"])
            _, width, height = images[ann["image_id"]]
            if w <= 0 or h <= 0:
                continue  # degenerate boxes carry nothing to learn (COCO has a few)
            per_image[ann["image_id"]].append(
                ([x / width, y / height, (x + w) / width, (y + h) / height], index[ann["category_id"]])
            )
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{path}: malformed COCO entry ({type(exc).__name__}: {exc})") from None
    items = []
    for key, (image, _, _) in images.items():
        if not image.is_file():
            raise DataError(f"{path}: image not found: {image}", EXIT_USAGE)
        pairs = per_image[key]
        boxes = np.clip(np.asarray([b for b, _ in pairs], dtype=np.float32).reshape(-1, 4), 0.0, 1.0)
        items.append((image, boxes, np.asarray([c for _, c in pairs], dtype=np.int64)))
    return items, names
