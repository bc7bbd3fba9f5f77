"""What NetsPresso Trainer's ``logging.yaml`` asks for when a run ends, done through npc's own checked paths.

``num_save_samples``: the first N validation images, written as PNG under ``samples/inputs/``, with the best
weights' predictions from ``npc predict``'s code (``samples/predictions.json``; boxes, masks or keypoints drawn as
``samples/<image>.png``). ``onnx_export_opset``: ``best.onnx`` from the best weights through ``npc export``'s path
(exported, loaded back and compared with the eager model), at ``sample_input_size`` (default: the trained size).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...spec.run_config import RunConfig
from ..checkpoint import atomic_write_text
from ..data import Preprocess, build_data

__all__ = ["export_best", "save_samples"]


def save_samples(config: RunConfig, run_dir: Path, count: int) -> tuple[int, Path]:
    """Up to ``count`` validation images and the best weights' predictions on them: (how many, the predictions
    file)."""
    from .infer import predict_images

    task = config.spec.task
    data = build_data(config.data, ("valid",), task=task)
    split = data.splits["valid"]
    folder = run_dir / "samples"
    (folder / "inputs").mkdir(parents=True, exist_ok=True)
    images, truths = [], []
    for index in range(min(count, len(split))):
        image, target = split[index][:2]
        path = folder / "inputs" / f"{index:04d}.png"
        _write_png(image, data.preprocess, path)
        images.append(str(path))
        truths.append(target)
    records = predict_images(
        config,
        run_dir / "best.safetensors",
        images,
        model_py=run_dir / "model.py",
        draw_dir=None if task == "classification" else folder,
    )
    if task == "classification":
        for record, truth in zip(records, truths):
            record["true_label"] = data.class_names[int(truth)]
    target = folder / "predictions.json"
    atomic_write_text(target, json.dumps(records, indent=2) + "\n")
    return len(records), target


def _write_png(image: torch.Tensor, preprocess: Preprocess, path: Path) -> None:
    """A normalised (3, H, W) input back to 8-bit RGB, as the model saw it."""
    from PIL import Image

    mean = torch.tensor(preprocess.mean).view(-1, 1, 1)
    std = torch.tensor(preprocess.std).view(-1, 1, 1)
    pixels = ((image.float().cpu() * std + mean).clamp(0, 1) * 255).round().to(torch.uint8)
    Image.fromarray(np.ascontiguousarray(pixels.permute(1, 2, 0).numpy())).save(path)


def export_best(run_dir: Path, options: dict[str, Any]) -> Any:
    """``best.onnx`` at ``options['onnx_export_opset']``; returns the export report."""
    from .export import ExportOptions, export_path

    size = options.get("sample_input_size")
    export = ExportOptions(opset=options["onnx_export_opset"], input_size=tuple(size) if size else None)
    return export_path(run_dir, run_dir / "best.onnx", export, weights=run_dir / "best.safetensors")
