"""Segmentation data: the built-in ``shapes`` set and NetsPresso's local layout (one image folder and one mask
folder per split, masks paired with images by file stem).

A sample is ``(image (3, S, S) float, mask (S, S) int64)``; mask values are class indices, ``255`` where a pixel
is unlabelled (a colour or value that ``id_mapping`` does not list, in RGB/P mode) and is ignored by the loss and
the metrics. Images are resized bilinearly, masks by nearest neighbour, both to ``image_size`` square.

Every pair is checked when the data is built (the ``on_bad_sample`` policy decides what a bad one does): the image's
header, a mask of the image's size (never resized to fit), grey values in ``id_mapping`` or 255 (mode L).
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from ..errors import UNUSABLE, DataError
from .bad_samples import BadSamples, SampleError
from .common import (
    IMAGE_SUFFIXES,
    DataBundle,
    Preprocess,
    check_image,
    data_root,
    holdout_split,
    open_image,
    pil_module,
    split_folders,
)
from .shapes import SHAPE_NAMES, generate_shapes

__all__ = ["IGNORE_INDEX", "MaskLookup", "build_segmentation", "mask_mapping"]

IGNORE_INDEX = 255  # mask value of unlabelled pixels (NetsPresso's)
SHAPES_MEAN = (0.5, 0.5, 0.5)
SHAPES_STD = (0.5, 0.5, 0.5)


def build_segmentation(config: dict[str, Any], splits: Sequence[str]) -> DataBundle:
    if config["format"] == "shapes":
        return _shapes(config, splits)
    return _local(config, splits)


# --- shapes ------------------------------------------------------------------------------------------------------


def shape_split_seed(seed: int, split: str) -> int:
    """Each split draws from its own seed, so train, valid and test never share an image."""
    return seed * 3 + {"train": 0, "valid": 1, "test": 2}[split]


def generated_shapes(
    config: dict[str, Any], splits: Sequence[str]
) -> tuple[Preprocess, dict[str, tuple[torch.Tensor, Any]]]:
    """The built-in ``shapes`` set, shared by segmentation and detection: per split, the normalised images
    (N, 3, S, S) and what :func:`generate_shapes` drew (masks, boxes, labels)."""
    size = int(config["image_size"])
    preprocess = Preprocess("rgb", size, SHAPES_MEAN, SHAPES_STD)
    out = {}
    for split in splits:
        count = int(config["num_train"] if split == "train" else config["num_valid"])
        shapes = generate_shapes(count, size, shape_split_seed(int(config["seed"]), split), int(config["max_shapes"]))
        images = torch.from_numpy(shapes.images).permute(0, 3, 1, 2).float() / 255.0
        out[split] = (preprocess.normalise(images), shapes)
    return preprocess, out


def shapes_description(datasets: dict[str, Dataset], size: int) -> str:
    sizes = ", ".join(f"{k} {len(v)}" for k, v in datasets.items())
    return f"shapes (generated, {size}²; {sizes})"


def _shapes(config: dict[str, Any], splits: Sequence[str]) -> DataBundle:
    preprocess, generated = generated_shapes(config, splits)
    out: dict[str, Dataset] = {
        split: TensorDataset(images, torch.from_numpy(shapes.masks).long())
        for split, (images, shapes) in generated.items()
    }
    names = ["background", *SHAPE_NAMES]
    description = shapes_description(out, preprocess.image_size)
    return DataBundle(out, len(names), names, preprocess, True, description, [], "segmentation")


# --- local layout ------------------------------------------------------------------------------------------------


class MaskFiles(Dataset):
    """(image, mask) file pairs decoded lazily; an unreadable file or an unknown mask value names the file."""

    def __init__(self, items: list[tuple[Path, Path]], preprocess: Preprocess, lookup: MaskLookup) -> None:
        self.items, self.preprocess, self.lookup = items, preprocess, lookup

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.items[index]
        return self.preprocess.image(image), self.lookup.read(mask, self.preprocess.image_size)


class MaskLookup:
    """Mask file → class-index array. L mode: grey values through ``id_mapping``; RGB/P: colours (unlisted → 255)."""

    def __init__(self, mode: str, values: list[Any]) -> None:
        self.mode, self.values = mode, values
        if mode == "L":
            self.table = np.full(256, -1, dtype=np.int64)
            for index, value in enumerate(values):
                self.table[value] = index
            self.table[IGNORE_INDEX] = IGNORE_INDEX

    def read(self, path: Path, size: int) -> torch.Tensor:
        return self.convert(open_image(path), path, size)

    def convert(self, image: Any, path: Path | str, size: int) -> torch.Tensor:
        """A decoded mask (``path`` names it in errors) → (size, size) class indices."""
        nearest = pil_module().Image.Resampling.NEAREST
        if self.mode == "L":
            self._check_grey(path, image)
            values = np.asarray(image.convert("L").resize((size, size), nearest), dtype=np.int64)
            mask = self.table[values]
            self._check_values(path, values, mask)
            return torch.from_numpy(mask)
        rgb = np.asarray(image.convert("RGB").resize((size, size), nearest), dtype=np.int64)
        mask = np.full(rgb.shape[:2], IGNORE_INDEX, dtype=np.int64)
        for index, colour in enumerate(self.values):
            mask[(rgb == np.asarray(colour)).all(axis=-1)] = index
        return torch.from_numpy(mask)

    def check(self, path: Path, image_size: tuple[int, int]) -> None:
        """A mask that opens, has ``image_size`` (width, height) and, in mode L, only listed grey values or 255."""
        grey = self.mode == "L"  # grey values are checked, so the mask is decoded; colour masks: the header only
        try:
            mask = open_image(path) if grey else None
            size = mask.size if mask is not None else check_image(path)
        except DataError as exc:
            raise SampleError("corrupt mask", path, exc.message) from None
        if size != image_size:
            raise SampleError(
                "mask size",
                path,
                f"{path}: mask is {size[0]}x{size[1]} pixels, its image is {image_size[0]}x{image_size[1]} "
                "(a mask must have its image's size; npc does not resize it to fit)",
            )
        if mask is None:
            return  # colours the mapping does not list are unlabelled (255), as in NetsPresso
        self.check_grey_values(path, mask)

    def check_grey_values(self, path: Path | str, mask: Any) -> None:
        """Mode L: a grey mask whose values are all listed in ``id_mapping`` (or 255); else :class:`SampleError`."""
        self._check_grey(path, mask)
        values = np.asarray(mask.convert("L"), dtype=np.int64)
        self._check_values(path, values, self.table[values])

    def _check_grey(self, path: Path | str, image: Any) -> None:
        if image.mode not in ("L", "P", "I", "I;16", "1"):
            message = f"{path}: mask has {image.mode} pixels; with label_image_mode L it must be grey"
            raise SampleError("mask mode", path, message)

    def _check_values(self, path: Path | str, values: np.ndarray, mask: np.ndarray) -> None:
        if (mask < 0).any():
            bad = sorted(set(values[mask < 0].tolist()))[:8]
            known = ", ".join(str(v) for v in self.values[:12])
            message = f"{path}: mask value(s) {bad} are not in id_mapping ({known}) and not {IGNORE_INDEX} (ignored)"
            raise SampleError("mask values", path, message)


def mask_mapping(config: dict[str, Any], mode: str) -> tuple[list[Any], list[str]]:
    """(mask value or colour per class, class names) from ``id_mapping``, in class-index order."""
    mapping = config.get("id_mapping")
    if mapping is None:
        raise DataError("data.id_mapping: required for segmentation (class names by mask value or colour)")
    if isinstance(mapping, list):
        if mode != "L":
            raise DataError(f"data.id_mapping: with label_image_mode {mode} it must map colours '(r, g, b)' to names")
        if len(mapping) > IGNORE_INDEX:
            raise DataError(f"data.id_mapping: at most {IGNORE_INDEX} classes (255 marks unlabelled pixels)")
        return list(range(len(mapping))), [str(name) for name in mapping]
    values: list[Any] = []
    for key in mapping:
        values.append(_mask_value(key, mode))
    return values, [str(name) for name in mapping.values()]


def _mask_value(key: Any, mode: str) -> Any:
    text = str(key).strip()
    if mode == "L":
        try:
            value = int(text)
        except ValueError:
            raise DataError(f"data.id_mapping: key {key!r} must be a grey value 0..254 (label_image_mode L)") from None
        if not 0 <= value < IGNORE_INDEX:
            raise DataError(f"data.id_mapping: key {key!r} must be a grey value 0..254 (255 marks unlabelled pixels)")
        return value
    try:
        colour = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        colour = None
    if not (isinstance(colour, (tuple, list)) and len(colour) == 3 and all(isinstance(c, int) for c in colour)):
        raise DataError(f"data.id_mapping: key {key!r} must be a colour '(r, g, b)' (label_image_mode {mode})")
    return tuple(colour)


def _pairs(image_dir: Path, mask_dir: Path) -> list[tuple[Path, Path | None]]:
    """(image, its mask or None) for every image file; a missing mask is a bad sample, checked with the others."""
    masks: dict[str, Path] = {}
    for path in sorted(mask_dir.iterdir()):
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            masks.setdefault(path.stem, path)
    images = sorted(p for p in image_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    return [(image, masks.get(image.stem)) for image in images]


def _checked_pair(pair: tuple[Path, Path | None], lookup: MaskLookup, mask_dir: Path) -> tuple[Path, Path]:
    image, mask = pair
    if mask is None:
        message = f"{image}: no mask with the same name in {mask_dir} (expected {image.stem}.png)"
        raise SampleError("missing mask", image, message, UNUSABLE)
    lookup.check(mask, check_image(image))
    return image, mask


def _local(config: dict[str, Any], splits: Sequence[str]) -> DataBundle:
    root = data_root(config)
    mode = str(config.get("label_image_mode") or "L").upper()
    values, names = mask_mapping(config, mode)
    preprocess = Preprocess("rgb", int(config["image_size"]), tuple(config["mean"]), tuple(config["std"]))
    lookup = MaskLookup(mode, values)
    bad = BadSamples.from_config(config)
    datasets: dict[str, Dataset] = {}
    for split in dict.fromkeys([*splits, "train"] if "valid" in splits else splits):
        folders = split_folders(config, root, split, "a folder of masks")
        if folders is None:
            continue  # held out of train below
        images, masks = folders
        candidates = _pairs(images, masks)
        if not candidates:
            raise DataError(f"{images}: the {split} split has no images ({', '.join(IMAGE_SUFFIXES)})")
        pairs = bad.keep(split, candidates, partial(_checked_pair, lookup=lookup, mask_dir=masks))
        bad.require(split, pairs, str(images))
        datasets[split] = MaskFiles(pairs, preprocess, lookup)
    notes = bad.notes()
    if "valid" in splits and "valid" not in datasets:
        datasets["train"], datasets["valid"] = holdout_split(datasets["train"], notes, "data.path.train")
    datasets = {split: datasets[split] for split in splits}
    sizes = ", ".join(f"{k} {len(v)}" for k, v in datasets.items())
    description = f"{config.get('name') or 'local'} (local masks {mode}, {len(names)} classes; {sizes})"
    return DataBundle(
        datasets, len(names), names, preprocess, False, description, notes, "segmentation", bad_samples=bad
    )
