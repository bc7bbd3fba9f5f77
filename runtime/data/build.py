"""``build_data``: the task and ``data.format`` pick the loader; every loader returns a :class:`DataBundle`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ..errors import DataError
from .classification import build_classification
from .common import DataBundle, Preprocess, read_id_mapping_file

__all__ = ["FORMATS_BY_TASK", "build_data", "preprocess_from_json"]


FORMATS_BY_TASK = {
    "classification": ("digits", "local", "image_folder", "huggingface"),
    "segmentation": ("shapes", "local", "huggingface"),
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
        config = {**config, "id_mapping": read_id_mapping_file(config)}
    if kind == "huggingface":
        from .huggingface import build_huggingface

        bundle = build_huggingface(config, splits, task)
    elif task == "segmentation":
        from .segmentation import build_segmentation

        bundle = build_segmentation(config, splits)
    elif task == "detection":
        from .detection import build_detection

        bundle = build_detection(config, splits)
    elif task == "pose_estimation":
        from .pose import build_pose

        bundle = build_pose(config, splits)
    else:
        bundle = build_classification(config, splits)
    expected = config.get("num_classes")
    if expected is not None and expected != bundle.num_classes:
        raise DataError(f"data.num_classes is {expected}, but the data has {bundle.num_classes} classes")
    return bundle


def preprocess_from_json(text: str) -> Any:
    """The weights' recorded preprocessing: a :class:`Preprocess`, or a pose model's ``PosePreprocess``."""
    if json.loads(text).get("kind") == "pose":
        from .pose import PosePreprocess

        return PosePreprocess.from_json(text)
    return Preprocess.from_json(text)
