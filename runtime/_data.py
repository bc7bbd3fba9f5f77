"""Data for every task: ``build_data`` dispatches on the task; this module holds classification's sets (the
built-in ``digits``, NetsPresso's local CSV layout, an image-folder layout) and the helpers the segmentation and
detection modules (``_data_segmentation``, ``_data_detection``) share.

Every problem the user can fix (a missing folder, an unreadable CSV, an empty split) raises :class:`DataError`
naming the path (and CSV line). A bad *sample* (a missing or corrupt image, a label outside the class list) is
checked for when the data is built (:func:`check_image` opens each header) and goes to the
:class:`~._bad_samples.BadSamples` policy: stop (default) or skip and count. The class list comes from the data,
never from the spec. How a sample becomes a tensor is a :class:`Preprocess`, stored in the weights'
metadata so ``npc predict`` prepares an image exactly as training did.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Subset, TensorDataset

from ._bad_samples import BadSamples, SampleError, UnreadableFileError
from ._errors import EXIT_USAGE, DataError
from ._schema import EVALUATION_KEY

__all__ = ["DataBundle", "Preprocess", "build_data"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
DIGITS_MEAN = [0.5, 0.5, 0.5]
DIGITS_STD = [0.5, 0.5, 0.5]
HOLDOUT_FRACTION = 0.2  # of the train split, when the data names no valid split
SPLIT_SEED = 0  # splits never depend on the training seed


@dataclass(frozen=True)
class Preprocess:
    """How one image becomes a (3, S, S) tensor; ``kind`` is ``rgb`` (files) or ``digits`` (8x8 grey, upscaled).

    Training images are resized to ``image_size`` square. Evaluation images (valid/test splits, ``npc predict``)
    follow NetsPresso's ``augmentation.inference`` list where it evaluates at another size (classification): resized
    to ``eval_resize`` (height, width), then centre-cropped to ``eval_crop`` (height, width); without those they are
    prepared as training images are."""

    kind: str
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    eval_resize: tuple[int, int] | None = None
    eval_crop: tuple[int, int] | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Preprocess:
        raw = json.loads(text)
        evaluation = {key: tuple(raw[key]) for key in ("eval_resize", "eval_crop") if raw.get(key)}
        return cls(raw["kind"], int(raw["image_size"]), tuple(raw["mean"]), tuple(raw["std"]), **evaluation)

    @classmethod
    def of(cls, kind: str, config: dict[str, Any], mean: Sequence[float], std: Sequence[float]) -> Preprocess:
        """The data section's preprocessing, with its evaluation plan (``EVALUATION_KEY``, from the augmentation)."""
        plan = config.get(EVALUATION_KEY) or {}
        evaluation = {f"eval_{key}": tuple(plan[key]) for key in ("resize", "crop") if plan.get(key)}
        return cls(kind, int(config["image_size"]), tuple(mean), tuple(std), **evaluation)

    def _centre_crop(self, x: torch.Tensor) -> torch.Tensor:
        if self.eval_crop is None:
            return x
        height, width = x.shape[-2:]
        crop_h, crop_w = self.eval_crop
        top, left = int(round((height - crop_h) / 2.0)), int(round((width - crop_w) / 2.0))  # torchvision's
        return x[..., top : top + crop_h, left : left + crop_w]

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.mean, dtype=x.dtype).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype).view(-1, 1, 1)
        return (x - mean) / std

    def digits_batch(self, values: np.ndarray, *, training: bool = True) -> torch.Tensor:
        """(N, 8, 8) intensities in [0, 1] → (N, 3, S, S) normalised (evaluation: resized, then centre-cropped)."""
        x = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32)).unsqueeze(1)
        size = (self.image_size, self.image_size) if training else self.eval_resize or (self.image_size,) * 2
        x = torch.nn.functional.interpolate(x, size=size, mode="bilinear")
        return self.normalise((x if training else self._centre_crop(x)).repeat(1, 3, 1, 1))

    def image(self, path: str | Path, *, training: bool = False) -> torch.Tensor:
        """One image file → (3, H, W) as the model sees it in evaluation (``npc predict``), or in training."""
        image = _open_image(path)
        if self.kind == "digits":  # grey, 8x8 like sklearn's digits (bright ink on a dark ground)
            small = image.convert("L").resize((8, 8), _pil().Image.Resampling.BOX)
            return self.digits_batch(np.asarray(small, dtype=np.float32)[None] / 255.0, training=training)[0]
        height, width = (self.image_size, self.image_size)
        if not training and self.eval_resize is not None:
            height, width = self.eval_resize
        rgb = image.convert("RGB").resize((width, height), _pil().Image.Resampling.BILINEAR)
        x = torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1).float() / 255.0
        return self.normalise(x if training else self._centre_crop(x))


@dataclass
class DataBundle:
    splits: dict[str, Dataset]  # "train", "valid", "test" (those that exist)
    num_classes: int
    class_names: list[str]
    preprocess: Preprocess
    in_memory: bool  # tensors already in memory: loading needs no worker processes
    description: str
    notes: list[str]
    task: str = "classification"
    collate: Callable | None = field(default=None)  # DataLoader collate_fn; None: torch's default
    bad_samples: BadSamples | None = field(default=None)  # what the on_bad_sample policy did; None: built-in set
    keypoint_swap: tuple[int, ...] | None = field(default=None)  # pose: each keypoint's mirror twin (flips need it)


FORMATS_BY_TASK = {
    "classification": ("digits", "local", "image_folder"),
    "segmentation": ("shapes", "local"),
    "detection": ("shapes", "local", "coco"),
    "pose_estimation": ("stick_figures", "local"),
}


def build_data(
    config: dict[str, Any], splits: Sequence[str] = ("train", "valid"), *, task: str = "classification"
) -> DataBundle:
    """The datasets named in ``splits`` (``valid`` falls back to a fixed holdout of ``train``)."""
    kind = config["format"]
    if task not in FORMATS_BY_TASK:
        raise DataError(f"npc reads data for {', '.join(FORMATS_BY_TASK)}; not for {task}")
    if kind not in FORMATS_BY_TASK[task]:
        allowed = ", ".join(FORMATS_BY_TASK[task])
        raise DataError(f"data.format {kind!r} is not available for {task} (use one of: {allowed})")
    if isinstance(config.get("id_mapping"), str) and task != "pose_estimation":  # pose reads its own file
        config = {**config, "id_mapping": _id_mapping_file(config)}
    if task == "segmentation":
        from ._data_segmentation import build_segmentation

        bundle = build_segmentation(config, splits)
    elif task == "detection":
        from ._data_detection import build_detection

        bundle = build_detection(config, splits)
    elif task == "pose_estimation":
        from ._data_pose import build_pose

        bundle = build_pose(config, splits)
    elif kind == "digits":
        bundle = _digits(config, splits)
    elif kind == "local":
        bundle = _local_csv(config, splits)
    else:
        bundle = _image_folder(config, splits)
    expected = config.get("num_classes")
    if expected is not None and expected != bundle.num_classes:
        raise DataError(f"data.num_classes is {expected}, but the data has {bundle.num_classes} classes")
    return bundle


# --- digits ----------------------------------------------------------------------------------------------------


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


# --- files -------------------------------------------------------------------------------------------------------


class ImageFiles(Dataset):
    """(path, class index) pairs decoded lazily; a file that will not decode raises DataError naming it. A
    training split's images are prepared for training, the others' for evaluation (see :class:`Preprocess`)."""

    def __init__(self, items: list[tuple[Path, int]], preprocess: Preprocess, *, training: bool = False) -> None:
        self.items, self.preprocess, self.training = items, preprocess, training

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.items[index]
        return self.preprocess.image(path, training=self.training), label


def _pil():
    try:
        import PIL.Image  # noqa: F401
    except ImportError:  # pragma: no cover - Pillow is a runtime dependency
        raise DataError("reading image files needs Pillow: pip install pillow", EXIT_USAGE) from None
    import PIL

    return PIL


def _open_image(path: str | Path):
    pil = _pil()
    path = Path(path)
    if not path.is_file():  # deleted since the up-front check, or never there (predict)
        raise UnreadableFileError(f"{path}: image not found", EXIT_USAGE, path=path, reason="missing image")
    try:
        with pil.Image.open(path) as image:
            image.load()  # decode now, so a truncated or corrupt file fails here and names itself
            return image.copy()
    except (OSError, SyntaxError, ValueError, pil.Image.DecompressionBombError) as exc:
        raise UnreadableFileError(f"{path}: cannot decode image ({exc})", path=path) from None


def check_image(path: Path) -> tuple[int, int]:
    """(width, height) of an image file that exists and whose header and structure read; else :class:`SampleError`.

    Cheap: ``verify()`` walks the file (PNG chunk checksums, ...) without decoding pixels. A JPEG without its end
    marker (cut off in a copy) is decoded in full, as a truncated file would still pass ``verify()``.
    """
    pil = _pil()
    if not path.is_file():
        raise SampleError("missing image", path, f"{path}: image not found", EXIT_USAGE)
    try:
        with pil.Image.open(path) as image:
            size, kind = image.size, image.format
            image.verify()
        if kind == "JPEG" and not _ends_with_jpeg_marker(path):
            with pil.Image.open(path) as image:
                image.load()
    except (OSError, SyntaxError, ValueError, pil.Image.DecompressionBombError) as exc:
        detail = "not an image format Pillow reads" if isinstance(exc, pil.UnidentifiedImageError) else exc
        raise SampleError("corrupt image", path, f"{path}: cannot decode image ({detail})") from None
    return size


def _ends_with_jpeg_marker(path: Path) -> bool:
    with path.open("rb") as handle:
        handle.seek(-2, 2)
        return handle.read() == b"\xff\xd9"


def _rgb_preprocess(config: dict[str, Any]) -> Preprocess:
    return Preprocess.of("rgb", config, config["mean"], config["std"])


def _root(config: dict[str, Any]) -> Path:
    root = Path((config.get("path") or {}).get("root") or ".").expanduser()  # the peer's recipes write ~/data/...
    if not root.is_dir():
        raise DataError(f"data.path.root: folder not found: {root} (relative paths start at the current folder)", 2)
    return root


def _split_paths(config: dict[str, Any], split: str) -> tuple[str | None, str | None]:
    node = (config.get("path") or {}).get(split) or {}
    return node.get("image"), node.get("label")


def _id_mapping_file(config: dict[str, Any]) -> Any:
    """NetsPresso's ``id_mapping: id_mapping.json``: the list (or mapping) of class names in a JSON file under
    ``path.root``."""
    mapping = read_json(_root(config) / config["id_mapping"], "data.id_mapping")
    if not isinstance(mapping, (list, dict)) or not mapping:
        raise DataError(f"{_root(config) / config['id_mapping']}: data.id_mapping must hold a list or mapping of names")
    return mapping


def read_json(path: Path, what: str) -> Any:
    """The JSON document at ``path``; an unreadable or malformed file is a DataError naming it and ``what`` it is."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataError(f"{path}: cannot read {what} ({exc.strerror or exc})", EXIT_USAGE) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: {what} is not JSON ({exc})") from None


def split_sources(config: dict[str, Any], split: str, labels: str) -> tuple[str, str] | None:
    """The split's (image folder, label path) as written, both required; None for a valid split the data does
    not name (it is then held out of train). ``labels`` says what the label path holds, for the error."""
    image_dir, label = _split_paths(config, split)
    if image_dir is None and label is None and split == "valid":
        return None
    if image_dir is None or label is None:
        missing = "image" if image_dir is None else "label"
        wanted = "a folder of images" if missing == "image" else labels
        raise DataError(f"data.path.{split}.{missing}: required ({wanted})", EXIT_USAGE)
    return image_dir, label


def split_folders(config: dict[str, Any], root: Path, split: str, labels: str) -> tuple[Path, Path] | None:
    """:func:`split_sources` for layouts whose labels are a folder too: both folders, checked to exist."""
    sources = split_sources(config, split, labels)
    if sources is None:
        return None
    image_dir, label_dir = sources
    return _folder(root, image_dir, f"data.path.{split}.image"), _folder(root, label_dir, f"data.path.{split}.label")


def _folder(root: Path, relative: str, what: str) -> Path:
    folder = root / relative
    if not folder.is_dir():
        raise DataError(f"{what}: folder not found: {folder}", EXIT_USAGE)
    return folder


def _holdout(dataset: Dataset, notes: list[str], source: str) -> tuple[Dataset, Dataset]:
    count = len(dataset)
    order = np.random.RandomState(SPLIT_SEED).permutation(count)
    n_valid = max(1, int(round(count * HOLDOUT_FRACTION)))
    if count < 2:
        raise DataError(f"{source}: too few samples ({count}) to hold out a validation split")
    notes.append(f"no valid split given: holding out {n_valid} of {count} train samples (fixed split)")
    return Subset(dataset, sorted(order[n_valid:].tolist())), Subset(dataset, sorted(order[:n_valid].tolist()))


def _finish(
    config: dict[str, Any],
    splits: Sequence[str],
    per_split: dict[str, list[tuple[Path, int]]],
    names: list[str],
    origin: dict[str, str],
    bad: BadSamples,
) -> DataBundle:
    preprocess = _rgb_preprocess(config)
    notes = bad.notes()
    datasets: dict[str, Dataset] = {}
    for split, items in per_split.items():
        bad.require(split, items, origin[split])
        datasets[split] = ImageFiles(items, preprocess, training=split == "train")
    if "valid" in splits and "valid" not in datasets:
        if "train" not in datasets:
            raise DataError("data.path.valid: no valid split given (and no train split to hold one out from)", 2)
        datasets["train"], held = _holdout(datasets["train"], notes, origin["train"])
        datasets["valid"] = Subset(ImageFiles(per_split["train"], preprocess), held.indices)  # evaluated as valid
    datasets = {split: datasets[split] for split in splits}
    sizes = ", ".join(f"{k} {len(v)}" for k, v in datasets.items())
    description = f"{config.get('name') or config['format']} ({config['format']}, {len(names)} classes; {sizes})"
    return DataBundle(datasets, len(names), names, preprocess, False, description, notes, bad_samples=bad)


def _local_csv(config: dict[str, Any], splits: Sequence[str]) -> DataBundle:
    """NetsPresso's local layout: one image folder and one ``image_id,class`` CSV per split."""
    root = _root(config)
    keys, names = _id_mapping(config.get("id_mapping"))
    rows: dict[str, list[tuple[Path, str, str]]] = {}  # split -> (image, class text, "csv:line")
    origin: dict[str, str] = {}
    for split in ("train", "valid", "test"):  # all of them: the class count must not depend on the command
        image_dir, label_file = _split_paths(config, split)
        if image_dir is None and label_file is None:
            if split in splits and split != "valid":  # a missing valid split is held out of train
                raise DataError(f"data.path.{split}: no {split} images/labels given", EXIT_USAGE)
            continue
        if image_dir is None or label_file is None:
            missing = "image" if image_dir is None else "label"
            raise DataError(f"data.path.{split}.{missing}: required with the local (CSV) layout", EXIT_USAGE)
        folder = _folder(root, image_dir, f"data.path.{split}.image")
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
            raise SampleError("missing image", where, f"{where}: image not found: {image}", EXIT_USAGE)
        check_image(image)
        return image, label

    bad = BadSamples.from_config(config)
    per_split = {split: bad.keep(split, split_rows, check) for split, split_rows in rows.items()}
    return _finish(config, splits, per_split, names, origin, bad)


def _read_csv(csv_path: Path, folder: Path) -> list[tuple[Path, str, str]]:
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise DataError(f"{csv_path}: cannot read label file ({exc.strerror or exc})", EXIT_USAGE) from None
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
    root = _root(config)
    folders: dict[str, Path] = {}
    wanted = list(dict.fromkeys([*splits, "train"]))  # train fixes the class list (and a valid holdout)
    for split in wanted:
        image_dir, label = _split_paths(config, split)
        if label is not None:
            raise DataError(f"data.path.{split}.label: the image_folder layout takes its labels from sub-folders", 2)
        if image_dir is None:
            if split in ("train", "test") and split in splits:
                raise DataError(f"data.path.{split}.image: required", EXIT_USAGE)
            continue
        folders[split] = _folder(root, image_dir, f"data.path.{split}.image")
    if not folders:
        raise DataError("data.path.train.image: required (the folder with one sub-folder per class)", EXIT_USAGE)
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
    return _finish(config, splits, per_split, names, origin, bad)
