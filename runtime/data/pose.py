"""Pose-estimation data: the built-in ``stick_figures`` set and NetsPresso's local layout (one image folder and one
folder of ``.txt`` labels per split, paired by file stem).

A sample is ``(image (3, H, W) float, keypoints (K, 3) float)``: per keypoint ``x, y`` in input pixels and
``visible`` (1 labelled, 0 not), what ``rtmcc_loss`` and the pose metrics read. ``(H, W)`` is ``data.input_size``,
which defaults to the rtmcc head's ``target_size`` (the compiled model accepts no other size).

* **stick_figures** — a stick figure (head, neck, two hands, hip, two feet; each limb in its own colour) on a
  noisy background, drawn at the input size. Sample ``i`` of a split is drawn from its own seed, so the set is
  generated on the fly, needs no memory and is the same on every run and machine.
* **local** — as NetsPresso Trainer 1.4.1 reads it: ``label/<image stem>.txt`` holds one line per person,
  ``x1 y1 v1 ... xK yK vK  bx1 by1 bx2 by2`` (the keypoints in image pixels, then the person's box); each line is
  one sample. The box is cropped and scaled, keeping its aspect ratio, into the input size (a top-down crop; the
  rest is padded black), and the keypoints move with it. An image without a label file is skipped, as the peer
  skips it. ``id_mapping`` names the keypoints: a list of names, a list of ``{name, swap, ...}`` (the peer's form),
  or the path of a JSON file holding such a list; without it the keypoints are counted from the first label line.
  A malformed label line stops the run (``file:line``); a missing or corrupt image is a bad sample, handled by
  ``data.on_bad_sample`` (see ``_bad_samples``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
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
    check_image,
    data_root,
    holdout_split,
    open_image,
    pil_module,
    read_json,
    split_folders,
)

__all__ = ["FIGURE_KEYPOINTS", "PosePreprocess", "build_pose", "draw_figure"]

FIGURE_KEYPOINTS = ("head", "neck", "left_hand", "right_hand", "hip", "left_foot", "right_foot")
FIGURE_SWAP = (0, 1, 3, 2, 4, 6, 5)  # each keypoint's mirror twin: the hands and the feet trade places in a flip
# (from, to, RGB) per limb; left and right limbs differ in colour, so a figure's sides can be told apart
FIGURE_LIMBS = (
    (0, 1, (255, 255, 255)),
    (1, 2, (255, 80, 80)),
    (1, 3, (80, 255, 80)),
    (1, 4, (255, 255, 255)),
    (4, 5, (80, 160, 255)),
    (4, 6, (255, 220, 60)),
)
FIGURES_MEAN = (0.5, 0.5, 0.5)
FIGURES_STD = (0.5, 0.5, 0.5)
DEFAULT_INPUT_SIZE = (64, 64)  # (height, width) when neither data.input_size nor an rtmcc head gives one
BOX_VALUES = 4  # x1 y1 x2 y2 after the keypoints on each label line


@dataclass(frozen=True)
class PosePreprocess:
    """How one image (or one person's box in it) becomes a (3, H, W) tensor; stored in the weights' metadata."""

    height: int
    width: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    kind: str = "pose"

    @property
    def image_size(self) -> int:  # the longer side; what code written for square inputs reads
        return max(self.height, self.width)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> PosePreprocess:
        raw = json.loads(text)
        return cls(int(raw["height"]), int(raw["width"]), tuple(raw["mean"]), tuple(raw["std"]))

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.mean, dtype=x.dtype).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype).view(-1, 1, 1)
        return (x - mean) / std

    def to_tensor(self, rgb: np.ndarray) -> torch.Tensor:
        """(H, W, 3) uint8 → (3, H, W) normalised."""
        return self.normalise(torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1).float() / 255.0)

    def crop(self, image, box: Sequence[float]) -> tuple[torch.Tensor, BoxCrop]:
        """``box`` (x1, y1, x2, y2) of a PIL image scaled, aspect ratio kept, into the centre of the input."""
        crop = BoxCrop.fit(box, self.height, self.width)
        pil = pil_module()
        warped = image.convert("RGB").transform(
            (self.width, self.height),
            pil.Image.Transform.AFFINE,
            (1 / crop.scale, 0.0, crop.x0, 0.0, 1 / crop.scale, crop.y0),
            resample=pil.Image.Resampling.BILINEAR,
            fillcolor=(0, 0, 0),
        )
        return self.to_tensor(np.asarray(warped, dtype=np.uint8)), crop

    def image(self, path: str | Path) -> tuple[torch.Tensor, BoxCrop]:
        """A whole image file as one person's box (what ``npc predict`` sees)."""
        image = open_image(path)
        return self.crop(image, (0.0, 0.0, float(image.width), float(image.height)))


@dataclass(frozen=True)
class BoxCrop:
    """Input pixel ``u = (x - x0) * scale`` for image pixel ``x`` (and so for y); the inverse maps predictions back."""

    scale: float
    x0: float
    y0: float

    @classmethod
    def fit(cls, box: Sequence[float], height: int, width: int) -> BoxCrop:
        x1, y1, x2, y2 = (float(v) for v in box)
        scale = min(width / (x2 - x1), height / (y2 - y1))
        centre_x, centre_y = (x1 + x2) / 2, (y1 + y2) / 2
        return cls(scale, centre_x - width / (2 * scale), centre_y - height / (2 * scale))

    def to_input(self, keypoints: np.ndarray) -> np.ndarray:
        out = keypoints.astype(np.float32).copy()
        out[:, 0] = (out[:, 0] - self.x0) * self.scale
        out[:, 1] = (out[:, 1] - self.y0) * self.scale
        return out

    def to_image(self, xy: np.ndarray) -> np.ndarray:
        return np.stack([xy[:, 0] / self.scale + self.x0, xy[:, 1] / self.scale + self.y0], axis=1)


def build_pose(config: dict[str, Any], splits: Sequence[str]) -> DataBundle:
    height, width = input_size(config)
    if config["format"] == "stick_figures":
        return _stick_figures(config, splits, height, width)
    return _local(config, splits, height, width)


def input_size(config: dict[str, Any]) -> tuple[int, int]:
    size = config.get("input_size")
    if size is None:
        return DEFAULT_INPUT_SIZE
    return int(size[0]), int(size[1])


# --- stick figures -----------------------------------------------------------------------------------------------


def figure_seed(seed: int, split: str, index: int) -> int:
    """Sample ``index`` of ``split``: its own seed, so splits never share a figure and samples need no order."""
    return (seed * 3 + {"train": 0, "valid": 1, "test": 2}[split]) * 1_000_003 + index


def draw_figure(rng: np.random.RandomState, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """One (H, W, 3) uint8 image and its (7, 3) keypoints (x, y, 1), the figure wholly inside the image."""
    side = min(height, width)
    size = rng.uniform(0.55, 0.9) * height  # head top to feet
    centre_x = rng.uniform(0.35, 0.65) * width
    top = rng.uniform(0.05, 0.95 - size / height) * height
    neck = np.array([centre_x, top + 0.22 * size])
    lean = rng.uniform(-0.35, 0.35)  # radians from vertical, of the trunk
    hip = neck + 0.38 * size * np.array([np.sin(lean), np.cos(lean)])
    head = neck - 0.14 * size * np.array([np.sin(lean), np.cos(lean)])

    def limb(start: np.ndarray, angle: float, length: float) -> np.ndarray:  # angle from +x, y pointing down
        return start + length * np.array([np.cos(angle), np.sin(angle)])

    left_hand = limb(neck, rng.uniform(0.6, 1.4) * np.pi, rng.uniform(0.25, 0.35) * size)
    right_hand = limb(neck, rng.uniform(-0.4, 0.4) * np.pi, rng.uniform(0.25, 0.35) * size)
    left_foot = limb(hip, rng.uniform(0.55, 0.8) * np.pi, 0.42 * size)
    right_foot = limb(hip, rng.uniform(0.2, 0.45) * np.pi, 0.42 * size)
    points = np.stack([head, neck, left_hand, right_hand, hip, left_foot, right_foot])
    points[:, 0] = points[:, 0].clip(1, width - 2)
    points[:, 1] = points[:, 1].clip(1, height - 2)

    background = rng.uniform(0, 90, size=3)
    canvas = np.clip(background + rng.normal(0, 12, size=(height, width, 3)), 0, 255).astype(np.uint8)
    from PIL import ImageDraw

    image = pil_module().Image.fromarray(canvas)
    pen = ImageDraw.Draw(image)
    thickness = max(1, round(side / 24))
    for start, end, colour in FIGURE_LIMBS:
        pen.line([tuple(points[start]), tuple(points[end])], fill=colour, width=thickness)
    radius = max(1.5, 0.06 * size)
    hx, hy = points[0]
    pen.ellipse([hx - radius, hy - radius, hx + radius, hy + radius], outline=(255, 255, 255), width=thickness)
    keypoints = np.concatenate([points, np.ones((len(points), 1))], axis=1).astype(np.float32)
    return np.asarray(image, dtype=np.uint8), keypoints


class StickFigures(Dataset):
    """``count`` figures of one split, each drawn when asked for from its own seed."""

    def __init__(self, count: int, seed: int, split: str, preprocess: PosePreprocess) -> None:
        self.count, self.seed, self.split, self.preprocess = count, seed, split, preprocess

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < self.count:
            raise IndexError(index)
        rng = np.random.RandomState(figure_seed(self.seed, self.split, index))
        image, keypoints = draw_figure(rng, self.preprocess.height, self.preprocess.width)
        return self.preprocess.to_tensor(image), torch.from_numpy(keypoints)


def _stick_figures(config: dict[str, Any], splits: Sequence[str], height: int, width: int) -> DataBundle:
    preprocess = PosePreprocess(height, width, FIGURES_MEAN, FIGURES_STD)
    seed = int(config.get("seed", 0))
    out: dict[str, Dataset] = {}
    for split in splits:
        count = int(config.get("num_train", 512) if split == "train" else config.get("num_valid", 128))
        out[split] = StickFigures(count, seed, split, preprocess)
    names = list(FIGURE_KEYPOINTS)
    sizes = ", ".join(f"{k} {len(v)}" for k, v in out.items())
    description = f"stick_figures (generated, {height}x{width}, {len(names)} keypoints; {sizes})"
    return DataBundle(
        out, len(names), names, preprocess, True, description, [], "pose_estimation", keypoint_swap=FIGURE_SWAP
    )


# --- local layout ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    image: Path
    keypoints: np.ndarray  # (K, 3): x, y in image pixels, visible 0/1
    box: tuple[float, float, float, float]  # x1 y1 x2 y2 in image pixels


class PersonCrops(Dataset):
    """One sample per labelled person: the image decoded lazily (a corrupt file names itself), its box cropped."""

    def __init__(self, people: list[Person], preprocess: PosePreprocess) -> None:
        self.people, self.preprocess = people, preprocess

    def __len__(self) -> int:
        return len(self.people)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        person = self.people[index]
        x, crop = self.preprocess.crop(open_image(person.image), person.box)
        return x, torch.from_numpy(crop.to_input(person.keypoints))


def _local(config: dict[str, Any], splits: Sequence[str], height: int, width: int) -> DataBundle:
    root = data_root(config)
    names = _keypoint_names(config.get("id_mapping"), root)
    preprocess = PosePreprocess(height, width, tuple(config["mean"]), tuple(config["std"]))
    datasets: dict[str, Dataset] = {}
    notes: list[str] = []
    bad = BadSamples.from_config(config)
    check = _image_check()
    for split in dict.fromkeys([*splits, "train"] if "valid" in splits else splits):
        folders = split_folders(config, root, split, "a folder of .txt labels")
        if folders is None:
            continue  # held out of train below
        images, labels = folders
        people, unlabelled = _people(images, labels, names)
        if names is None and people:
            names = [str(i) for i in range(len(people[0].keypoints))]
            notes.append(f"no id_mapping: {len(names)} keypoints, counted from the labels, named by index")
        if unlabelled:
            notes.append(f"{images}: {unlabelled} image(s) without a label file in {labels} were skipped")
        if not people:
            raise DataError(f"{images}: the {split} split has no labelled person (labels: {labels}/<image stem>.txt)")
        people = bad.keep(split, people, check)
        bad.require(split, people, str(images))
        datasets[split] = PersonCrops(people, preprocess)
    if "valid" in splits and "valid" not in datasets:
        datasets["train"], datasets["valid"] = holdout_split(datasets["train"], notes, "data.path.train")
    datasets = {split: datasets[split] for split in splits}
    assert names is not None  # every split read above has at least one person
    sizes = ", ".join(f"{k} {len(v)}" for k, v in datasets.items())
    description = f"{config.get('name') or 'local'} (local keypoints, {len(names)} keypoints; {sizes})"
    notes += bad.notes()
    return DataBundle(
        datasets,
        len(names),
        names,
        preprocess,
        False,
        description,
        notes,
        "pose_estimation",
        bad_samples=bad,
        keypoint_swap=_keypoint_swap(config.get("id_mapping"), root, names),
    )


def _image_check():
    """A ``BadSamples.keep`` check: the person's image opens and is whole (each file checked once)."""
    failures: dict[Path, SampleError | None] = {}

    def check(person: Person) -> Person:
        if person.image not in failures:
            try:
                check_image(person.image)
                failures[person.image] = None
            except SampleError as exc:
                failures[person.image] = exc
        failure = failures[person.image]
        if failure is not None:
            raise failure
        return person

    return check


def _keypoint_names(mapping: Any, root: Path) -> list[str] | None:
    """Keypoint names from ``id_mapping``: names, the peer's ``{name, swap}`` entries, or a JSON file of either."""
    if mapping is None:
        return None
    if isinstance(mapping, str):
        path = root / mapping
        mapping = read_json(path, "the id_mapping file")
        where = str(path)
    else:
        where = "data.id_mapping"
    if not isinstance(mapping, list) or not mapping:
        raise DataError(f"{where}: expected a non-empty list of keypoint names (or of {{name: ...}} entries)")
    names = []
    for index, entry in enumerate(mapping):
        if isinstance(entry, dict):
            if "name" not in entry:
                raise DataError(f"{where}[{index}]: a keypoint entry needs a 'name'")
            entry = entry["name"]
        names.append(str(entry))
    return names


def _keypoint_swap(mapping: Any, root: Path, names: list[str]) -> tuple[int, ...] | None:
    """Each keypoint's mirror twin from the peer's ``{name, swap}`` entries (a centre keypoint names itself); None
    unless every entry gives one. A swap that names no keypoint, or pairs that do not match, stop the run."""
    if isinstance(mapping, str):
        mapping = json.loads((root / mapping).read_text(encoding="utf-8"))  # read (and checked) by _keypoint_names
    if not isinstance(mapping, list) or not all(isinstance(e, dict) and e.get("swap") for e in mapping):
        return None
    index = {name: i for i, name in enumerate(names)}
    swap = []
    for i, entry in enumerate(mapping):
        if str(entry["swap"]) not in index:
            raise DataError(f"data.id_mapping[{i}].swap: {entry['swap']!r} is not a keypoint name (names: {names})")
        swap.append(index[str(entry["swap"])])
    for i, twin in enumerate(swap):
        if swap[twin] != i:
            raise DataError(
                f"data.id_mapping[{i}].swap: {names[i]!r} swaps with {names[twin]!r}, but {names[twin]!r} swaps with "
                f"{names[swap[twin]]!r}; mirror twins must name each other"
            )
    return tuple(swap)


def _people(image_dir: Path, label_dir: Path, names: list[str] | None) -> tuple[list[Person], int]:
    """Every labelled person under ``image_dir`` (images sorted by name) and the count of unlabelled images."""
    people: list[Person] = []
    unlabelled = 0
    count = len(names) if names is not None else None
    for image in sorted(image_dir.iterdir()):
        if not (image.is_file() and image.suffix.lower() in IMAGE_SUFFIXES):
            continue
        label = label_dir / f"{image.stem}.txt"
        if not label.is_file():
            unlabelled += 1
            continue
        for person in _read_label(label, image, count):
            count = len(person.keypoints)  # the first line fixes the count when id_mapping does not
            people.append(person)
    return people, unlabelled


def _read_label(label: Path, image: Path, count: int | None) -> list[Person]:
    try:
        text = label.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise DataError(f"{label}: cannot read label file ({exc.strerror or exc})", UNUSABLE) from None
    except UnicodeDecodeError:
        raise DataError(f"{label}: label file is not UTF-8 text") from None
    people = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{label}:{line_no}"
        try:
            values = np.array([float(v) for v in line.split()], dtype=np.float32)
        except ValueError:
            raise DataError(
                f"{where}: expected numbers 'x y visible ... x1 y1 x2 y2', got {line.strip()[:60]!r}"
            ) from None
        found = (len(values) - BOX_VALUES) / 3
        if count is not None and len(values) != 3 * count + BOX_VALUES:
            raise DataError(
                f"{where}: {len(values)} values, expected {3 * count + BOX_VALUES} ({count} keypoints x 3 + a box "
                f"of {BOX_VALUES})" + (f"; this line holds {found:g} keypoints" if found > 0 else "")
            )
        if found < 1 or found != int(found):
            raise DataError(f"{where}: {len(values)} values is not 3 per keypoint plus a box x1 y1 x2 y2")
        keypoints = values[:-BOX_VALUES].reshape(-1, 3).copy()
        keypoints[:, 2] = keypoints[:, 2] > 0  # 1 and 2 (COCO's occluded / visible) both mean labelled
        x1, y1, x2, y2 = (float(v) for v in values[-BOX_VALUES:])
        if not (x2 > x1 and y2 > y1):
            raise DataError(f"{where}: the box ({x1:g}, {y1:g}, {x2:g}, {y2:g}) is empty (expected x1 < x2, y1 < y2)")
        people.append(Person(image, keypoints, (x1, y1, x2, y2)))
        count = len(keypoints)
    return people
