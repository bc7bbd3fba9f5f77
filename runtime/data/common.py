"""What the per-task data modules share: :class:`Preprocess`, :class:`DataBundle`, image checks, split folders.

Every problem the user can fix (a missing folder, an unreadable CSV, an empty split) raises :class:`DataError`
naming the path (and CSV line). A bad *sample* (a missing or corrupt image, a label outside the class list) is
checked for when the data is built (:func:`check_image` opens each header) and goes to the
:class:`~.bad_samples.BadSamples` policy: stop (default) or skip and count. The class list comes from the data,
never from the spec. How a sample becomes a tensor is a :class:`Preprocess`, stored in the weights'
metadata so ``npc predict`` prepares an image exactly as training did.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from ...schemas.run import EVALUATION_KEY
from ..errors import UNUSABLE, DataError
from .bad_samples import BadSamples, SampleError, UnreadableFileError

__all__ = ["IMAGE_SUFFIXES", "DataBundle", "Preprocess", "check_image", "holdout_split", "open_image", "pil_module"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
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
        image = open_image(path)
        if self.kind == "digits":  # grey, 8x8 like sklearn's digits (bright ink on a dark ground)
            small = image.convert("L").resize((8, 8), pil_module().Image.Resampling.BOX)
            return self.digits_batch(np.asarray(small, dtype=np.float32)[None] / 255.0, training=training)[0]
        return self.rgb(image, training=training)

    def rgb(self, image: Any, *, training: bool = False) -> torch.Tensor:
        """A decoded PIL image → (3, H, W): resized bilinearly (evaluation: then centre-cropped), normalised."""
        height, width = (self.image_size, self.image_size)
        if not training and self.eval_resize is not None:
            height, width = self.eval_resize
        rgb = image.convert("RGB").resize((width, height), pil_module().Image.Resampling.BILINEAR)
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


def pil_module():
    try:
        import PIL.Image  # noqa: F401
    except ImportError:  # pragma: no cover - Pillow is a runtime dependency
        raise DataError("reading image files needs Pillow: pip install pillow", UNUSABLE) from None
    import PIL

    return PIL


def open_image(path: str | Path):
    pil = pil_module()
    path = Path(path)
    if not path.is_file():  # deleted since the up-front check, or never there (predict)
        raise UnreadableFileError(f"{path}: image not found", UNUSABLE, path=path, reason="missing image")
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
    pil = pil_module()
    if not path.is_file():
        raise SampleError("missing image", path, f"{path}: image not found", UNUSABLE)
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


def data_root(config: dict[str, Any]) -> Path:
    root = Path((config.get("path") or {}).get("root") or ".").expanduser()  # the peer's recipes write ~/data/...
    if not root.is_dir():
        raise DataError(
            f"data.path.root: folder not found: {root} (relative paths start at the current folder)", UNUSABLE
        )
    return root


def split_paths(config: dict[str, Any], split: str) -> tuple[str | None, str | None]:
    node = (config.get("path") or {}).get(split) or {}
    return node.get("image"), node.get("label")


def read_id_mapping_file(config: dict[str, Any]) -> Any:
    """NetsPresso's ``id_mapping: id_mapping.json``: the list (or mapping) of class names in a JSON file under
    ``path.root``."""
    mapping = read_json(data_root(config) / config["id_mapping"], "data.id_mapping")
    if not isinstance(mapping, (list, dict)) or not mapping:
        raise DataError(
            f"{data_root(config) / config['id_mapping']}: data.id_mapping must hold a list or mapping of names"
        )
    return mapping


def read_json(path: Path, what: str) -> Any:
    """The JSON document at ``path``; an unreadable or malformed file is a DataError naming it and ``what`` it is."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataError(f"{path}: cannot read {what} ({exc.strerror or exc})", UNUSABLE) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: {what} is not JSON ({exc})") from None


def split_sources(config: dict[str, Any], split: str, labels: str) -> tuple[str, str] | None:
    """The split's (image folder, label path) as written, both required; None for a valid split the data does
    not name (it is then held out of train). ``labels`` says what the label path holds, for the error."""
    image_dir, label = split_paths(config, split)
    if image_dir is None and label is None and split == "valid":
        return None
    if image_dir is None or label is None:
        missing = "image" if image_dir is None else "label"
        wanted = "a folder of images" if missing == "image" else labels
        raise DataError(f"data.path.{split}.{missing}: required ({wanted})", UNUSABLE)
    return image_dir, label


def split_folders(config: dict[str, Any], root: Path, split: str, labels: str) -> tuple[Path, Path] | None:
    """:func:`split_sources` for layouts whose labels are a folder too: both folders, checked to exist."""
    sources = split_sources(config, split, labels)
    if sources is None:
        return None
    image_dir, label_dir = sources
    return require_folder(root, image_dir, f"data.path.{split}.image"), require_folder(
        root, label_dir, f"data.path.{split}.label"
    )


def require_folder(root: Path, relative: str, what: str) -> Path:
    folder = root / relative
    if not folder.is_dir():
        raise DataError(f"{what}: folder not found: {folder}", UNUSABLE)
    return folder


def holdout_split(dataset: Dataset, notes: list[str], source: str) -> tuple[Dataset, Dataset]:
    count = len(dataset)
    order = np.random.RandomState(SPLIT_SEED).permutation(count)
    n_valid = max(1, int(round(count * HOLDOUT_FRACTION)))
    if count < 2:
        raise DataError(f"{source}: too few samples ({count}) to hold out a validation split")
    notes.append(f"no valid split given: holding out {n_valid} of {count} train samples (fixed split)")
    return Subset(dataset, sorted(order[n_valid:].tolist())), Subset(dataset, sorted(order[:n_valid].tolist()))


def finish_bundle(
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
            raise DataError("data.path.valid: no valid split given (and no train split to hold one out from)", UNUSABLE)
        datasets["train"], held = holdout_split(datasets["train"], notes, origin["train"])
        datasets["valid"] = Subset(ImageFiles(per_split["train"], preprocess), held.indices)  # evaluated as valid
    datasets = {split: datasets[split] for split in splits}
    sizes = ", ".join(f"{k} {len(v)}" for k, v in datasets.items())
    description = f"{config.get('name') or config['format']} ({config['format']}, {len(names)} classes; {sizes})"
    return DataBundle(datasets, len(names), names, preprocess, False, description, notes, bad_samples=bad)
