"""Validation metrics per task, through torchmetrics, plus the mean loss.

* classification: top-1 and (with at least five classes) top-5 accuracy (``MulticlassAccuracy``, micro).
* segmentation: mIoU (``MulticlassJaccardIndex``, macro over classes) and pixel accuracy (``MulticlassAccuracy``,
  micro), both skipping pixels marked 255; the logits are upsampled (bilinear) to the mask's size first.
* pose estimation: PCK@0.2 (share of labelled keypoints predicted within 0.2 x the input's longer side; the input
  is the person's box, so this is the box-normalised PCK) and OKS AP (COCO keypoint AP@[.5:.95] through
  pycocotools, one person per sample, every keypoint with sigma 0.07, the box area taken as the input's area).
  Keypoints are decoded from the SimCC bins by argmax, as NetsPresso Trainer does.
* detection: COCO mAP@[.5:.95] and mAP@.5 over the boxes of the model's emitted ``build_postprocessor`` (decode +
  NMS). torchmetrics' ``MeanAveragePrecision`` refuses to run without torchvision, whose PyPI wheels do not load
  against the pinned CPU torch, so :class:`CocoMAP` is a small torchmetrics ``Metric`` that runs the same
  ``pycocotools`` COCOeval that ``MeanAveragePrecision``'s default backend runs.

``PRIMARY[task]`` names the metric that picks ``best.safetensors``.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from torchmetrics import Metric

from .report import LABELS

__all__ = ["LABELS", "METRICS", "PRIMARY", "CocoMAP", "decode_simcc", "evaluate", "to_device"]

IGNORE_INDEX = 255
METRICS: dict[str, tuple[str, ...]] = {  # the metric columns each task reports, primary first
    "classification": ("top1", "top5"),
    "segmentation": ("miou", "pixel_acc"),
    "detection": ("map", "map50"),
    "pose_estimation": ("pck", "oks_ap"),
}
PRIMARY = {task: names[0] for task, names in METRICS.items()}


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    loss_fn: nn.Module | None,
    num_classes: int,
    device: torch.device,
    *,
    task: str = "classification",
    postprocessor: Callable | None = None,
) -> dict[str, Any]:
    """{"loss", one key per ``METRICS[task]`` (None when not computable), "samples"}; leaves the model in eval mode."""
    model.eval()
    if loss_fn is not None and hasattr(loss_fn, "set_epoch"):
        loss_fn.set_epoch(None)
    meters = _meters(task, num_classes, postprocessor is not None)
    for meter in meters.values():
        if meter is not None:
            meter.to(device)
    total_loss, samples = 0.0, 0
    for images, target in loader:
        images, target = images.to(device), to_device(target, device)
        out = model(images)
        size = tuple(images.shape[-2:])
        if loss_fn is not None:
            loss, _ = loss_fn(out, target, size)
            total_loss += float(loss) * len(images)
        _update(task, meters, out, target, size, postprocessor)
        samples += len(images)
    result: dict[str, Any] = {"loss": total_loss / max(1, samples) if loss_fn is not None else None}
    if task == "detection":  # one COCOeval gives both numbers
        values = meters["map"].compute() if meters["map"] is not None else {}
        result.update({name: values.get(name) for name in METRICS["detection"]})
    else:
        result.update({name: float(m.compute()) if m is not None else None for name, m in meters.items()})
    result["samples"] = samples
    return result


def to_device(target: Any, device: torch.device) -> Any:
    """Class indices or masks (a tensor), or detection targets (a list of dicts of tensors), on ``device``."""
    if isinstance(target, torch.Tensor):
        return target.to(device, non_blocking=True)
    return [{k: v.to(device, non_blocking=True) for k, v in t.items()} for t in target]


def _meters(task: str, num_classes: int, can_detect: bool) -> dict[str, Any]:
    from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

    # under torchrun only rank 0 evaluates (on the whole split): compute() must not wait for the other processes
    local = {"sync_on_compute": False}
    if task == "segmentation":
        return {
            "miou": MulticlassJaccardIndex(
                num_classes=num_classes, average="macro", ignore_index=IGNORE_INDEX, **local
            ),
            "pixel_acc": MulticlassAccuracy(
                num_classes=num_classes, average="micro", ignore_index=IGNORE_INDEX, **local
            ),
        }
    if task == "detection":
        return {"map": CocoMAP(**local) if can_detect else None}
    if task == "pose_estimation":
        return pose_meters(**local)
    return {
        "top1": MulticlassAccuracy(num_classes=num_classes, top_k=1, average="micro", **local),
        "top5": MulticlassAccuracy(num_classes=num_classes, top_k=5, average="micro", **local)
        if num_classes >= 5
        else None,
    }


def _update(task, meters, out, target, size, postprocessor) -> None:
    if task == "segmentation":
        logits = F.interpolate(out["pred"], size=target.shape[-2:], mode="bilinear", align_corners=False)
        meters["miou"].update(logits, target)
        meters["pixel_acc"].update(logits, target)
    elif task == "detection":
        if meters["map"] is not None:
            meters["map"].update(postprocessor(out, size), target)
    elif task == "pose_estimation":
        update_pose_meters(meters, out, target, size)
    else:
        for meter in meters.values():
            if meter is not None:
                meter.update(out["pred"], target)


class CocoMAP(Metric):
    """COCO box mAP@[.5:.95] and mAP@.5 with pycocotools; ``update(preds, targets)`` takes lists of box dicts
    (``boxes`` x1 y1 x2 y2, ``scores``, ``labels``) as torchmetrics' ``MeanAveragePrecision`` does."""

    full_state_update = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("detections", default=[], dist_reduce_fx=None)
        self.add_state("truths", default=[], dist_reduce_fx=None)

    def update(self, preds: list[dict[str, torch.Tensor]], targets: list[dict[str, torch.Tensor]]) -> None:
        for pred, target in zip(preds, targets, strict=True):
            self.detections.append({k: pred[k].detach().float().cpu() for k in ("boxes", "scores", "labels")})
            self.truths.append({k: target[k].detach().cpu() for k in ("boxes", "labels")})

    def compute(self) -> dict[str, float]:
        return coco_map(self.detections, self.truths)


def coco_map(detections: list[dict[str, torch.Tensor]], truths: list[dict[str, torch.Tensor]]) -> dict[str, float]:
    """{"map": mAP@[.5:.95], "map50": mAP@.5}; 0 when nothing was detected (pycocotools cannot score that)."""
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:  # pragma: no cover - a runtime dependency
        from ..errors import UNUSABLE, RunError

        raise RunError("detection metrics need pycocotools: pip install 'pycocotools>=2.0.7'", UNUSABLE) from None
    images, annotations, results = [], [], []
    classes: set[int] = set()
    for image_id, (det, truth) in enumerate(zip(detections, truths, strict=True)):
        images.append({"id": image_id})
        for box, label in zip(truth["boxes"].tolist(), truth["labels"].tolist()):
            x1, y1, x2, y2 = box
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(label),
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                }
            )
            classes.add(int(label))
        for box, score, label in zip(det["boxes"].tolist(), det["scores"].tolist(), det["labels"].tolist()):
            x1, y1, x2, y2 = box
            results.append(
                {"image_id": image_id, "category_id": int(label), "bbox": [x1, y1, x2 - x1, y2 - y1], "score": score}
            )
            classes.add(int(label))
    if not annotations or not results:
        return {"map": 0.0, "map50": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress and summary table
        truth_api = COCO()
        truth_api.dataset = {
            "images": images,
            "annotations": annotations,
            "categories": [{"id": c} for c in sorted(classes)],
        }
        truth_api.createIndex()
        evaluation = COCOeval(truth_api, truth_api.loadRes(results), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    stats = evaluation.stats
    return {"map": max(0.0, float(stats[0])), "map50": max(0.0, float(stats[1]))}


# --- pose estimation ---------------------------------------------------------------------------------------------

PCK_THRESHOLD = 0.2  # of the input's longer side
OKS_SIGMA = 0.07  # per keypoint, on COCO's scale (its 17 sigmas average 0.072); the data names no others


def decode_simcc(pred: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """SimCC logits (B, K, X + Y) → keypoints (B, K, 2) in input pixels and scores (B, K): the argmax bin of each
    axis over the bins per pixel, and the lower of the two axes' softmax peaks. ``size`` (H, W) splits the bins
    (X = W x ratio), so non-square inputs decode right."""
    height, width = size
    ratio = pred.shape[-1] / (height + width)
    bins_x = int(width * ratio)
    x_logits, y_logits = pred[..., :bins_x].float(), pred[..., bins_x:].float()
    keypoints = torch.stack([x_logits.argmax(-1), y_logits.argmax(-1)], dim=-1).float() / ratio
    peaks = torch.minimum(x_logits.softmax(-1).amax(-1), y_logits.softmax(-1).amax(-1))
    return keypoints, peaks


def pose_meters(**kwargs: Any) -> dict[str, Metric]:
    return {"pck": PCK(**kwargs), "oks_ap": KeypointOKSAP(**kwargs)}


def update_pose_meters(meters: dict[str, Metric], out: dict[str, Any], target: torch.Tensor, size) -> None:
    keypoints, scores = decode_simcc(out["pred"], size)
    for meter in meters.values():
        meter.update(keypoints, scores, target, size)


class PCK(Metric):
    """Share of labelled keypoints (``visible`` > 0) within ``PCK_THRESHOLD`` x the input's longer side."""

    full_state_update = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("hits", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("labelled", default=torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, keypoints: torch.Tensor, scores: torch.Tensor, target: torch.Tensor, size) -> None:
        labelled = target[..., 2] > 0
        distance = torch.linalg.vector_norm(keypoints - target[..., :2].float(), dim=-1)
        self.hits += ((distance <= PCK_THRESHOLD * max(size)) & labelled).sum()
        self.labelled += labelled.sum()

    def compute(self) -> torch.Tensor:
        return self.hits / self.labelled.clamp(min=1)


class KeypointOKSAP(Metric):
    """COCO keypoint AP@[.5:.95] of one predicted person per sample against its labelled keypoints."""

    full_state_update = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("predicted", default=[], dist_reduce_fx=None)
        self.add_state("scores", default=[], dist_reduce_fx=None)
        self.add_state("truths", default=[], dist_reduce_fx=None)
        self.area = 1.0

    def update(self, keypoints: torch.Tensor, scores: torch.Tensor, target: torch.Tensor, size) -> None:
        self.area = float(size[0] * size[1])
        self.predicted.append(keypoints.detach().cpu())
        self.scores.append(scores.detach().float().mean(-1).cpu())
        self.truths.append(target.detach().float().cpu())

    def compute(self) -> torch.Tensor:
        if not self.truths:
            return torch.tensor(0.0)
        return torch.tensor(
            oks_ap(torch.cat(self.predicted), torch.cat(self.scores), torch.cat(self.truths), self.area)
        )


def oks_ap(keypoints: torch.Tensor, scores: torch.Tensor, truths: torch.Tensor, area: float) -> float:
    """pycocotools' keypoint AP@[.5:.95]: ``keypoints`` (N, K, 2), ``scores`` (N,), ``truths`` (N, K, 3)."""
    import numpy as np

    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:  # pragma: no cover - a runtime dependency
        from ..errors import UNUSABLE, RunError

        raise RunError("pose metrics need pycocotools: pip install 'pycocotools>=2.0.7'", UNUSABLE) from None
    count, num_keypoints = truths.shape[:2]
    side = area**0.5
    images, annotations, results = [], [], []
    for index in range(count):
        truth = truths[index]
        labelled = truth[:, 2] > 0
        flat_truth = torch.cat([truth[:, :2], labelled[:, None].float() * 2], dim=1).flatten().tolist()
        images.append({"id": index})
        annotations.append(
            {
                "id": index + 1,
                "image_id": index,
                "category_id": 1,
                "keypoints": flat_truth,
                "num_keypoints": int(labelled.sum()),
                "area": area,
                "bbox": [0.0, 0.0, side, side],
                "iscrowd": 0,
            }
        )
        flat_pred = torch.cat([keypoints[index], torch.ones(num_keypoints, 1)], dim=1).flatten().tolist()
        results.append({"image_id": index, "category_id": 1, "keypoints": flat_pred, "score": float(scores[index])})
    if not any(a["num_keypoints"] for a in annotations):
        return 0.0
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress and summary table
        truth_api = COCO()
        truth_api.dataset = {"images": images, "annotations": annotations, "categories": [{"id": 1}]}
        truth_api.createIndex()
        evaluation = COCOeval(truth_api, truth_api.loadRes(results), "keypoints")
        evaluation.params.kpt_oks_sigmas = np.full(num_keypoints, OKS_SIGMA)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return max(0.0, float(evaluation.stats[0]))
