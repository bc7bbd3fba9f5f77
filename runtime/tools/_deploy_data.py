"""The data ``npc export`` reads, found one way for every use: a plain export is verified on the first validation
images, ``--quantize int8`` calibrates on the training split and evaluates on the validation split.

Where the data comes from: a run folder's ``resolved.yaml`` (the data it trained on), else ``--data``, else the
spec's own ``data:`` section, else the task's built-in set. Every image comes prepared as for inference (the
data's resize and normalisation, no augmentation), through ``runtime.data.build_data`` like training's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import UNUSABLE, RunError
from .summary import LoadedTarget

__all__ = ["ExportImages", "build_deploy_data", "data_config", "first_images", "image_side", "size_mismatch"]


@dataclass(frozen=True)
class ExportImages:
    """Real images an export is verified on."""

    images: torch.Tensor  # (N, 3, H, W), prepared as for inference
    description: str  # what they are, for the report: "4 validation images from digits (...)"


def data_config(path: Path, target: LoadedTarget, data_path: str | Path | None, *, use: str):
    """The RunConfig whose data section the export reads: the run's resolved.yaml, else the spec's (with
    ``data_path``'s data: section over it). ``use`` says what the images are for ("to calibrate int8 on")."""
    from ...spec.run_config import load_run_config

    spec = path / "resolved.yaml" if path.is_dir() else Path(target.path)
    if spec.suffix == ".py":
        raise RunError(
            f"{path}: a compiled model.py records no task or data, so there is nothing {use}; "
            "give the spec or an npc train run folder (and --data)",
            UNUSABLE,
        )
    return load_run_config(spec, data_path=data_path)


def build_deploy_data(config, splits: Sequence[str], *, why: str):
    """The DataBundle of ``config`` with each of ``splits`` present and not empty; ``why`` says what reads them."""
    from ..data import build_data

    data = build_data(config.data, splits, task=config.spec.task)
    for split in splits:
        if split not in data.splits or len(data.splits[split]) == 0:
            raise RunError(f"{data.description}: has no {split} images; {why}")
    return data


def image_side(data) -> tuple[int, int]:
    """(H, W) the validation images come at: the input size an export verified on them must have."""
    return tuple(data.splits["valid"][0][0].shape[-2:])


def size_mismatch(input_size: Sequence[int], data) -> RunError:
    """The error for an ``--input-size`` the data's images do not come at."""
    side = image_side(data)
    return RunError(
        f"--input-size {' '.join(map(str, input_size))}: the images of {data.description} come at "
        f"{side[0]}x{side[1]}; give --input-size {side[0]} {side[1]}, or --data prepared at the size you want "
        "(its image_size)",
        UNUSABLE,
    )


def first_images(data, count: int) -> ExportImages:
    """The first ``count`` validation images (fewer if the split is smaller): the same ones every time."""
    valid = data.splits["valid"]
    images = [valid[i][0].float() for i in range(min(count, len(valid)))]
    images = [image for image in images if image.shape == images[0].shape]  # a batch needs one size
    noun = "image" if len(images) == 1 else "images"
    return ExportImages(torch.stack(images), f"{len(images)} validation {noun} from {data.description}")
