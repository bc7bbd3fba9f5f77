"""``npc evaluate`` and ``npc predict``: a model built from the spec (or a run folder's model.py), weights loaded
strictly (every key must match), then metrics over a data split, or per image file: a label (classification), a
class mask (segmentation) or boxes (detection, through the model.py's ``build_postprocessor``).
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from ...spec.run_config import RunConfig
from ..checkpoint import apply_weights, atomic_write, atomic_write_text, load_weights
from ..data import Preprocess, build_data, open_image, pil_module, preprocess_from_json
from ..engine import METRICS, evaluate
from ..engine.load_model import build, head_name, import_model, model_source
from ..engine.trainer import detection_postprocessor, resolve_device
from ..errors import UNUSABLE, DataError, RunError
from ..losses import build_loss
from .drawing import draw_boxes, draw_keypoints, draw_mask

__all__ = [
    "Loaded",
    "evaluate_onnx_file",
    "evaluate_weights",
    "load_for_inference",
    "predict_images",
    "predict_loaded",
    "predict_onnx",
]


@dataclass
class Loaded:
    model: nn.Module
    num_classes: int
    class_names: list[str]
    preprocess: Preprocess | None
    metadata: dict[str, Any]
    device: torch.device
    postprocessor: Any = None  # detection: the model.py's build_postprocessor()


def load_for_inference(
    config: RunConfig,
    weights: str | Path,
    *,
    model_py: str | Path | None,
    device: str | None,
    num_classes: int | None,
    class_names: list[str] | None = None,
    preloaded: tuple[dict[str, torch.Tensor], dict[str, Any]] | None = None,
) -> Loaded:
    """Build the model for ``num_classes`` (else the class count the weights record) and load them strictly."""
    state, metadata = preloaded or load_weights(weights)
    recorded = metadata.get("num_classes")
    if num_classes is None:
        num_classes = recorded
    if num_classes is None:
        raise RunError(
            f"{weights}: records no class count (not written by npc train); give the data with --data", UNUSABLE
        )
    if recorded is not None and recorded != num_classes:
        raise RunError(f"{weights}: was trained for {recorded} classes, but the data has {num_classes}")
    with tempfile.TemporaryDirectory(prefix="npc-model-") as folder:
        path = Path(model_py) if model_py is not None else Path(folder) / "model.py"
        if model_py is None:
            path.write_text(model_source(config, None), encoding="utf-8")
        module = import_model(path)
        model = build(module, num_classes, path)
    postprocessor, _ = detection_postprocessor(module, config.spec.task)
    apply_weights(model, state, weights, strict=True)
    target = resolve_device(device)
    model.to(target).eval()
    names = class_names or metadata.get("class_names") or [str(i) for i in range(num_classes)]
    preprocess = preprocess_from_json(metadata["preprocess"]) if "preprocess" in metadata else None
    return Loaded(model, num_classes, list(names), preprocess, metadata, target, postprocessor)


def evaluate_weights(
    config: RunConfig,
    weights: str | Path,
    *,
    split: str = "valid",
    model_py: str | Path | None = None,
    device: str | None = None,
    batch_size: int | None = None,
) -> dict[str, Any]:
    task = config.spec.task
    data = build_data(config.data, (split,), task=task)
    loaded = load_for_inference(
        config, weights, model_py=model_py, device=device, num_classes=data.num_classes, class_names=data.class_names
    )
    if loaded.preprocess is not None and loaded.preprocess != data.preprocess:
        data.notes.append(
            f"the weights were trained with other preprocessing ({loaded.preprocess}); evaluating with the data's"
        )
    if task == "detection" and loaded.postprocessor is None:
        data.notes.append("the model.py defines no build_postprocessor(): mAP is not computed")
    loss_fn, _ = build_loss(config.spec.losses, config.spec_source, task=task, head=head_name(config))
    loader = DataLoader(
        data.splits[split],
        batch_size=batch_size or config.training["batch_size"],
        shuffle=False,
        collate_fn=data.collate,
    )
    metrics = evaluate(
        loaded.model,
        loader,
        loss_fn.to(loaded.device),
        data.num_classes,
        loaded.device,
        task=task,
        postprocessor=loaded.postprocessor,
    )
    return _evaluation_record(weights, data, task, split, metrics)


@torch.no_grad()
def predict_images(
    config: RunConfig,
    weights: str | Path,
    images: list[str],
    *,
    model_py: str | Path | None = None,
    device: str | None = None,
    top_k: int = 1,
    use_data: bool = False,
    min_score: float = 0.3,
    mask_dir: str | Path | None = None,
    keypoint_dir: str | Path | None = None,
    draw_dir: str | Path | None = None,
) -> list[dict[str, Any]]:
    """One record per image. Classification: best label, its softmax score, and the ``top_k`` best (label, score)
    pairs. Segmentation: the share of each class's pixels (and the mask PNG written to ``mask_dir``). Detection:
    the boxes scoring at least ``min_score``, in the image's own pixels. Pose: each keypoint's position in the
    image's own pixels and score (the whole image is the person's box), written with a drawing to
    ``keypoint_dir``. ``draw_dir``: the boxes, the mask or the keypoints drawn on each image (``<image>.png``)."""
    if draw_dir is not None and config.spec.task == "classification":
        raise RunError("--draw: a classification has nothing to draw on the image (the label is printed)", UNUSABLE)
    num_classes = names = preprocess = None
    task = config.spec.task
    state, metadata = load_weights(weights)
    if use_data or "num_classes" not in metadata or "preprocess" not in metadata:
        data = build_data(config.data, ("valid",), task=task)
        num_classes, names, preprocess = data.num_classes, data.class_names, data.preprocess
    loaded = load_for_inference(
        config,
        weights,
        model_py=model_py,
        device=device,
        num_classes=num_classes,
        class_names=names,
        preloaded=(state, metadata),
    )
    preprocess = preprocess or loaded.preprocess
    top_k = min(top_k, config.spec.postprocessor.get("topk_max") or top_k)  # NetsPresso's classification cap
    if task == "detection" and loaded.postprocessor is None:
        raise RunError(f"{model_py or config.spec_path}: defines no build_postprocessor(); cannot decode boxes")
    return predict_loaded(
        loaded,
        preprocess,
        images,
        task=task,
        top_k=top_k,
        min_score=min_score,
        mask_dir=mask_dir,
        keypoint_dir=keypoint_dir,
        draw_dir=draw_dir,
    )


@torch.no_grad()
def predict_loaded(
    loaded: Loaded,
    preprocess: Any,
    images: list[str],
    *,
    task: str,
    top_k: int = 1,
    min_score: float = 0.3,
    mask_dir: str | Path | None = None,
    keypoint_dir: str | Path | None = None,
    draw_dir: str | Path | None = None,
) -> list[dict[str, Any]]:
    """:func:`predict_images` once the model (torch, or an ONNX file's runner) and its preprocessing are loaded."""
    for folder in (mask_dir, keypoint_dir, draw_dir):
        if folder is not None:
            Path(folder).mkdir(parents=True, exist_ok=True)
    names_used = OutputNames()
    out = []
    for image in images:
        if not Path(image).is_file():
            raise DataError(f"{image}: image not found", UNUSABLE)
        stem = names_used.stem(image)
        drawing = Path(draw_dir) / f"{stem}.png" if draw_dir is not None else None
        if task == "pose_estimation":
            out.append(_pose(loaded, preprocess, image, Path(keypoint_dir) / stem if keypoint_dir else None, drawing))
            continue
        x = preprocess.image(image).unsqueeze(0).to(loaded.device)
        if task == "segmentation":
            target = Path(mask_dir) / f"{stem}.png" if mask_dir is not None else None
            out.append(_segment(loaded, x, image, target, drawing))
            continue
        if task == "detection":
            out.append(_detect(loaded, x, image, min_score, drawing))
            continue
        probs = torch.softmax(loaded.model(x)["pred"].float(), dim=-1)[0]
        scores, indices = probs.topk(min(top_k, loaded.num_classes))
        ranked = [
            {"index": int(i), "label": loaded.class_names[int(i)], "score": float(s)} for s, i in zip(scores, indices)
        ]
        out.append({"image": image, **ranked[0], "top_k": ranked})
    return out


class OutputNames:
    """File stems for what predict writes per image: the image's stem with anything but letters, digits, ``.``,
    ``-`` and ``_`` replaced by ``_`` (no hidden files either), and ``-2``, ``-3``... when two images share a stem
    (``a/img.png`` and ``b/img.png``), so no output overwrites another from the same call."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def stem(self, image: str | Path) -> str:
        base = re.sub(r"[^A-Za-z0-9._-]", "_", Path(image).stem).lstrip(".") or "image"
        stem, index = base, 2
        while stem.lower() in self.used:  # case-insensitive: macOS and Windows file systems are
            stem, index = f"{base}-{index}", index + 1
        self.used.add(stem.lower())
        return stem


def _segment(
    loaded: Loaded, x: torch.Tensor, image: str, mask_path: Path | None, drawing: Path | None
) -> dict[str, Any]:
    width, height = open_image(image).size
    logits = loaded.model(x)["pred"].float()
    logits = torch.nn.functional.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
    mask = logits.argmax(dim=1)[0].to("cpu")
    counts = torch.bincount(mask.flatten(), minlength=loaded.num_classes).tolist()
    total = max(1, height * width)
    record: dict[str, Any] = {
        "image": image,
        "classes": {loaded.class_names[i]: c / total for i, c in enumerate(counts) if c},
    }
    if mask_path is not None:
        picture = pil_module().Image.fromarray(mask.to(torch.uint8).numpy())  # 8-bit grey: class indices
        atomic_write(mask_path, lambda tmp: picture.save(tmp, format="PNG"))
        record["mask"] = str(mask_path)
    if drawing is not None:
        draw_mask(image, mask.numpy(), drawing)
        record["drawing"] = str(drawing)
    return record


def _detect(loaded: Loaded, x: torch.Tensor, image: str, min_score: float, drawing: Path | None) -> dict[str, Any]:
    width, height = open_image(image).size
    size = tuple(x.shape[-2:])
    found = loaded.postprocessor(loaded.model(x), size)[0]
    scale = torch.tensor([width / size[1], height / size[0], width / size[1], height / size[0]])
    detections = []
    for box, score, label in zip(found["boxes"].cpu(), found["scores"].cpu(), found["labels"].cpu()):
        if float(score) < min_score:
            continue
        corners = [round(float(v), 1) for v in box * scale]
        index = int(label)
        detections.append({"index": index, "label": loaded.class_names[index], "score": float(score), "box": corners})
    record: dict[str, Any] = {"image": image, "detections": detections}
    if drawing is not None:
        draw_boxes(image, detections, drawing)
        record["drawing"] = str(drawing)
    return record


def _pose(loaded: Loaded, preprocess: Any, image: str, stem: Path | None, drawing: Path | None) -> dict[str, Any]:
    from ..engine.metrics import decode_simcc

    x, crop = preprocess.image(image)
    pred = loaded.model(x.unsqueeze(0).to(loaded.device))["pred"]
    keypoints, scores = decode_simcc(pred, (preprocess.height, preprocess.width))
    positions = crop.to_image(keypoints[0].cpu().numpy())
    found = [
        {
            "index": i,
            "name": loaded.class_names[i],
            "x": round(float(xy[0]), 1),
            "y": round(float(xy[1]), 1),
            "score": float(score),
        }
        for i, (xy, score) in enumerate(zip(positions, scores[0].cpu()))
    ]
    record: dict[str, Any] = {"image": image, "keypoints": found}
    if stem is not None:
        atomic_write_text(f"{stem}.keypoints.json", json.dumps(record, indent=2) + "\n")
        draw_keypoints(image, found, f"{stem}.keypoints.png")
        record["json"], record["drawing"] = f"{stem}.keypoints.json", f"{stem}.keypoints.png"
    if drawing is not None:
        draw_keypoints(image, found, drawing)
        record["drawing"] = str(drawing)
    return record


# --- an exported ONNX file ------------------------------------------------------------------------------------------


def load_onnx(path: str | Path) -> Loaded:
    """An ``npc export`` ONNX file (fp32 or int8) as a :class:`Loaded`: onnxruntime runs it, its metadata gives the
    task, class names, preprocessing and (detection) the spec whose decoding + NMS applies."""
    from .onnx_model import OnnxModel

    model = OnnxModel(path)
    return Loaded(
        model=model,  # type: ignore[arg-type] - called like the torch model; evaluate() and predict need no more
        num_classes=model.num_classes,
        class_names=model.class_names,
        preprocess=model.preprocess(),
        metadata=model.metadata,
        device=torch.device("cpu"),
        postprocessor=model.postprocessor(),
    )


def predict_onnx(path: str | Path, images: list[str], **options: Any) -> list[dict[str, Any]]:
    """``npc predict MODEL.onnx IMAGE...``: as :func:`predict_images`, through onnxruntime, with no spec beside it."""
    loaded = load_onnx(path)
    task = loaded.metadata["task"]
    if options.get("draw_dir") is not None and task == "classification":
        raise RunError("--draw: a classification has nothing to draw on the image (the label is printed)", UNUSABLE)
    preprocess = loaded.preprocess or _default_preprocess(loaded.metadata)
    return predict_loaded(loaded, preprocess, images, task=task, **options)


def _default_preprocess(metadata: dict[str, Any]) -> Preprocess:
    """An export without trained weights records no preprocessing: RGB at the exported size, ImageNet statistics."""
    from ...spec.run_config import IMAGENET_MEAN, IMAGENET_STD

    side = int((metadata.get("input_size") or [224])[0])
    return Preprocess("rgb", side, tuple(IMAGENET_MEAN), tuple(IMAGENET_STD))


def evaluate_onnx_file(
    path: str | Path, *, data_path: str | None = None, split: str = "valid", batch_size: int | None = None
) -> dict[str, Any]:
    """``npc evaluate MODEL.onnx``: npc's metrics of an exported ONNX file over ``split`` of ``--data`` (default:
    the data section of the spec the file carries, else the task's built-in set). No loss: ONNX has none."""
    from ...spec.run_config import load_run_config
    from ..engine import evaluate

    loaded = load_onnx(path)
    text = loaded.metadata.get("spec_text")
    if not text:
        raise RunError(f"{path}: carries no spec (exported from a model.py); export it from a spec or run folder")
    with tempfile.TemporaryDirectory(prefix="npc-onnx-") as folder:
        spec = Path(folder) / f"spec{loaded.metadata.get('spec_suffix') or '.yaml'}"
        spec.write_text(text, encoding="utf-8")
        config = load_run_config(spec, data_path=data_path)
    task = config.spec.task
    data = build_data(config.data, (split,), task=task)
    if data.num_classes != loaded.num_classes:
        raise RunError(f"{path}: predicts {loaded.num_classes} classes, but {data.description} has {data.num_classes}")
    if loaded.preprocess is not None and loaded.preprocess != data.preprocess:
        data.notes.append(
            f"the model was trained with other preprocessing ({loaded.preprocess}); evaluating with the data's"
        )
    loader = DataLoader(
        data.splits[split],
        batch_size=batch_size or config.training["batch_size"],
        shuffle=False,
        collate_fn=data.collate,
    )
    metrics = evaluate(
        loaded.model, loader, None, data.num_classes, loaded.device, task=task, postprocessor=loaded.postprocessor
    )
    return _evaluation_record(path, data, task, split, metrics)


def _evaluation_record(weights: Any, data: Any, task: str, split: str, metrics: dict[str, Any]) -> dict[str, Any]:
    """What `npc evaluate` reports, for torch weights and an ONNX file alike."""
    return {
        "weights": str(weights),
        "data": data.description,
        "task": task,
        "split": split,
        "num_classes": data.num_classes,
        "metrics": list(METRICS.get(task, ())),
        **metrics,
        "notes": data.notes,
        "bad_samples": data.bad_samples.summary() if data.bad_samples is not None else None,
    }
