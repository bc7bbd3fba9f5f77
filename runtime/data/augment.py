"""Training-time augmentation: the resolved ``augmentation.train`` list (NetsPresso Trainer's transform names and
keys, see ``_config.resolve_augmentation``) → stages applied in order to whole batches (on a GPU in the training
loop, on the device; on a CPU where the DataLoader makes the batch, see ``.batches``):
runs of kornia transforms (one ``AugmentationSequential`` each, moving segmentation masks, detection boxes and pose
keypoints with the image) and npc's own batch versions of NetsPresso's ``mosaicdetection``, ``mixing``,
``hsvjitter`` (YOLOX's HSV gains), ``randomresize`` (a new square size per batch: multi-scale training),
``randomzoomout`` (each sample shrunk onto a filled canvas of its own size), ``randomioucrop`` (SSD's IoU-bounded
crop, back to the batch's size), ``randomresize2`` (a random scale per sample, aspect kept, cropped or padded back to
the batch's size), ``trivialaugmentwide`` and ``autoaugment`` (torchvision's op spaces and kornia's policy tables,
an op drawn per sample and run with kornia on the samples that drew it) and ``posetopdownaffine`` (the random part of
the top-down pose crop: scale, shift and rotation of each person's crop, keypoints moved with it).

What enters: a batch as the data pipeline makes it, normalised images ``(B, 3, H, W)`` and the task's target
(class indices, ``(B, H, W)`` masks, a list of ``{"boxes": (K, 4) x1 y1 x2 y2 pixels, "labels": (K,)}``, or pose
keypoints ``(B, K, 3)`` = x, y in input pixels and visible). What leaves: the same structures, augmented (after
``mixing``, classification targets may be ``(B, classes)`` probabilities). Images are un-normalised to 0..1 for the
transforms (colour jitter and pixel fill values need real pixel values) and normalised again after.

Every batch draws its parameters from a seed derived from (training seed, rank, epoch, step) inside
``torch.random.fork_rng``: a resumed run sees the same augmentations as an uninterrupted one, and the global
random state the rest of training uses is left as it was. Evaluation is never augmented.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ...schemas.run import BATCH_TRANSFORMS
from ..errors import RunError
from .common import Preprocess
from .pose import PosePreprocess
from .segmentation import IGNORE_INDEX

__all__ = ["Augmentation", "build_augmentation"]

BOX_KEEP_FRACTION = 0.2  # a box survives a crop while this much of its area stays visible (NetsPresso's value)
MASK_SHIFT = 2  # masks travel as label + 2: the fill that pads and crops bring in (0..1) reads as "no label"
PIXEL_MAX = 255.0  # NetsPresso's fill/value keys are 0..255 pixel values; npc's images are 0..1 here
PREPROCESSING = ("totensor", "normalize")  # npc's data pipeline does these already; they are checked, not run
SEED_STRIDE = 1_000_003  # a prime: (seed, rank, epoch, step) → one integer without collisions in practice
FLIPS = ("randomhorizontalflip", "randomverticalflip")
BATCH_STEPS = BATCH_TRANSFORMS  # npc's own stages, not kornia modules (the schema's list)
MAX_IOU_ROUNDS = 100  # randomioucrop: IoU choices drawn before a sample is left as it is (the peer loops forever)
HUE_DEGREES_PER_STEP = 2.0  # OpenCV's 8-bit hue (the peer's HSVJitter) counts 0..180 for 0..360 degrees
MIN_MOSAIC_BOX = 1.0  # pixels: narrower or flatter boxes are dropped after a mosaic (YOLOX's rule)
DATA_KEYS = {
    "classification": ["input"],
    "segmentation": ["input", "mask"],
    "detection": ["input", "bbox_xyxy"],
    "pose_estimation": ["input", "keypoints"],
}

Stage = Callable[[torch.Tensor, Any, int], tuple[torch.Tensor, Any]]  # (pixels 0..1, target, epoch) → same


@dataclass(frozen=True)
class Augmentation:
    """Call with a batch (on the device it is augmented on); returns the augmented batch."""

    stages: tuple[Stage, ...]
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
            return self._apply(images, target, epoch)

    def step_seed(self, epoch: int, step: int) -> int:
        value = 0
        for part in (self.seed, self.rank, epoch, step):
            value = (value * SEED_STRIDE + part) % 2**63
        return value

    def _apply(self, images: torch.Tensor, target: Any, epoch: int) -> tuple[torch.Tensor, Any]:
        mean, std = self.mean.to(images.device, images.dtype), self.std.to(images.device, images.dtype)
        pixels = images * std + mean
        for stage in self.stages:
            pixels, target = stage(pixels, target, epoch)
        return (pixels - mean) / std, target


def build_augmentation(
    augmentation: dict[str, Any] | None,
    *,
    task: str,
    preprocess: Preprocess | PosePreprocess,
    seed: int,
    rank: int = 0,
    epochs: int | None = None,
    num_classes: int | None = None,
    keypoint_swap: tuple[int, ...] | None = None,
) -> Augmentation | None:
    """The runnable stages of ``augmentation["train"]``; None when it has no transform to run.

    ``preprocess`` is the data's (a ``Preprocess`` or a pose ``PosePreprocess``); ``epochs`` the run's length
    (``mosaicdetection``'s ``mosaic_off_duration`` counts back from it); ``num_classes`` what ``mixing`` spreads
    its targets over; ``keypoint_swap`` each pose keypoint's mirror twin (flips in pose need it).
    """
    if not augmentation:
        return None
    for phase in ("train", "inference"):
        for index, transform in enumerate(augmentation.get(phase) or []):
            if transform["name"] == "normalize":
                _check_normalisation(transform, preprocess, f"augmentation.{phase}[{index}]")
    stages: list[Stage] = []
    modules: list[Any] = []
    height, width = _input_size(preprocess)
    sure = True  # whether every batch is (height, width) here: npc's batch steps may change sizes per batch
    for index, transform in enumerate(augmentation.get("train") or []):
        name, where = transform["name"], f"augmentation.train[{index}] ({transform['name']})"
        if name in BATCH_STEPS:  # batch steps of npc's own, between runs of kornia modules
            stages += [_KorniaStage.of(modules, task, keypoint_swap)] if modules else []
            modules, sure = [], False
            stages.append(
                _batch_step(transform, where, epochs=epochs, num_classes=num_classes, task=task, swap=keypoint_swap)
            )
        else:
            if task == "pose_estimation" and name in FLIPS:
                _check_swap(keypoint_swap, where)
            modules += _kornia_modules(transform, (height, width), sure=sure)
        if name in ("randomresizedcrop", "randomcrop", "centercrop", "resize"):
            height, width = transform["size"]
        elif name == "pad":
            height, width = max(height, transform["size"][0]), max(width, transform["size"][1])
        elif name == "randomresize":  # a different size per batch; base_size in the middle of the range
            height, width = transform["base_size"]
    stages += [_KorniaStage.of(modules, task, keypoint_swap)] if modules else []
    if not stages:
        return None
    names = tuple(t["name"] for t in augmentation["train"] if t["name"] not in PREPROCESSING)
    mean = torch.tensor(preprocess.mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(preprocess.std, dtype=torch.float32).view(1, -1, 1, 1)
    return Augmentation(tuple(stages), mean, std, seed, rank, names)


def _input_size(preprocess: Preprocess | PosePreprocess) -> tuple[int, int]:
    if isinstance(preprocess, PosePreprocess):  # pose inputs may be oblong
        return preprocess.height, preprocess.width
    return preprocess.image_size, preprocess.image_size


def _check_swap(keypoint_swap: tuple[int, ...] | None, where: str) -> None:
    if keypoint_swap is None:
        raise RunError(
            f"{where}: a flip turns a person's left side into their right, so the keypoints must trade places; "
            "give each keypoint its mirror twin in data.id_mapping as {name: ..., swap: ...} entries (a centre "
            "keypoint names itself), or drop the flip"
        )


def _batch_step(
    transform: dict[str, Any],
    where: str,
    *,
    epochs: int | None,
    num_classes: int | None,
    task: str,
    swap: tuple[int, ...] | None,
) -> Stage:
    if transform["name"] == "mosaicdetection":
        return _Mosaic.of(transform, epochs)
    if transform["name"] == "hsvjitter":
        return _HSVJitter(transform["h_mag"], transform["s_mag"], transform["v_mag"])
    if transform["name"] == "randomresize":
        return _RandomResize.of(transform, task, swap)
    if transform["name"] == "randomzoomout":
        return _ZoomOut(transform["fill"], tuple(transform["side_range"]), transform["p"], task)
    if transform["name"] == "randomioucrop":
        return _RandomIoUCrop.of(transform)
    if transform["name"] == "randomresize2":
        return _RandomResize2.of(transform, task)
    if transform["name"] in ("trivialaugmentwide", "autoaugment"):
        return _AutoAugment.of(transform)
    if transform["name"] == "posetopdownaffine":
        return _PoseTopDownAffine.of(transform)
    if num_classes is None:
        raise RunError(f"{where}: mixing needs the number of classes")  # a caller's bug: _train passes it
    return _Mixing.of(transform, num_classes)


# --- kornia ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _KorniaStage:
    """One ``AugmentationSequential`` with the task's data keys; the target moves with the image."""

    pipeline: Any  # kornia.augmentation.AugmentationSequential
    task: str
    keypoint_swap: tuple[int, ...] | None

    @classmethod
    def of(cls, modules: list[Any], task: str, keypoint_swap: tuple[int, ...] | None) -> _KorniaStage:
        import kornia.augmentation as K

        return cls(K.AugmentationSequential(*modules, data_keys=DATA_KEYS[task]), task, keypoint_swap)

    def __call__(self, pixels: torch.Tensor, target: Any, epoch: int) -> tuple[torch.Tensor, Any]:
        if self.task == "segmentation":
            pixels, shifted = self.pipeline(pixels, (target.unsqueeze(1) + MASK_SHIFT).to(pixels.dtype))
            return pixels, _unshift_masks(shifted[:, 0])
        if self.task == "detection":
            boxes, present = _pad_boxes(target, pixels)
            pixels, moved = self.pipeline(pixels, boxes)
            return pixels, _kept_boxes(target, moved, present, pixels.shape[-2:])
        if self.task == "pose_estimation":
            pixels, moved = self.pipeline(pixels, target[..., :2].to(pixels.dtype))
            return pixels, self._keypoints(moved, target, pixels.shape[-2:])
        return self.pipeline(pixels), target

    def _keypoints(self, moved: torch.Tensor, target: torch.Tensor, size: torch.Size) -> torch.Tensor:
        """(B, K, 3) again: mirrored samples' keypoints trade places with their twins (with their visibility), and
        keypoints the transforms moved off the image are no longer visible."""
        visible = target[..., 2].to(moved.dtype)
        if self.keypoint_swap is not None:
            twin = torch.tensor(self.keypoint_swap, device=moved.device)
            mirrored = self._mirrored(len(moved), moved.device)
            moved = torch.where(mirrored[:, None, None], moved[:, twin], moved)
            visible = torch.where(mirrored[:, None], visible[:, twin], visible)
        height, width = int(size[0]), int(size[1])
        x, y = moved[..., 0], moved[..., 1]  # pixel centres are integers: the image spans -0.5 .. side - 0.5
        inside = (x >= -0.5) & (x < width - 0.5) & (y >= -0.5) & (y < height - 0.5)
        return torch.cat([moved, (visible * inside)[..., None]], dim=-1).to(target.dtype)

    def _mirrored(self, count: int, device: torch.device) -> torch.Tensor:
        """Which samples the last call mirrored: the geometric transform kornia applied (its public
        ``transform_matrix``, (B, 3, 3) in pixels) reverses orientation, i.e. an odd number of flips (a
        horizontal plus a vertical flip is a half turn, which keeps left and right)."""
        matrix = self.pipeline.transform_matrix
        if matrix is None:  # no geometric transform ran
            return torch.zeros(count, dtype=torch.bool, device=device)
        return torch.linalg.det(matrix[:, :2, :2].double()).to(device) < 0


def _kornia_modules(transform: dict[str, Any], current: tuple[int, int], *, sure: bool = False) -> list[Any]:
    """One NetsPresso transform → the kornia modules that do the same (torchvision semantics, as the peer's);
    ``current`` is the (height, width) of the images it receives (every batch's, when ``sure``)."""
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
                align_corners=False,  # pixel centres, as PIL's resize (kornia's default True stretches to the corners)
                p=1.0,
            )
        ]
    if name == "randomcrop":  # NetsPresso pads right and bottom (with fill) when the crop is larger, then crops
        return [*_pad_right_bottom(current, size, transform["fill"]), K.RandomCrop(size, p=1.0)]
    if name == "centercrop":
        return [K.CenterCrop(size, p=1.0)]
    if sure and name in ("resize", "pad") and size == tuple(current):  # the images are this size already
        return []
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


def _check_normalisation(transform: dict[str, Any], preprocess: Preprocess | PosePreprocess, where: str) -> None:
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


# --- mosaicdetection -------------------------------------------------------------------------------------------


def _uniform(low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand(()))


def _spread(value: float | list[float], centre: float = 0.0) -> float:
    """NetsPresso's affine parameters: a number v draws from [centre - v, centre + v], a pair from [min, max]."""
    low, high = value if isinstance(value, list) else (centre - value, centre + value)
    return _uniform(low, high)


@dataclass(frozen=True)
class _Mosaic:
    """NetsPresso's ``mosaicdetection`` (YOLOX's mosaic) on a batch: with probability ``mosaic_prob`` a sample
    becomes a mosaic of itself and 3 random images of the same batch around a random centre of a canvas twice the
    image size, warped back to the image size by a random affine (rotation, scale, shear, shift), optionally
    blended half and half with another image of the batch (YOLOX's mixup). Boxes move, are clipped to the image,
    and are dropped when under a pixel wide or high."""

    params: dict[str, Any]
    epochs: int | None

    @classmethod
    def of(cls, transform: dict[str, Any], epochs: int | None) -> _Mosaic:
        return cls(dict(transform), epochs)

    def active(self, epoch: int) -> bool:
        """Off for the last ``mosaic_off_duration`` epochs (``epoch`` counts from 0), as YOLOX's no-aug epochs."""
        return self.epochs is None or self.params["mosaic_off_duration"] < self.epochs - epoch

    def __call__(self, pixels: torch.Tensor, target: list[dict[str, torch.Tensor]], epoch: int) -> tuple[Any, Any]:
        if not self.active(epoch):
            return pixels, target
        chosen = torch.nonzero(torch.rand(len(pixels)) < self.params["mosaic_prob"]).flatten().tolist()
        if not chosen:
            return pixels, target
        height, width = pixels.shape[-2:]
        canvases, entries = zip(*(self._canvas(pixels, target, index) for index in chosen), strict=True)
        matrices = torch.stack([self._affine(width, height) for _ in chosen]).to(pixels)
        from kornia.geometry.transform import warp_affine

        warped = warp_affine(  # one call for the batch: the per-sample work above is slicing only
            torch.stack(canvases), matrices, (height, width), padding_mode="fill", fill_value=self._fill(pixels)
        )
        out_pixels, out_target = pixels.clone(), list(target)
        for image, entry, matrix, index in zip(warped, entries, matrices, chosen, strict=True):
            entry = {"boxes": _warp_boxes(entry["boxes"], matrix, width, height), "labels": entry["labels"]}
            if (
                self.params["enable_mixup"]
                and len(entry["boxes"])
                and float(torch.rand(())) < self.params["mixup_prob"]
            ):
                image, entry = self._mixup(image, entry, pixels, target)
            out_pixels[index] = image
            out_target[index] = _without_slivers(entry)
        return out_pixels, out_target

    def _canvas(self, pixels: torch.Tensor, target: list[dict], index: int) -> tuple[torch.Tensor, dict]:
        """The (3, 2H, 2W) canvas of sample ``index`` and 3 random others around a random centre, with their boxes
        (clipped to the canvas)."""
        height, width = pixels.shape[-2:]
        centre_y = int(_uniform(0.5 * height, 1.5 * height))
        centre_x = int(_uniform(0.5 * width, 1.5 * width))
        sources = [index, *torch.randint(len(pixels), (3,)).tolist()]
        canvas = pixels.new_empty((3, 2 * height, 2 * width))
        canvas[:] = self._fill(pixels)[:, None, None]
        boxes, labels = [], []
        for quadrant, source in enumerate(sources):
            (x1, y1, x2, y2), (u1, v1, u2, v2) = _mosaic_placement(quadrant, centre_x, centre_y, width, height)
            canvas[:, y1:y2, x1:x2] = pixels[source, :, v1:v2, u1:u2]
            shift = pixels.new_tensor([x1 - u1, y1 - v1, x1 - u1, y1 - v1])
            boxes.append(target[source]["boxes"].to(pixels.dtype) + shift)
            labels.append(target[source]["labels"])
        limit = pixels.new_tensor([2 * width, 2 * height, 2 * width, 2 * height])
        moved = torch.minimum(torch.cat(boxes).clamp(min=0), limit)
        return canvas, {"boxes": moved, "labels": torch.cat(labels)}

    def _fill(self, pixels: torch.Tensor) -> torch.Tensor:
        return pixels.new_full((3,), self.params["fill"] / PIXEL_MAX)

    def _affine(self, width: int, height: int) -> torch.Tensor:
        """(2, 3) canvas → output pixels: rotation and scale about the canvas origin, shear, then a shift, drawn
        in NetsPresso's order (so the canvas's top-left image-sized window is what a unit transform keeps)."""
        angle = math.radians(_spread(self.params["degrees"]))
        scale = _spread(self.params["affine_scale"], centre=1.0)
        cos, sin = scale * math.cos(angle), scale * math.sin(angle)
        rotation = torch.tensor([[cos, sin], [-sin, cos]], dtype=torch.float64)  # cv2.getRotationMatrix2D's
        shear_x = math.tan(math.radians(_spread(self.params["shear"])))
        shear_y = math.tan(math.radians(_spread(self.params["shear"])))
        linear = torch.stack([rotation[0] + shear_y * rotation[1], rotation[1] + shear_x * rotation[0]])
        shift = torch.tensor(
            [[_spread(self.params["translate"]) * width], [_spread(self.params["translate"]) * height]],
            dtype=torch.float64,
        )
        return torch.cat([linear, shift], dim=1).float()

    def _mixup(self, image: torch.Tensor, entry: dict, pixels: torch.Tensor, target: list[dict]) -> tuple[Any, Any]:
        """YOLOX's mixup: a random image of the batch that has boxes, scaled by ``mixup_scale``, maybe mirrored,
        cropped at a random offset, and averaged with the mosaic; its boxes join the mosaic's."""
        height, width = pixels.shape[-2:]
        jitter = _uniform(*self.params["mixup_scale"])
        mirror = float(torch.rand(())) > 0.5
        candidates = [i for i, t in enumerate(target) if len(t["boxes"])]
        source = candidates[int(torch.randint(len(candidates), ()))]
        new_height, new_width = max(1, int(height * jitter)), max(1, int(width * jitter))
        other = F.interpolate(pixels[source][None], size=(new_height, new_width), mode="bilinear")[0]
        boxes = target[source]["boxes"].to(pixels.dtype) * pixels.new_tensor(
            [new_width / width, new_height / height, new_width / width, new_height / height]
        )
        if mirror:
            other = other.flip(-1)
            boxes = torch.stack([new_width - boxes[:, 2], boxes[:, 1], new_width - boxes[:, 0], boxes[:, 3]], dim=1)
        padded = other.new_zeros((3, max(new_height, height), max(new_width, width)))  # black, as YOLOX pads
        padded[:, :new_height, :new_width] = other
        y0 = int(torch.randint(padded.shape[1] - height, ())) if padded.shape[1] > height else 0
        x0 = int(torch.randint(padded.shape[2] - width, ())) if padded.shape[2] > width else 0
        crop = padded[:, y0 : y0 + height, x0 : x0 + width]
        boxes = boxes - boxes.new_tensor([x0, y0, x0, y0])
        limit = boxes.new_tensor([width, height, width, height])
        boxes = torch.minimum(boxes.clamp(min=0), limit)
        blended = 0.5 * image + 0.5 * crop
        merged = {
            "boxes": torch.cat([entry["boxes"], boxes]),
            "labels": torch.cat([entry["labels"], target[source]["labels"]]),
        }
        return blended, merged


def _mosaic_placement(
    quadrant: int, centre_x: int, centre_y: int, width: int, height: int
) -> tuple[tuple[int, int, int, int], tuple[int, int, int, int]]:
    """Where image ``quadrant`` (0 top left, 1 top right, 2 bottom left, 3 bottom right) of the mosaic lands on the
    (2H, 2W) canvas, touching the centre, and the part of the image that fits there: (x1, y1, x2, y2) each."""
    if quadrant == 0:
        x1, y1, x2, y2 = max(centre_x - width, 0), max(centre_y - height, 0), centre_x, centre_y
        return (x1, y1, x2, y2), (width - (x2 - x1), height - (y2 - y1), width, height)
    if quadrant == 1:
        x1, y1, x2, y2 = centre_x, max(centre_y - height, 0), min(centre_x + width, 2 * width), centre_y
        return (x1, y1, x2, y2), (0, height - (y2 - y1), x2 - x1, height)
    if quadrant == 2:
        x1, y1, x2, y2 = max(centre_x - width, 0), centre_y, centre_x, min(centre_y + height, 2 * height)
        return (x1, y1, x2, y2), (width - (x2 - x1), 0, width, y2 - y1)
    x1, y1, x2, y2 = centre_x, centre_y, min(centre_x + width, 2 * width), min(centre_y + height, 2 * height)
    return (x1, y1, x2, y2), (0, 0, x2 - x1, y2 - y1)


def _warp_boxes(boxes: torch.Tensor, matrix: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """The boxes enclosing each box's four warped corners, clipped to the output. The matrix works on pixel
    indices (pixel i spans i - 0.5 .. i + 0.5 in it); box edges are continuous (pixel i spans i .. i + 1)."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    corners = torch.stack(
        [torch.stack(c, dim=-1) for c in ((x1, y1), (x2, y1), (x1, y2), (x2, y2))], dim=1
    )  # (K, 4, 2)
    warped = (corners - 0.5) @ matrix[:, :2].T + matrix[:, 2] + 0.5
    low, high = warped.min(dim=1).values, warped.max(dim=1).values
    limit = boxes.new_tensor([width, height])
    return torch.cat([torch.minimum(low.clamp(min=0), limit), torch.minimum(high.clamp(min=0), limit)], dim=1)


def _without_slivers(entry: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    boxes = entry["boxes"]
    keep = ((boxes[:, 2] - boxes[:, 0]) >= MIN_MOSAIC_BOX) & ((boxes[:, 3] - boxes[:, 1]) >= MIN_MOSAIC_BOX)
    return {"boxes": boxes[keep], "labels": entry["labels"][keep]}


# --- mixing ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Mixing:
    """NetsPresso's ``mixing`` (ml-cvnets' RandomMixup / RandomCutmix) on the finished batch: each sample is mixed
    with its neighbour (the batch rolled by one), with one weight per batch drawn from Beta(alpha, alpha); targets
    become class probabilities mixed by the same weight (for cutmix, by the pasted area). With both given, one of
    the two is picked per batch; each applies with its own probability, else the batch passes unchanged."""

    choices: tuple[tuple[str, float, float], ...]  # (kind, alpha, probability)
    num_classes: int

    @classmethod
    def of(cls, transform: dict[str, Any], num_classes: int) -> _Mixing:
        choices = tuple((kind, *transform[kind]) for kind in ("mixup", "cutmix") if transform.get(kind))
        return cls(choices, num_classes)

    def __call__(self, pixels: torch.Tensor, target: torch.Tensor, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        kind, alpha, probability = self.choices[int(torch.randint(len(self.choices), ()))]
        if float(torch.rand(())) >= probability:
            return pixels, target
        weight = float(torch.distributions.Beta(float(alpha), float(alpha)).sample())
        rolled = pixels.roll(1, 0)
        if kind == "mixup":
            mixed = weight * pixels + (1.0 - weight) * rolled
        else:
            mixed, weight = _cutmix(pixels, rolled, weight)
        probabilities = F.one_hot(target, self.num_classes).to(pixels.dtype)
        return mixed, weight * probabilities + (1.0 - weight) * probabilities.roll(1, 0)


def _cutmix(pixels: torch.Tensor, rolled: torch.Tensor, weight: float) -> tuple[torch.Tensor, float]:
    """One box of about (1 - weight) of the area, at a random centre, pasted from the neighbour into every sample;
    the returned weight is the area that stayed."""
    height, width = pixels.shape[-2:]
    centre_x, centre_y = int(torch.randint(width, ())), int(torch.randint(height, ()))
    half = 0.5 * math.sqrt(1.0 - weight)
    half_w, half_h = int(half * width), int(half * height)
    x1, y1 = max(centre_x - half_w, 0), max(centre_y - half_h, 0)
    x2, y2 = min(centre_x + half_w, width), min(centre_y + half_h, height)
    mixed = pixels.clone()
    mixed[:, :, y1:y2, x1:x2] = rolled[:, :, y1:y2, x1:x2]
    return mixed, 1.0 - (x2 - x1) * (y2 - y1) / (width * height)


@dataclass(frozen=True)
class _HSVJitter:
    """NetsPresso's ``hsvjitter`` (YOLOX's HSV augmentation), per image: each of hue, saturation and value is
    shifted, with probability one half, by a whole number drawn from [-mag, mag] (truncated toward zero, as the
    peer's int16 cast), in OpenCV's 8-bit HSV units (hue 0..180, saturation and value 0..255). An intensity step:
    targets stay."""

    h_mag: int
    s_mag: int
    v_mag: int

    def __call__(self, pixels: torch.Tensor, target: Any, epoch: int) -> tuple[torch.Tensor, Any]:
        from kornia.color import hsv_to_rgb, rgb_to_hsv

        count = len(pixels)
        mags = pixels.new_tensor([self.h_mag, self.s_mag, self.v_mag])
        gains = (torch.rand(count, 3) * 2 - 1).to(pixels) * mags * torch.randint(0, 2, (count, 3)).to(pixels)
        gains = gains.trunc()[:, :, None, None]
        hsv = rgb_to_hsv(pixels.clamp(0, 1))  # hue in radians 0..2pi, saturation and value 0..1
        hue = torch.remainder(hsv[:, :1] + gains[:, :1] * math.radians(HUE_DEGREES_PER_STEP), 2 * math.pi)
        rest = (hsv[:, 1:] + gains[:, 1:] / PIXEL_MAX).clamp(0, 1)
        return hsv_to_rgb(torch.cat([hue, rest], dim=1)), target


@dataclass(frozen=True)
class _RandomResize:
    """NetsPresso's ``randomresize``: multi-scale training. Each batch is resized (with its masks, boxes or
    keypoints) to ``base_size + stride * k`` on both sides, ``k`` drawn from [-random_range, random_range] per
    batch (the peer draws a new size once a batch's worth of samples is done, for the next batch)."""

    base: tuple[int, int]
    stride: int
    spread: int
    interpolation: str
    task: str
    swap: tuple[int, ...] | None

    @classmethod
    def of(cls, transform: dict[str, Any], task: str, swap: tuple[int, ...] | None) -> _RandomResize:
        base = tuple(transform["base_size"])
        return cls(base, transform["stride"], transform["random_range"], transform["interpolation"], task, swap)

    def __call__(self, pixels: torch.Tensor, target: Any, epoch: int) -> tuple[torch.Tensor, Any]:
        import kornia.augmentation as K

        delta = self.stride * int(torch.randint(-self.spread, self.spread + 1, ()))
        size = (self.base[0] + delta, self.base[1] + delta)
        if tuple(pixels.shape[-2:]) == size:
            return pixels, target
        resize = K.Resize(size, resample=self.interpolation.upper(), antialias=True)
        return _KorniaStage.of([resize], self.task, self.swap)(pixels, target, epoch)


@dataclass(frozen=True)
class _ZoomOut:
    """NetsPresso's ``randomzoomout`` (torchvision's RandomZoomOut): with probability ``p`` a sample goes to a random
    place on a canvas ``r`` times its side (``r`` from ``side_range``) filled with ``fill``. npc's batches keep one
    size, so the canvas comes back to the size at this point (the resize the peer's recipes put after it): the
    image shrinks by ``1 / r``. Boxes and keypoints move with it; canvas pixels of a mask are ignored (255)."""

    fill: int
    side_range: tuple[float, float]
    p: float
    task: str

    def __call__(self, pixels: torch.Tensor, target: Any, epoch: int) -> tuple[torch.Tensor, Any]:
        chosen = torch.nonzero(torch.rand(len(pixels)) < self.p).flatten()
        low, high = self.side_range
        ratio = low + torch.rand(len(chosen)) * (high - low)
        place = torch.rand(len(chosen), 2)
        if not len(chosen):
            return pixels, target
        height, width = pixels.shape[-2:]
        # canvas position of the image's top-left corner, then the canvas scaled back by 1 / r; on pixel indices
        # (pixel i spans i - 0.5 .. i + 0.5), as warp_affine reads the matrix
        left, top = (width * ratio - width) * place[:, 0], (height * ratio - height) * place[:, 1]
        matrix = torch.zeros(len(chosen), 2, 3)
        matrix[:, 0, 0] = matrix[:, 1, 1] = 1 / ratio
        matrix[:, 0, 2] = (left + 0.5) / ratio - 0.5
        matrix[:, 1, 2] = (top + 0.5) / ratio - 0.5
        matrix = matrix.to(pixels)
        from kornia.geometry.transform import warp_affine

        out = pixels.clone()
        fill = pixels.new_full((3,), self.fill / PIXEL_MAX)
        out[chosen] = warp_affine(pixels[chosen], matrix, (height, width), padding_mode="fill", fill_value=fill)
        return out, self._moved(target, chosen, matrix, (height, width))

    def _moved(self, target: Any, chosen: torch.Tensor, matrix: torch.Tensor, size: tuple[int, int]) -> Any:
        from kornia.geometry.transform import warp_affine

        if self.task == "segmentation":
            shifted = (target[chosen].unsqueeze(1) + MASK_SHIFT).to(matrix.dtype)
            moved = target.clone()
            moved[chosen] = _unshift_masks(warp_affine(shifted, matrix, size, mode="nearest")[:, 0])
            return moved
        if self.task == "detection":
            moved = list(target)
            for row, index in enumerate(chosen.tolist()):
                boxes = _warp_boxes(target[index]["boxes"].to(matrix.dtype), matrix[row], size[1], size[0])
                moved[index] = {**target[index], "boxes": boxes}
            return moved
        if self.task == "pose_estimation":  # shrinking keeps every keypoint on the image: visibility stays
            moved = target.clone()
            xy = target[chosen][..., :2].to(matrix.dtype)
            moved[chosen, :, :2] = (xy @ matrix[:, :, :2].transpose(1, 2) + matrix[:, None, :, 2]).to(target.dtype)
            return moved
        return target


# --- geometric helpers for the per-sample warps below ----------------------------------------------------------


def _index_frame(linear: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """(N, 2, 3) matrices on pixel indices (pixel i spans i - 0.5 .. i + 0.5, as warp_affine reads them) from maps
    ``x' = linear @ x + shift`` on continuous coordinates (pixel i spans i .. i + 1, as PIL's and box edges)."""
    half = torch.full((2,), 0.5, dtype=linear.dtype)
    offset = linear @ half + shift - half  # x' + 0.5 = linear (x + 0.5) + shift
    return torch.cat([linear, offset[..., None]], dim=-1)


def _fill_colour(fill: int | list[int] | None, pixels: torch.Tensor) -> torch.Tensor:
    values = [0, 0, 0] if fill is None else [fill] * 3 if isinstance(fill, int) else list(fill)
    return pixels.new_tensor(values) / PIXEL_MAX


def _warped_targets(
    task: str, target: Any, chosen: list[int], matrix: torch.Tensor, size: tuple[int, int], *, keep_all: bool = False
) -> Any:
    """The targets of samples ``chosen`` moved by ``matrix`` ((N, 2, 3) on pixel indices, one per chosen sample):
    masks resampled (nearest; pixels from outside the image are ignored), boxes warped and clipped (dropped below
    BOX_KEEP_FRACTION of their area inside, unless ``keep_all``), keypoints moved (invisible once off the image)."""
    from kornia.geometry.transform import warp_affine

    if not chosen:
        return target
    height, width = size
    if task == "segmentation":
        shifted = (target[chosen].unsqueeze(1) + MASK_SHIFT).to(matrix.dtype)
        moved = target.clone()
        moved[chosen] = _unshift_masks(warp_affine(shifted, matrix, size, mode="nearest")[:, 0])
        return moved
    if task == "detection":
        out = list(target)
        for row, index in enumerate(chosen):
            out[index] = _warped_entry(target[index], matrix[row], width, height, keep_all)
        return out
    if task == "pose_estimation":
        moved = target.clone()
        xy = target[chosen][..., :2].to(matrix.dtype) @ matrix[:, :, :2].transpose(1, 2) + matrix[:, None, :, 2]
        x, y = xy[..., 0], xy[..., 1]
        inside = (x >= -0.5) & (x < width - 0.5) & (y >= -0.5) & (y < height - 0.5)
        moved[chosen, :, :2] = xy.to(target.dtype)
        moved[chosen, :, 2] = target[chosen][..., 2] * inside.to(target.dtype)
        return moved
    return target


def _warped_entry(entry: dict, matrix: torch.Tensor, width: int, height: int, keep_all: bool) -> dict:
    boxes = entry["boxes"].to(matrix.dtype)
    count = len(boxes)
    if not count:
        return entry
    x1, y1, x2, y2 = boxes.unbind(-1)
    corners = torch.stack([torch.stack(c, dim=-1) for c in ((x1, y1), (x2, y1), (x1, y2), (x2, y2))], dim=1)
    warped = (corners - 0.5) @ matrix[:, :2].T + matrix[:, 2] + 0.5
    whole = torch.cat([warped.min(dim=1).values, warped.max(dim=1).values], dim=1)
    limit = boxes.new_tensor([width, height, width, height])
    clipped = torch.minimum(whole.clamp(min=0), limit)

    def area(b: torch.Tensor) -> torch.Tensor:
        return (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)

    keep = (
        torch.ones(count, dtype=torch.bool)
        if keep_all
        else (area(clipped) > 0) & (area(clipped) >= BOX_KEEP_FRACTION * area(whole))
    )
    out = {k: v[keep] if v.ndim and len(v) == count else v for k, v in entry.items()}
    out["boxes"] = clipped[keep].to(entry["boxes"].dtype)
    return out


# --- randomioucrop ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _RandomIoUCrop:
    """NetsPresso's ``randomioucrop`` (torchvision's RandomIoUCrop, SSD's sampling), per sample with probability
    ``p``: a minimum IoU is drawn from ``sampler_options`` (1.0 leaves the sample as it is), then up to ``trials``
    crops of ``min_scale..max_scale`` of each side, with width / height in the aspect range; the first crop that
    holds some box centre and overlaps one of those boxes by at least that IoU is taken. Boxes whose centres lie in
    the crop are kept, clipped to it (torchvision's rule; the peer keeps the others, flattened on the crop's edge).
    npc's batches keep one size, so the crop comes back to the size at this point (the resize the peer's recipes put
    after it)."""

    min_scale: float
    max_scale: float
    min_aspect: float
    max_aspect: float
    p: float
    options: tuple[float, ...]
    trials: int

    @classmethod
    def of(cls, transform: dict[str, Any]) -> _RandomIoUCrop:
        options = transform["sampler_options"] or [0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0]
        return cls(
            transform["min_scale"],
            transform["max_scale"],
            transform["min_aspect_ratio"],
            transform["max_aspect_ratio"],
            transform["p"],
            tuple(float(o) for o in options),
            transform["trials"],
        )

    def __call__(self, pixels: torch.Tensor, target: list[dict], epoch: int) -> tuple[torch.Tensor, list[dict]]:
        height, width = pixels.shape[-2:]
        chosen, matrices, kept = [], [], []
        for index, entry in enumerate(target):
            if float(torch.rand(())) >= self.p:
                continue
            crop = self._crop(entry["boxes"].float(), width, height)
            if crop is None:
                continue
            left, top, crop_w, crop_h, inside = crop
            scale = torch.tensor([width / crop_w, height / crop_h], dtype=torch.float64)
            matrices.append(_index_frame(torch.diag(scale), -scale * torch.tensor([left, top], dtype=torch.float64)))
            chosen.append(index)
            kept.append({k: v[inside] if v.ndim and len(v) == len(inside) else v for k, v in entry.items()})
        if not chosen:
            return pixels, target
        from kornia.geometry.transform import warp_affine

        matrix = torch.stack(matrices).to(pixels)
        out = pixels.clone()
        out[chosen] = warp_affine(pixels[chosen], matrix, (height, width), mode="bilinear", padding_mode="border")
        moved = list(target)
        for row, index in enumerate(chosen):  # centres inside: every kept box keeps some area
            moved[index] = _warped_entry(kept[row], matrix[row], width, height, keep_all=True)
        return out, moved

    def _crop(self, boxes: torch.Tensor, width: int, height: int) -> tuple[int, int, int, int, torch.Tensor] | None:
        if not len(boxes):
            return None  # no box to overlap: the peer would loop until it drew 1.0
        centre_x, centre_y = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
        for _ in range(MAX_IOU_ROUNDS):
            least = self.options[int(torch.randint(len(self.options), ()))]
            if least >= 1.0:
                return None
            for _ in range(self.trials):
                side = self.min_scale + (self.max_scale - self.min_scale) * torch.rand(2)
                crop_w, crop_h = int(width * side[0]), int(height * side[1])
                if crop_w < 1 or crop_h < 1 or not self.min_aspect <= crop_w / crop_h <= self.max_aspect:
                    continue
                place = torch.rand(2)
                left, top = int((width - crop_w) * place[0]), int((height - crop_h) * place[1])
                right, bottom = left + crop_w, top + crop_h
                inside = (left < centre_x) & (centre_x < right) & (top < centre_y) & (centre_y < bottom)
                if not inside.any():
                    continue
                region = boxes.new_tensor([left, top, right, bottom])
                if float(_iou(boxes[inside], region).max()) < least:
                    continue
                return left, top, crop_w, crop_h, inside
        return None


def _iou(boxes: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    low, high = torch.maximum(boxes[:, :2], region[:2]), torch.minimum(boxes[:, 2:], region[2:])
    overlap = (high - low).clamp(min=0).prod(dim=1)
    areas = (boxes[:, 2:] - boxes[:, :2]).prod(dim=1)
    return overlap / (areas + (region[2:] - region[:2]).prod() - overlap)


# --- randomresize2 ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _RandomResize2:
    """NetsPresso's ``randomresize2``: each sample is resized, aspect kept, to fit ``base_size`` times a factor
    drawn from ``random_range`` (the peer's rule: ``min(int(base_w * f) / w, int(base_h * f) / h)``). npc's batches
    keep one size, so the result goes back onto the size at this point, as the ``randomcrop`` the peer's recipes put
    after it does: a larger image is cropped at a random place, a smaller one padded right and bottom (black; mask
    padding is ignored). Masks, boxes (dropped under BOX_KEEP_FRACTION left) and keypoints move with it."""

    base: tuple[int, int]
    random_range: tuple[float, float]
    interpolation: str
    task: str

    @classmethod
    def of(cls, transform: dict[str, Any], task: str) -> _RandomResize2:
        base = tuple(transform["base_size"])
        return cls(base, tuple(transform["random_range"]), transform["interpolation"], task)

    def __call__(self, pixels: torch.Tensor, target: Any, epoch: int) -> tuple[torch.Tensor, Any]:
        from kornia.geometry.transform import warp_affine

        count, (height, width) = len(pixels), pixels.shape[-2:]
        low, high = self.random_range
        factor = (low + torch.rand(count, dtype=torch.float64) * (high - low)).tolist()
        place = torch.rand(count, 2, dtype=torch.float64).tolist()
        linears, shifts = [], []
        for f, (u, v) in zip(factor, place, strict=True):
            ratio = min(int(self.base[1] * f) / width, int(self.base[0] * f) / height)
            new_h, new_w = max(1, int(height * ratio)), max(1, int(width * ratio))
            left, top = int(u * (max(new_w - width, 0) + 1)), int(v * (max(new_h - height, 0) + 1))
            linears.append(torch.diag(torch.tensor([new_w / width, new_h / height], dtype=torch.float64)))
            shifts.append(torch.tensor([-left, -top], dtype=torch.float64))
        matrix = _index_frame(torch.stack(linears), torch.stack(shifts)).to(pixels)
        mode = self.interpolation
        out = warp_affine(pixels, matrix, (height, width), mode=mode, padding_mode="zeros")
        return out, _warped_targets(self.task, target, list(range(count)), matrix, (height, width))


# --- trivialaugmentwide and autoaugment ------------------------------------------------------------------------

GEOMETRIC_OPS = ("shear_x", "shear_y", "translate_x", "translate_y", "rotate")


def _trivial_space(bins: int) -> dict[str, tuple[torch.Tensor, bool]]:
    """torchvision's TrivialAugmentWide space (the peer's copy): op → (magnitudes, signed)."""
    wide = torch.linspace(0.0, 0.99, bins)
    return {
        "identity": (torch.tensor(0.0), False),
        "shear_x": (wide, True),
        "shear_y": (wide, True),
        "translate_x": (torch.linspace(0.0, 32.0, bins), True),
        "translate_y": (torch.linspace(0.0, 32.0, bins), True),
        "rotate": (torch.linspace(0.0, 135.0, bins), True),
        "brightness": (wide, True),
        "color": (wide, True),
        "contrast": (wide, True),
        "sharpness": (wide, True),
        "posterize": (8 - (torch.arange(bins) / ((bins - 1) / 6)).round(), False),
        "solarize": (torch.linspace(255.0, 0.0, bins), False),
        "auto_contrast": (torch.tensor(0.0), False),
        "equalize": (torch.tensor(0.0), False),
    }


def _autoaugment_space(height: int, width: int) -> dict[str, tuple[torch.Tensor, bool]]:
    """torchvision's AutoAugment space (10 bins) for (height, width) images: op → (magnitudes, signed)."""
    bins, strong = 10, torch.linspace(0.0, 0.9, 10)
    return {
        "shear_x": (torch.linspace(0.0, 0.3, bins), True),
        "shear_y": (torch.linspace(0.0, 0.3, bins), True),
        "translate_x": (torch.linspace(0.0, 150.0 / 331.0 * width, bins), True),
        "translate_y": (torch.linspace(0.0, 150.0 / 331.0 * height, bins), True),
        "rotate": (torch.linspace(0.0, 30.0, bins), True),
        "brightness": (strong, True),
        "color": (strong, True),
        "contrast": (strong, True),
        "sharpness": (strong, True),
        "posterize": (8 - (torch.arange(bins) / ((bins - 1) / 4)).round(), False),
        "solarize": (torch.linspace(255.0, 0.0, bins), False),
        "auto_contrast": (torch.tensor(0.0), False),
        "equalize": (torch.tensor(0.0), False),
        "invert": (torch.tensor(0.0), False),
    }


def _autoaugment_policy(name: str) -> list[list[tuple[str, float, int | None]]]:
    """kornia's copies of the searched policies (torchvision's, the same sub-policies and magnitude bins)."""
    from kornia.augmentation.auto.autoaugment import autoaugment as kornia_autoaugment

    return [list(sub) for sub in getattr(kornia_autoaugment, f"{name}_policy")]


@dataclass(frozen=True)
class _AutoAugment:
    """NetsPresso's ``trivialaugmentwide`` and ``autoaugment`` (torchvision's, per image), on a batch: every sample
    draws its own op (TrivialAugment: one op of the wide space, a magnitude bin, a sign) or sub-policy (AutoAugment:
    two ops, each applied with its probability at its bin's magnitude, signed at random), and each op runs once on
    the samples that drew it. kornia's ``auto`` module draws one op per batch and samples magnitudes inside a bin,
    so npc keeps torchvision's draws and runs the ops with kornia's functions (``kornia.enhance``, ``warp_affine``).
    Classification only, as the peer (it moves no mask, box or keypoint)."""

    policy: str | None  # None: TrivialAugmentWide
    bins: int
    interpolation: str
    fill: Any

    @classmethod
    def of(cls, transform: dict[str, Any]) -> _AutoAugment:
        policy = transform.get("policy") if transform["name"] == "autoaugment" else None
        return cls(policy, transform.get("num_magnitude_bins", 10), transform["interpolation"], transform["fill"])

    def __call__(self, pixels: torch.Tensor, target: Any, epoch: int) -> tuple[torch.Tensor, Any]:
        count, (height, width) = len(pixels), pixels.shape[-2:]
        pixels = pixels.clamp(0, 1)
        if self.policy is None:
            space = _trivial_space(self.bins)
            names = list(space)
            ops = torch.randint(len(names), (count,)).tolist()
            steps = torch.randint(self.bins, (count,)).tolist()
            flips = torch.randint(2, (count,)).tolist()
            chosen = [names[op] for op in ops]
            magnitudes = []
            for name, step, flip in zip(chosen, steps, flips, strict=True):
                values, signed = space[name]
                value = float(values[step]) if values.ndim else 0.0
                magnitudes.append(-value if signed and flip else value)
            return self._run(pixels, [chosen], [magnitudes], [[True] * count]), target
        space, policies = _autoaugment_space(height, width), _autoaugment_policy(self.policy)
        picks = torch.randint(len(policies), (count,)).tolist()
        draws, signs = torch.rand(count, 2).tolist(), torch.randint(2, (count, 2)).tolist()
        names, magnitudes, applied = [[], []], [[], []], [[], []]
        for pick, draw, sign in zip(picks, draws, signs, strict=True):
            for step, (name, probability, level) in enumerate(policies[pick]):
                values, signed = space[name]
                value = float(values[level]) if level is not None and values.ndim else 0.0
                names[step].append(name)
                magnitudes[step].append(-value if signed and sign[step] == 0 else value)
                applied[step].append(draw[step] <= probability)
        return self._run(pixels, names, magnitudes, applied), target

    def _run(self, pixels: torch.Tensor, names: list, magnitudes: list, applied: list) -> torch.Tensor:
        """Each step's ops in turn (a sample's second op sees its first's result), one call per op."""
        out = pixels.clone()
        for step_names, step_magnitudes, step_applied in zip(names, magnitudes, applied, strict=True):
            for name in dict.fromkeys(step_names):
                rows = [i for i, (n, a) in enumerate(zip(step_names, step_applied, strict=True)) if n == name and a]
                if rows and name != "identity":
                    magnitude = torch.tensor([step_magnitudes[i] for i in rows], dtype=torch.float64)
                    out[rows] = self._op(out[rows], name, magnitude).clamp(0, 1)
        return out

    def _op(self, pixels: torch.Tensor, name: str, magnitude: torch.Tensor) -> torch.Tensor:
        import kornia.enhance as enhance
        from kornia.color import rgb_to_grayscale

        if name in GEOMETRIC_OPS:
            from kornia.geometry.transform import warp_affine

            matrix = _op_matrix(name, magnitude, *pixels.shape[-2:]).to(pixels)
            return warp_affine(
                pixels,
                matrix,
                tuple(pixels.shape[-2:]),
                mode=self.interpolation,
                padding_mode="fill",
                fill_value=_fill_colour(self.fill, pixels),
            )
        factor = (1 + magnitude).to(pixels).view(-1, 1, 1, 1)
        if name == "brightness":  # PIL's enhancers blend with black, grey and the mean grey (torchvision's too)
            return pixels * factor
        if name == "color":
            return _blend(pixels, rgb_to_grayscale(pixels), factor)
        if name == "contrast":
            return _blend(pixels, rgb_to_grayscale(pixels).mean(dim=(-3, -2, -1), keepdim=True), factor)
        if name == "sharpness":
            return enhance.sharpness(pixels, factor.flatten())
        if name == "posterize":
            return enhance.posterize(pixels, magnitude.round().int().to(pixels.device))
        if name == "solarize":
            return enhance.solarize(pixels, (magnitude / PIXEL_MAX).to(pixels))
        if name == "equalize":
            return enhance.equalize(pixels)
        if name == "invert":
            return enhance.invert(pixels)
        if name == "auto_contrast":  # each channel stretched to 0..1 (left alone where it is flat)
            low = pixels.amin(dim=(-2, -1), keepdim=True)
            high = pixels.amax(dim=(-2, -1), keepdim=True)
            span = high - low
            return torch.where(span > 0, (pixels - low) / span.clamp(min=1e-12), pixels)
        raise RunError(f"augmentation: no op {name!r}")  # the spaces above name only these


def _blend(pixels: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return (factor * pixels + (1 - factor) * other).clamp(0, 1)


def _op_matrix(name: str, magnitude: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """torchvision's geometric ops as (N, 2, 3) maps on pixel indices: shears about the top-left corner by
    ``magnitude`` (its tangent), whole-pixel shifts, rotations counter-clockwise about the centre in degrees."""
    count = len(magnitude)
    linear = torch.eye(2, dtype=torch.float64).repeat(count, 1, 1)
    shift = torch.zeros(count, 2, dtype=torch.float64)
    if name == "shear_x":
        linear[:, 0, 1] = -magnitude
    elif name == "shear_y":
        linear[:, 1, 0] = -magnitude
    elif name == "translate_x":
        shift[:, 0] = magnitude.trunc()
    elif name == "translate_y":
        shift[:, 1] = magnitude.trunc()
    else:  # rotate
        angle = torch.deg2rad(magnitude)
        cos, sin = angle.cos(), angle.sin()
        linear = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], dim=1)
        centre = torch.tensor([width / 2, height / 2], dtype=torch.float64)
        shift = centre - linear @ centre
    return _index_frame(linear, shift)


# --- posetopdownaffine -----------------------------------------------------------------------------------------


def _trunc_normal(count: int) -> torch.Tensor:
    """Standard normal draws cut to [-1, 1] (the peer's ``trunc_normal_``, torch.nn.init's inverse-CDF method)."""
    low, high = (1 + math.erf(-1 / math.sqrt(2))) / 2, (1 + math.erf(1 / math.sqrt(2))) / 2
    values = torch.empty(count, dtype=torch.float64).uniform_(2 * low - 1, 2 * high - 1)
    return (values.erfinv() * math.sqrt(2)).clamp(-1, 1)


@dataclass(frozen=True)
class _PoseTopDownAffine:
    """NetsPresso's ``posetopdownaffine`` (mmpose's RandomBBoxTransform + TopDownAffine). npc's pose loader already
    makes the crop without jitter (each person's box fitted into the input), so this step is its random part, per
    sample: the box scaled by ``s`` (a normal draw cut to [-1, 1], spread over ``scale``; with ``scale_prob``), its
    centre shifted by ``translate`` times the box on each axis (with ``translate_prob``), and the crop rotated by up
    to ``rotation`` degrees (with ``rotation_prob``; the peer's code rotates whatever it says). The crop is warped
    accordingly (bilinear, black outside, as OpenCV's warpAffine) and the keypoints move with it, invisible once
    off the crop. Where the peer's crop would take in more of the photograph (``s`` > 1, shifts), npc's shows black
    past the loader's crop."""

    scale: tuple[float, float]
    scale_prob: float
    translate: float
    translate_prob: float
    rotation: float
    rotation_prob: float

    @classmethod
    def of(cls, transform: dict[str, Any]) -> _PoseTopDownAffine:
        keys = ("scale_prob", "translate", "translate_prob", "rotation", "rotation_prob")
        return cls(tuple(transform["scale"]), *(float(transform[k]) for k in keys))

    def __call__(self, pixels: torch.Tensor, target: torch.Tensor, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        from kornia.geometry.transform import warp_affine

        count, (height, width) = len(pixels), pixels.shape[-2:]
        low, high = self.scale
        scale = _trunc_normal(count) * (high - low) / 2 + (high + low) / 2
        scale = torch.where(torch.rand(count, dtype=torch.float64) < self.scale_prob, scale, 1.0)
        shift = _trunc_normal(2 * count).view(count, 2) * self.translate
        shift = torch.where(torch.rand(count, 1, dtype=torch.float64) < self.translate_prob, shift, 0.0)
        angle = torch.deg2rad(self.rotation * _trunc_normal(count))
        angle = torch.where(torch.rand(count, dtype=torch.float64) < self.rotation_prob, angle, 0.0)
        cos, sin = angle.cos() / scale, angle.sin() / scale  # output = A (x - box centre) + crop centre
        linear = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], dim=1)
        centre = torch.tensor([(width - 1) / 2, (height - 1) / 2], dtype=torch.float64)  # on pixel indices
        source = centre + shift * torch.tensor([width, height], dtype=torch.float64)
        offset = centre - (linear @ source[..., None])[..., 0]
        matrix = torch.cat([linear, offset[..., None]], dim=-1).to(pixels)
        out = warp_affine(pixels, matrix, (height, width), mode="bilinear", padding_mode="zeros")
        return out, _warped_targets("pose_estimation", target, list(range(count)), matrix, (height, width))
