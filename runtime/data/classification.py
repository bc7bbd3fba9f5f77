"""Classification data: the built-in ``digits`` set, NetsPresso's local CSV layout and an image-folder layout."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from ..errors import UNUSABLE, DataError
from .bad_samples import BadSamples, SampleError
from .common import (
    HOLDOUT_FRACTION,
    IMAGE_SUFFIXES,
    SPLIT_SEED,
    DataBundle,
    Preprocess,
    check_image,
    data_root,
    finish_bundle,
    require_folder,
    split_paths,
)

__all__ = ["DIGITS_MEAN", "DIGITS_STD", "build_classification"]


DIGITS_MEAN = [0.5, 0.5, 0.5]


DIGITS_STD = [0.5, 0.5, 0.5]


def _digits(config: dict[str, Any], splits: Sequence[str]) -> DataBundle:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = digits.images.astype(np.float32) / 16.0  # (1797, 8, 8), 0..16 → 0..1
    labels = digits.target.astype(np.int64)
    indices = np.arange(len(labels))
    train_idx, valid_idx = train_test_split(
        indices, test_size=HOLDOUT_FRACTION, random_state=SPLIT_SEED, stratify=labels
    )
    preprocess = Preprocess.of("digits", config, DIGITS_MEAN, DIGITS_STD)
    chosen = {"train": np.sort(train_idx), "valid": np.sort(valid_idx)}
    out: dict[str, Dataset] = {}
    notes = []
    for split in splits:
        if split == "test":
            notes.append("digits has no test split; using valid")
            split_idx = chosen["valid"]
        else:
            split_idx = chosen[split]
        pixels = preprocess.digits_batch(images[split_idx], training=split == "train")
        out[split] = TensorDataset(pixels, torch.from_numpy(labels[split_idx]))
    names = [str(i) for i in range(10)]
    sizes = ", ".join(f"{k} {len(v)}" for k, v in out.items())
    return DataBundle(
        out, 10, names, preprocess, True, f"digits (scikit-learn, 8x8 → {preprocess.image_size}²; {sizes})", notes
    )


def _local_csv(config: dict[str, Any], splits: Sequence[str]) -> DataBundle:
    """NetsPresso's local layout: one image folder and one ``image_id,class`` CSV per split."""
    root = data_root(config)
    keys, names = _id_mapping(config.get("id_mapping"))
    rows: dict[str, list[tuple[Path, str, str]]] = {}  # split -> (image, class text, "csv:line")
    origin: dict[str, str] = {}
    for split in ("train", "valid", "test"):  # all of them: the class count must not depend on the command
        image_dir, label_file = split_paths(config, split)
        if image_dir is None and label_file is None:
            if split in splits and split != "valid":  # a missing valid split is held out of train
                raise DataError(f"data.path.{split}: no {split} images/labels given", UNUSABLE)
            continue
        if image_dir is None or label_file is None:
            missing = "image" if image_dir is None else "label"
            raise DataError(f"data.path.{split}.{missing}: required with the local (CSV) layout", UNUSABLE)
        folder = require_folder(root, image_dir, f"data.path.{split}.image")
        csv_path = root / label_file
        rows[split] = _read_csv(csv_path, folder)
        origin[split] = str(csv_path)

    if keys is None:  # no id_mapping: integer classes are indices; names are sorted
        values = {text for split_rows in rows.values() for _, text, _ in split_rows}
        if values and all(_is_int(v) for v in values):
            count = max(int(v) for v in values) + 1
            keys, names = [str(i) for i in range(count)], [str(i) for i in range(count)]
        else:
            train_values = {text for _, text, _ in rows.get("train", [])} or values
            keys = names = sorted(train_values)
    index = {key: i for i, key in enumerate(keys)}

    def check(row: tuple[Path, str, str]) -> tuple[Path, int]:
        image, text, where = row
        if text in index:
            label = index[text]
        elif _is_int(text) and 0 <= int(text) < len(keys):
            label = int(text)
        else:
            known = f"0..{len(keys) - 1}" if all(_is_int(k) for k in keys) else ", ".join(keys[:12])
            raise SampleError(
                "unknown class", where, f"{where}: class {text!r} is not one of the {len(keys)} classes ({known})"
            )
        if not image.is_file():
            raise SampleError("missing image", where, f"{where}: image not found: {image}", UNUSABLE)
        check_image(image)
        return image, label

    bad = BadSamples.from_config(config)
    per_split = {split: bad.keep(split, split_rows, check) for split, split_rows in rows.items()}
    return finish_bundle(config, splits, per_split, names, origin, bad)


def _read_csv(csv_path: Path, folder: Path) -> list[tuple[Path, str, str]]:
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise DataError(f"{csv_path}: cannot read label file ({exc.strerror or exc})", UNUSABLE) from None
    except UnicodeDecodeError:
        raise DataError(f"{csv_path}: label file is not UTF-8 text") from None
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    if header is None:
        raise DataError(f"{csv_path}: label file is empty (expected a header 'image_id,class')")
    columns = [h.strip() for h in header]
    if "image_id" not in columns or "class" not in columns:
        raise DataError(f"{csv_path}:1: expected the columns 'image_id' and 'class', got {', '.join(columns)}")
    image_col, class_col = columns.index("image_id"), columns.index("class")
    rows = []
    for line_no, row in enumerate(reader, start=2):
        if not row or all(not cell.strip() for cell in row):
            continue
        where = f"{csv_path}:{line_no}"
        if len(row) <= max(image_col, class_col):
            raise DataError(f"{where}: expected {len(columns)} columns, got {len(row)}")
        image_id, value = row[image_col].strip(), row[class_col].strip()
        rows.append((folder / image_id, value, where))  # a missing image is a bad sample (checked with the class)
    if not rows:
        raise DataError(f"{csv_path}: label file has no rows")
    return rows


def _id_mapping(mapping: Any) -> tuple[list[str] | None, list[str] | None]:
    """(label values as written in the CSV, class names), both in class-index order."""
    if mapping is None:
        return None, None
    if isinstance(mapping, list):
        names = [str(v) for v in mapping]
        return names, names
    keys = [str(k) for k in mapping]
    return keys, [str(v) for v in mapping.values()]


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def _image_folder(config: dict[str, Any], splits: Sequence[str]) -> DataBundle:
    """One sub-folder per class under each split's image folder (torchvision's ImageFolder layout)."""
    root = data_root(config)
    folders: dict[str, Path] = {}
    wanted = list(dict.fromkeys([*splits, "train"]))  # train fixes the class list (and a valid holdout)
    for split in wanted:
        image_dir, label = split_paths(config, split)
        if label is not None:
            raise DataError(
                f"data.path.{split}.label: the image_folder layout takes its labels from sub-folders", UNUSABLE
            )
        if image_dir is None:
            if split in ("train", "test") and split in splits:
                raise DataError(f"data.path.{split}.image: required", UNUSABLE)
            continue
        folders[split] = require_folder(root, image_dir, f"data.path.{split}.image")
    if not folders:
        raise DataError("data.path.train.image: required (the folder with one sub-folder per class)", UNUSABLE)
    reference = folders.get("train") or next(iter(folders.values()))
    found = sorted(p.name for p in reference.iterdir() if p.is_dir() and not p.name.startswith("."))
    keys, names = _id_mapping(config.get("id_mapping"))  # a mapping's keys are folder names
    if keys is None:
        keys = names = found
    if not keys:
        raise DataError(f"{reference}: no class sub-folders (expected one folder per class)")
    index = {key: i for i, key in enumerate(keys)}

    def check(candidate: tuple[Path, Path]) -> tuple[Path, int]:
        class_dir, image = candidate
        if class_dir.name not in index:
            message = f"{class_dir}: class folder not in the class list ({', '.join(keys[:12])}): {image.name}"
            raise SampleError("unknown class", image, message)
        check_image(image)
        return image, index[class_dir.name]

    bad = BadSamples.from_config(config)
    per_split: dict[str, list[tuple[Path, int]]] = {}
    for split, folder in folders.items():
        candidates = []
        for class_dir in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
            files = sorted(f for f in class_dir.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            candidates += [(class_dir, f) for f in files]
        per_split[split] = bad.keep(split, candidates, check)
    origin = {split: str(folder) for split, folder in folders.items()}
    return finish_bundle(config, splits, per_split, names, origin, bad)


def build_classification(config: dict[str, Any], splits: Sequence[str]) -> DataBundle:
    """The ``digits``, ``local`` (CSV) or ``image_folder`` set named by ``data.format``."""
    kind = config["format"]
    if kind == "digits":
        return _digits(config, splits)
    if kind == "local":
        return _local_csv(config, splits)
    return _image_folder(config, splits)
