"""Training-time augmentation: the resolved ``augmentation.train`` list (NetsPresso Trainer's transform names and
keys, see ``_config.resolve_augmentation``) → one kornia ``AugmentationSequential`` applied to whole batches on
the training device, moving segmentation masks and detection boxes with the image.

What enters: a batch as the data pipeline makes it, normalised images ``(B, 3, S, S)`` and the task's target
(class indices, ``(B, S, S)`` masks, or a list of ``{"boxes": (K, 4) x1 y1 x2 y2 pixels, "labels": (K,)}``).
What leaves: the same structures, augmented. Images are un-normalised to 0..1 for the transforms (colour jitter
and pixel fill values need real pixel values) and normalised again after.

Every batch draws its parameters from a seed derived from (training seed, rank, epoch, step) inside
``torch.random.fork_rng``: a resumed run sees the same augmentations as an uninterrupted one, and the global
random state the rest of training uses is left as it was. Evaluation is never augmented.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ._data import Preprocess
from ._data_segmentation import IGNORE_INDEX
from ._errors import RunError

__all__ = ["Augmentation", "build_augmentation"]

BOX_KEEP_FRACTION = 0.2  # a box survives a crop while this much of its area stays visible (NetsPresso's value)
MASK_SHIFT = 2  # masks travel as label + 2: the fill that pads and crops bring in (0..1) reads as "no label"
PIXEL_MAX = 255.0  # NetsPresso's fill/value keys are 0..255 pixel values; npc's images are 0..1 here
PREPROCESSING = ("totensor", "normalize")  # npc's data pipeline does these already; they are checked, not run
SEED_STRIDE = 1_000_003  # a prime: (seed, rank, epoch, step) → one integer without collisions in practice


@dataclass(frozen=True)
class Augmentation:
    """Call with a batch on its device; returns the augmented batch."""

    pipeline: Any  # kornia.augmentation.AugmentationSequential
    task: str
    mean: torch.Tensor  # (1, 3, 1, 1), the data's normalisation
    std: torch.Tensor
    seed: int
    rank: int
    names: tuple[str, ...]

    @property
    def note(self) -> str:
        return f"augmenting each training batch (kornia): {', '.join(self.names)}"

    def __call__(self, images: torch.Tensor, target: Any, *, epoch: int, step: int) -> tuple[torch.Tensor, Any]:
        devices = [images.device] if images.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.step_seed(epoch, step))
            return self._apply(images, target)

    def step_seed(self, epoch: int, step: int) -> int:
        value = 0
        for part in (self.seed, self.rank, epoch, step):
            value = (value * SEED_STRIDE + part) % 2**63
        return value

    def _apply(self, images: torch.Tensor, target: Any) -> tuple[torch.Tensor, Any]:
        mean, std = self.mean.to(images.device, images.dtype), self.std.to(images.device, images.dtype)
        pixels = images * std + mean
        if self.task == "segmentation":
            pixels, shifted = self.pipeline(pixels, (target.unsqueeze(1) + MASK_SHIFT).to(pixels.dtype))
            target = _unshift_masks(shifted[:, 0])
        elif self.task == "detection":
            boxes, present = _pad_boxes(target, pixels)
            pixels, moved = self.pipeline(pixels, boxes)
            target = _kept_boxes(target, moved, present, pixels.shape[-2:])
        else:
            pixels = self.pipeline(pixels)
        return (pixels - mean) / std, target


def build_augmentation(
    augmentation: dict[str, Any] | None, *, task: str, preprocess: Preprocess, seed: int, rank: int = 0
) -> Augmentation | None:
    """The runnable pipeline of ``augmentation["train"]``; None when it has no transform to run."""
    if not augmentation:
        return None
    for phase in ("train", "inference"):
        for index, transform in enumerate(augmentation.get(phase) or []):
            if transform["name"] == "normalize":
                _check_normalisation(transform, preprocess, f"augmentation.{phase}[{index}]")
    modules, height, width = [], preprocess.image_size, preprocess.image_size
    for transform in augmentation.get("train") or []:
        modules += _kornia_modules(transform, (height, width))
        if transform["name"] in ("randomresizedcrop", "randomcrop", "centercrop", "resize"):
            height, width = transform["size"]
        elif transform["name"] == "pad":
            height, width = max(height, transform["size"][0]), max(width, transform["size"][1])
    if not modules:
        return None
    import kornia.augmentation as K

    keys = {"classification": ["input"], "segmentation": ["input", "mask"], "detection": ["input", "bbox_xyxy"]}
    pipeline = K.AugmentationSequential(*modules, data_keys=keys[task])
    names = tuple(t["name"] for t in augmentation["train"] if t["name"] not in PREPROCESSING)
    mean = torch.tensor(preprocess.mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(preprocess.std, dtype=torch.float32).view(1, -1, 1, 1)
    return Augmentation(pipeline, task, mean, std, seed, rank, names)


def _kornia_modules(transform: dict[str, Any], current: tuple[int, int]) -> list[Any]:
    """One NetsPresso transform → the kornia modules that do the same (torchvision semantics, as the peer's);
    ``current`` is the (height, width) of the images it receives."""
    import kornia.augmentation as K

    name = transform["name"]
    size = tuple(transform.get("size") or ())
    if name == "randomhorizontalflip":
        return [K.RandomHorizontalFlip(p=transform["p"])]
    if name == "randomverticalflip":
        return [K.RandomVerticalFlip(p=transform["p"])]
    if name == "colorjitter":  # kornia's ColorJitter uses torchvision's formulas and a random order per call
        jitter = {key: _pair_or_number(transform[key]) for key in ("brightness", "contrast", "saturation", "hue")}
        return [K.ColorJitter(**jitter, p=transform["p"])]
    if name == "randomresizedcrop":
        return [
            K.RandomResizedCrop(
                size,
                scale=tuple(transform["scale"]),
                ratio=tuple(transform["ratio"]),
                resample=transform["interpolation"].upper(),
                p=1.0,
            )
        ]
    if name == "randomcrop":  # NetsPresso pads right and bottom (with fill) when the crop is larger, then crops
        return [*_pad_right_bottom(current, size, transform["fill"]), K.RandomCrop(size, p=1.0)]
    if name == "centercrop":
        return [K.CenterCrop(size, p=1.0)]
    if name == "resize":
        return [K.Resize(size, resample=transform["interpolation"].upper(), antialias=True)]  # as PIL's
    if name == "pad":
        return _pad_right_bottom(current, size, transform["fill"])
    if name == "randomerasing":  # an intensity step: masks and boxes stay (NetsPresso's is not object-aware either)
        return [
            _image_only_erasing(
                scale=tuple(transform["scale"]),
                ratio=tuple(transform["ratio"]),
                value=transform["value"] / PIXEL_MAX,
                p=transform["p"],
            )
        ]
    if name in PREPROCESSING:
        return []
    raise RunError(f"augmentation: no kornia mapping for {name!r}")  # the schema admits only mapped names


def _image_only_erasing(**kwargs: Any) -> Any:
    """kornia's RandomErasing, except that masks keep their labels under the erased patch (kornia zeroes them;
    NetsPresso erases the image only)."""
    import kornia.augmentation as K

    class ImageOnlyErasing(K.RandomErasing):
        def apply_transform_mask(self, input, params, flags, transform=None):  # noqa: A002 - kornia's signature
            return input

    return ImageOnlyErasing(**kwargs)


def _pad_right_bottom(current: tuple[int, int], size: tuple[int, ...], fill: int) -> list[Any]:
    """Pad right and bottom up to ``size`` where the image is smaller (NetsPresso's Pad); nothing if it is not."""
    import kornia.augmentation as K

    target = (max(current[0], size[0]), max(current[1], size[1]))
    if target == tuple(current):
        return []
    return [K.PadTo(target, pad_mode="constant", pad_value=fill / PIXEL_MAX)]


def _pair_or_number(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else float(value)


def _check_normalisation(transform: dict[str, Any], preprocess: Preprocess, where: str) -> None:
    for key, used in (("mean", preprocess.mean), ("std", preprocess.std)):
        given = transform.get(key)
        if given is not None and not torch.allclose(torch.tensor(given), torch.tensor(used), atol=1e-6):
            raise RunError(
                f"{where} (normalize): {key} {given} differs from the {key} npc normalises this data with "
                f"({list(used)}); set data.{key} to it, or drop the key"
            )


def _unshift_masks(shifted: torch.Tensor) -> torch.Tensor:
    """Back to class indices; pixels that came from outside the image (fill below MASK_SHIFT) are ignored."""
    labels = shifted.round().long() - MASK_SHIFT
    return torch.where(labels < 0, torch.full_like(labels, IGNORE_INDEX), labels)


def _pad_boxes(targets: list[dict[str, torch.Tensor]], images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, Kmax, 4) boxes in kornia's inclusive corner convention (x2 - 1, y2 - 1: the last pixel covered, so a
    flip maps a box exactly as the pixels under it), and (B, Kmax) which of them are real."""
    most = max((len(t["boxes"]) for t in targets), default=0)
    boxes = images.new_zeros((len(targets), most, 4))
    present = torch.zeros((len(targets), most), dtype=torch.bool, device=images.device)
    for index, target in enumerate(targets):
        count = len(target["boxes"])
        boxes[index, :count] = target["boxes"].to(boxes.dtype) - boxes.new_tensor([0.0, 0.0, 1.0, 1.0])
        present[index, :count] = True
    return boxes, present


def _kept_boxes(
    targets: list[dict[str, torch.Tensor]], moved: torch.Tensor, present: torch.Tensor, size: torch.Size
) -> list[dict[str, torch.Tensor]]:
    """Boxes back in npc's convention, clipped to the image; a box with less than BOX_KEEP_FRACTION of its area
    left inside is dropped (with its label and any other per-box entry)."""
    height, width = int(size[0]), int(size[1])
    boxes = moved + moved.new_tensor([0.0, 0.0, 1.0, 1.0])
    limit = moved.new_tensor([width, height, width, height])
    clipped = torch.minimum(boxes.clamp(min=0), limit)
    area = (boxes[..., 2] - boxes[..., 0]).clamp(min=0) * (boxes[..., 3] - boxes[..., 1]).clamp(min=0)
    visible = (clipped[..., 2] - clipped[..., 0]).clamp(min=0) * (clipped[..., 3] - clipped[..., 1]).clamp(min=0)
    keep = present & (visible > 0) & (visible >= BOX_KEEP_FRACTION * area)
    out = []
    for index, target in enumerate(targets):
        count = len(target["boxes"])
        kept = keep[index, :count]
        entry = {k: v[kept] if v.ndim and len(v) == count else v for k, v in target.items()}
        entry["boxes"] = clipped[index, :count][kept].to(target["boxes"].dtype)
        out.append(entry)
    return out
