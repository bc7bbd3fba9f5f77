"""Detection data: the built-in ``shapes`` set, NetsPresso's local layout (YOLO txt labels) and COCO JSON.

A sample is ``(image (3, S, S) float, {"boxes": (K, 4) float, "labels": (K,) int64})`` with boxes as
``x1, y1, x2, y2`` in input pixels (after the resize to ``image_size`` square); :func:`collate` stacks the images
and keeps the targets as a list. Label files are parsed when the data is built, so a bad line is reported (file and
line) before training starts.

Every sample is checked when the data is built (the ``on_bad_sample`` policy decides what a bad one does): the
image's header, each box's class, size and place. A box partly outside its image is clipped to it and counted (as
Ultralytics does); a box wholly outside, a YOLO box without area, a class outside the class list make the sample bad.
COCO annotations without area are dropped and counted (the official COCO files hold a few).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import UNUSABLE, DataError
from .bad_samples import BadSamples, SampleError
from .common import (
    IMAGE_SUFFIXES,
    DataBundle,
    Preprocess,
    check_image,
    data_root,
    holdout_split,
    read_json,
    require_folder,
    split_sources,
)
from .segmentation import generated_shapes, shapes_description
from .shapes import SHAPE_NAMES

__all__ = ["build_detection", "collate"]

Target = dict[str, torch.Tensor]
Item = tuple[Path, np.ndarray, np.ndarray]  # image, (K, 4) x1 y1 x2 y2 normalised to [0, 1], (K,) class indices
EDGE_SLACK = 1e-3  # of the image side: a box edge this far out is rounding, clipped without a count
CLIPPED = "box(es) partly outside their image clipped to it"
DROPPED = "COCO box(es) without area dropped"


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
    preprocess, generated = generated_shapes(config, splits)
    out: dict[str, Dataset] = {
        split: BoxTensors(images, shapes.boxes, shapes.labels) for split, (images, shapes) in generated.items()
    }
    description = shapes_description(out, preprocess.image_size)
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
    root = data_root(config)
    coco = config["format"] == "coco"
    names = _names(config.get("id_mapping"))
    bad = BadSamples.from_config(config)
    per_split: dict[str, list[Item]] = {}
    notes: list[str] = []
    for split in dict.fromkeys([*splits, "train"] if "valid" in splits else splits):
        sources = split_sources(config, split, "a COCO JSON file" if coco else "a folder of YOLO .txt files")
        if sources is None:
            continue  # held out of train below
        image_dir, label = sources
        images = require_folder(root, image_dir, f"data.path.{split}.image")
        if coco:
            candidates, coco_names = _read_coco(root / label, images)
            names = names or coco_names
            checked = bad.keep(split, candidates, partial(_check_coco, num_classes=len(names)))
        else:
            candidates, unlabelled = _yolo_pairs(images, require_folder(root, label, f"data.path.{split}.label"))
            if unlabelled:
                notes.append(
                    f"{split}: {unlabelled} image(s) without a .txt label file are left out (as in NetsPresso)"
                )
            count = len(names) if names else None
            checked = bad.keep(split, candidates, partial(_check_yolo, num_classes=count))
        if not candidates:
            raise DataError(f"{images}: the {split} split has no labelled images")
        for _, clipped, dropped in checked:
            bad.fixed(split, CLIPPED, clipped)
            bad.fixed(split, DROPPED, dropped)
        per_split[split] = [item for item, _, _ in checked]
        bad.require(split, per_split[split], str(images))
    if names is None:  # YOLO labels without id_mapping: classes 0..max
        top = max(
            (int(labels.max()) for items in per_split.values() for _, _, labels in items if len(labels)), default=0
        )
        names = [str(i) for i in range(top + 1)]
    notes = bad.notes() + notes
    preprocess = Preprocess("rgb", int(config["image_size"]), tuple(config["mean"]), tuple(config["std"]))
    datasets: dict[str, Dataset] = {split: BoxFiles(items, preprocess) for split, items in per_split.items()}
    if "valid" in splits and "valid" not in datasets:
        datasets["train"], datasets["valid"] = holdout_split(datasets["train"], notes, "data.path.train")
    datasets = {split: datasets[split] for split in splits}
    sizes = ", ".join(f"{k} {len(v)}" for k, v in datasets.items())
    description = f"{config.get('name') or config['format']} ({config['format']}, {len(names)} classes; {sizes})"
    return DataBundle(
        datasets, len(names), names, preprocess, False, description, notes, "detection", collate, bad_samples=bad
    )


def _names(mapping: Any) -> list[str] | None:
    if mapping is None:
        return None
    if isinstance(mapping, dict):
        return [str(v) for v in mapping.values()]
    return [str(v) for v in mapping]


# --- boxes -------------------------------------------------------------------------------------------------------


def _placed(box: list[float], where: str, shown: str) -> tuple[list[float], bool]:
    """A normalised x1 y1 x2 y2 box clipped to the image, and whether it reached out of it; wholly outside is bad."""
    x1, y1, x2, y2 = box
    if x2 <= 0 or y2 <= 0 or x1 >= 1 or y1 >= 1:
        raise SampleError("box outside image", where, f"{where}: box {shown} lies wholly outside its image")
    out = min(x1, y1) < -EDGE_SLACK or max(x2, y2) > 1 + EDGE_SLACK
    return [min(max(v, 0.0), 1.0) for v in box], out


def _arrays(boxes: list[list[float]], labels: list[int]) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(boxes, dtype=np.float32).reshape(-1, 4), np.asarray(labels, dtype=np.int64)


def _class_error(where: str, label: Any, num_classes: int) -> SampleError:
    message = f"{where}: class {label} is not one of the {num_classes} classes (0..{num_classes - 1})"
    return SampleError("unknown class", where, message)


# --- YOLO txt ------------------------------------------------------------------------------------------------------


def _yolo_pairs(image_dir: Path, label_dir: Path) -> tuple[list[tuple[Path, Path]], int]:
    """(image, its ``<stem>.txt``) pairs, and how many images have no label file (left out, as in NetsPresso)."""
    pairs, unlabelled = [], 0
    for image in sorted(image_dir.iterdir()):
        if not (image.is_file() and image.suffix.lower() in IMAGE_SUFFIXES):
            continue
        label = label_dir / f"{image.stem}.txt"
        if label.is_file():
            pairs.append((image, label))
        else:
            unlabelled += 1
    return pairs, unlabelled


def _check_yolo(pair: tuple[Path, Path], num_classes: int | None) -> tuple[Item, int, int]:
    """The checked sample, its clipped box count and 0 dropped; ``num_classes`` None: any class index >= 0."""
    image, label = pair
    check_image(image)
    boxes, labels, clipped = _parse_yolo(label, num_classes)
    return (image, boxes, labels), clipped, 0


def _parse_yolo(path: Path, num_classes: int | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """YOLO labels: lines ``class cx cy w h`` normalised to [0, 1]; (boxes x1 y1 x2 y2, labels, boxes clipped)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SampleError("unreadable label", path, f"{path}: cannot read label file ({exc})") from None
    boxes, labels, clipped = [], [], 0
    for line_no, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path}:{line_no}"
        if len(fields) != 5:
            message = f"{where}: expected 'class cx cy w h' (5 numbers), got {len(fields)} field(s)"
            raise SampleError("bad label line", where, message)
        try:
            label = int(fields[0])
            cx, cy, w, h = (float(v) for v in fields[1:])
        except ValueError:
            message = f"{where}: expected an integer class and four numbers, got {line.strip()!r}"
            raise SampleError("bad label line", where, message) from None
        shown = f"{cx:g} {cy:g} {w:g} {h:g}"
        if not all(math.isfinite(v) for v in (cx, cy, w, h)):
            raise SampleError("bad label line", where, f"{where}: box {shown} is not four finite numbers")
        if label < 0 or (num_classes is not None and label >= num_classes):
            if num_classes is None:
                raise SampleError("unknown class", where, f"{where}: class {label} is negative")
            raise _class_error(where, label, num_classes)
        if not (w > 0 and h > 0):
            raise SampleError(
                "degenerate box", where, f"{where}: box {shown} has no area (width and height must be > 0)"
            )
        box, out = _placed([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], where, shown)
        boxes.append(box)
        labels.append(label)
        clipped += out
    return *_arrays(boxes, labels), clipped


# --- COCO JSON -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CocoImage:
    """One ``images`` entry with its annotations: (x, y, w, h pixels, class index or None if unknown, where)."""

    path: Path
    width: float
    height: float
    annotations: list[tuple[tuple[float, float, float, float], int | None, str]]
    where: str


def _read_coco(path: Path, image_dir: Path) -> tuple[list[CocoImage], list[str]]:
    """COCO instances JSON: ``images`` (file_name, width, height), ``annotations`` (bbox x, y, w, h in pixels),
    ``categories`` (class index = order of category ids). Crowd annotations are skipped. A malformed file stops the
    run; a bad sample in it (an unknown category, a box outside its image) is left to the policy."""
    document = read_json(path, "the COCO file")
    if not isinstance(document, dict) or not all(isinstance(document.get(k), list) for k in ("images", "categories")):
        raise DataError(f"{path}: expected a COCO object with 'images', 'annotations' and 'categories' lists")
    try:
        categories = sorted(document["categories"], key=lambda c: c["id"])
        index = {c["id"]: i for i, c in enumerate(categories)}
        names = [str(c.get("name", c["id"])) for c in categories]
        entries = {
            im["id"]: (image_dir / im["file_name"], float(im["width"]), float(im["height"]), n)
            for n, im in enumerate(document["images"])
        }
        per_image: dict[Any, list] = {key: [] for key in entries}
        for n, ann in enumerate(document.get("annotations") or []):
            if ann.get("iscrowd"):
                continue
            where = f"{path}: annotations[{n}]"
            if ann["image_id"] not in entries:
                raise DataError(f"{where}: image_id {ann['image_id']} is not in 'images'")
            category = index.get(ann["category_id"])
            if category is None:  # the message names the id as written
                where = f"{where}: category_id {ann['category_id']}"
            x, y, w, h = (float(v) for v in ann["bbox"])
            per_image[ann["image_id"]].append(((x, y, w, h), category, where))
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{path}: malformed COCO entry ({type(exc).__name__}: {exc})") from None
    images = [
        CocoImage(image, width, height, per_image[key], f"{path}: images[{n}]")
        for key, (image, width, height, n) in entries.items()
    ]
    return images, names


def _check_coco(entry: CocoImage, num_classes: int) -> tuple[Item, int, int]:
    """The checked sample, its clipped and dropped box counts."""
    if not entry.path.is_file():
        raise SampleError("missing image", entry.path, f"{entry.where}: image not found: {entry.path}", UNUSABLE)
    size = check_image(entry.path)
    if size != (int(entry.width), int(entry.height)):
        message = (
            f"{entry.where}: says {entry.width:g}x{entry.height:g} pixels, but {entry.path} is {size[0]}x{size[1]} "
            "(its boxes would land in the wrong place)"
        )
        raise SampleError("image size", entry.path, message)
    boxes, labels, clipped, dropped = [], [], 0, 0
    for (x, y, w, h), category, where in entry.annotations:
        if category is None:
            raise SampleError("unknown class", where, f"{where} is not in 'categories'")
        if category >= num_classes:
            raise _class_error(where, category, num_classes)
        if not (w > 0 and h > 0):
            dropped += 1  # nothing to learn from; COCO's own files hold a few
            continue
        shown = f"{x:g} {y:g} {w:g} {h:g} (x y w h pixels)"
        box = [x / entry.width, y / entry.height, (x + w) / entry.width, (y + h) / entry.height]
        box, out = _placed(box, where, shown)
        boxes.append(box)
        labels.append(category)
        clipped += out
    return (entry.path, *_arrays(boxes, labels)), clipped, dropped
