"""YOLO-family detection losses: ``yolov9_loss`` (``yolo_detection_head``), ``yolofastest_loss``
(``yolo_fastest_head_v2``).

Follows NetsPresso Trainer 1.4.1 (itself after github.com/WongKinYiu/YOLO), written anew here:

* **yolov9_loss** — each level's output is (B, 4 x reg_max + K, H, W): per box side (left, top, right, bottom) a
  distribution over ``reg_max`` bins, then K class logits. A cell's anchor point is its centre in pixels; its box
  is the anchor minus (left, top) and plus (right, bottom), each side the distribution's mean times the stride.
  Task-aligned assignment: a ground-truth box may take the cells whose anchor lies strictly inside it; its
  suitability for a cell is CIoU^6 x p(class)^0.5 (CIoU clamped to [0, 1], p the sigmoid class probability), and
  it takes its 10 most suitable cells (those with suitability > 0). A cell taken by two boxes goes to the one it
  overlaps most (CIoU). A taken cell's class target is the one-hot label scaled by its suitability over the
  box's best suitability times the box's best CIoU. Loss = 0.5 x class BCE (all cells) + 7.5 x CIoU loss
  (1 - CIoU) + 1.5 x DFL (cross-entropy to the two bins around each side's distance in strides, clamped to
  [0, reg_max - 1.01], linearly weighted, averaged over the 4 sides); the box terms of a cell are weighted by its
  class-target sum, and all three are divided by the sum of all class targets (at least 1).
* **yolofastest_loss** — each level's output is (B, A, 4 + 1 + K, H, W) for the level's A anchors (``anchors``,
  (width, height) pairs in pixels, as the head's). An anchor's box is centred at (sigmoid(tx, ty) + cell) x stride
  with size 2 x (tanh(tw / 2 - atanh(0.5)) + 1) x the anchor's size (zero outputs give the anchor itself). Then
  as ``yolox_loss`` (SimOTA over every anchor of every cell), with a GIoU box loss 5 x (1 - GIoU) and no L1 term.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...compiler.components.yolo_fastest_head_v2 import DEFAULT_ANCHORS
from ..errors import RunError
from .detection import BOX_WEIGHT, simota_sums

__all__ = ["YOLOFastestLoss", "YOLOv9Loss", "ciou", "giou"]

Targets = list[dict[str, torch.Tensor]]

TOPK = 10  # cells per ground-truth box
IOU_POWER, CLS_POWER = 6.0, 0.5  # exponents of the assignment's suitability
CLS_WEIGHT, DFL_WEIGHT, IOU_WEIGHT = 0.5, 1.5, 7.5
EPS = 1e-7


def ciou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Complete IoU of boxes ``a`` and ``b`` (x1 y1 x2 y2, broadcast together); the aspect weight is a constant."""
    inter_w = (torch.minimum(a[..., 2], b[..., 2]) - torch.maximum(a[..., 0], b[..., 0])).clamp(min=0)
    inter_h = (torch.minimum(a[..., 3], b[..., 3]) - torch.maximum(a[..., 1], b[..., 1])).clamp(min=0)
    inter = inter_w * inter_h
    wa, ha = a[..., 2] - a[..., 0], a[..., 3] - a[..., 1]
    wb, hb = b[..., 2] - b[..., 0], b[..., 3] - b[..., 1]
    iou = inter / (wa * ha + wb * hb - inter + EPS)
    centre_distance = (
        (a[..., 0] + a[..., 2] - b[..., 0] - b[..., 2]) ** 2 + (a[..., 1] + a[..., 3] - b[..., 1] - b[..., 3]) ** 2
    ) / 4
    enclosing_w = torch.maximum(a[..., 2], b[..., 2]) - torch.minimum(a[..., 0], b[..., 0])
    enclosing_h = torch.maximum(a[..., 3], b[..., 3]) - torch.minimum(a[..., 1], b[..., 1])
    diou = iou - centre_distance / (enclosing_w**2 + enclosing_h**2 + EPS)
    v = (4 / math.pi**2) * (torch.atan(wa / (ha + EPS)) - torch.atan(wb / (hb + EPS))) ** 2
    with torch.no_grad():
        alpha = v / (v - iou + 1 + EPS)
    return diou - alpha * v


def anchor_points(image_size: tuple[int, int], strides: list[int], device: torch.device) -> tuple[torch.Tensor, ...]:
    """Cell centres in pixels (N, 2) as x, y, level by level, and each cell's stride (N,)."""
    height, width = image_size
    points, scales = [], []
    for stride in strides:
        ys = torch.arange(0, height, stride, device=device) + stride // 2
        xs = torch.arange(0, width, stride, device=device) + stride // 2
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        points.append(torch.stack([grid_x.flatten(), grid_y.flatten()], dim=-1))
        scales.append(torch.full((grid_x.numel(),), stride, device=device))
    return torch.cat(points).float(), torch.cat(scales).float()


class YOLOv9Loss(nn.Module):
    def __init__(self, reg_max: int = 16, l1_activate_epoch: int | None = None) -> None:
        super().__init__()
        self.reg_max = reg_max  # l1_activate_epoch is accepted and unused, as in the peer

    def forward(self, out: dict[str, Any], targets: Targets, image_size: tuple[int, int] | None) -> torch.Tensor:
        levels = out["pred"]  # per level (B, 4 * reg_max + K, H, W)
        if levels[0].shape[1] <= 4 * self.reg_max:
            raise RunError(
                f"yolov9_loss has reg_max {self.reg_max}, but the head gives {levels[0].shape[1]} channels per level: "
                "set the loss's reg_max to the yolo_detection_head's"
            )
        size = image_size or (levels[0].shape[-2] * 8, levels[0].shape[-1] * 8)
        strides = [size[1] // level.shape[-1] for level in levels]  # as the peer: from the widths
        anchors, stride = anchor_points(size, strides, levels[0].device)
        flat = torch.cat([level.flatten(2).transpose(1, 2) for level in levels], dim=1)  # (B, N, 4 * reg_max + K)
        sides = flat[..., : 4 * self.reg_max].unflatten(-1, (4, self.reg_max))  # (B, N, 4, reg_max)
        class_logits = flat[..., 4 * self.reg_max :]
        bins = torch.arange(self.reg_max, dtype=flat.dtype, device=flat.device)
        distances = (sides.softmax(dim=-1) * bins).sum(-1) * stride[:, None]  # (B, N, 4) in pixels
        boxes = torch.cat([anchors - distances[..., :2], anchors + distances[..., 2:]], dim=-1)

        wanted_cls = torch.zeros_like(class_logits)
        wanted_box = torch.zeros_like(boxes)
        assigned = torch.zeros(boxes.shape[:2], dtype=torch.bool, device=boxes.device)
        for b, target in enumerate(targets):
            if len(target["boxes"]):
                with torch.no_grad():
                    wanted_cls[b], wanted_box[b], assigned[b] = assign(
                        target["boxes"].to(boxes), target["labels"].long(), boxes[b], class_logits[b], anchors
                    )
        norm = wanted_cls.sum().clamp(min=1)
        loss_cls = F.binary_cross_entropy_with_logits(class_logits, wanted_cls, reduction="sum") / norm
        box_weight = wanted_cls.sum(-1)[assigned]
        scale = stride[None, :, None].expand_as(boxes)[assigned]  # boxes are compared in strides, as the peer
        box_ciou = ciou(boxes[assigned] / scale, wanted_box[assigned] / scale)
        loss_iou = ((1 - box_ciou) * box_weight).sum() / norm
        sides_target = (
            torch.cat([anchors[None] - wanted_box[..., :2], wanted_box[..., 2:] - anchors[None]], dim=-1)
            / stride[None, :, None]
        )
        dfl = distribution_focal_loss(sides[assigned], sides_target[assigned].clamp(0, self.reg_max - 1.01))
        loss_dfl = (dfl * box_weight).sum() / norm
        return CLS_WEIGHT * loss_cls + DFL_WEIGHT * loss_dfl + IOU_WEIGHT * loss_iou


def distribution_focal_loss(logits: torch.Tensor, distances: torch.Tensor) -> torch.Tensor:
    """(M, 4, reg_max) logits and (M, 4) distances in bins → (M,): CE to the neighbouring bins, mean over sides."""
    left = distances.floor()
    right_weight = distances - left
    log_p = logits.log_softmax(dim=-1)
    at_left = log_p.gather(-1, left.long()[..., None])[..., 0]
    at_right = log_p.gather(-1, left.long()[..., None] + 1)[..., 0]
    return -(at_left * (1 - right_weight) + at_right * right_weight).mean(dim=-1)


def assign(
    gt: torch.Tensor, labels: torch.Tensor, boxes: torch.Tensor, class_logits: torch.Tensor, anchors: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For one image: class targets (N, K), box targets (N, 4) and the assigned-cell mask (N,)."""
    inside = (
        (gt[:, None, 0] < anchors[None, :, 0])
        & (anchors[None, :, 0] < gt[:, None, 2])
        & (gt[:, None, 1] < anchors[None, :, 1])
        & (anchors[None, :, 1] < gt[:, None, 3])
    )  # (G, N)
    overlap = ciou(gt[:, None], boxes[None]).clamp(0, 1)  # (G, N)
    probability = class_logits.sigmoid().T[labels]  # (G, N)
    suitability = inside * overlap**IOU_POWER * probability**CLS_POWER
    top = suitability.topk(min(TOPK, suitability.shape[1]), dim=1)
    chosen = torch.zeros_like(suitability).scatter_(1, top.indices, top.values) > 0
    shared = chosen.sum(0) > 1
    best = F.one_hot(overlap.argmax(0), len(gt)).T.bool()  # (G, N): each cell's most overlapping box
    chosen = torch.where(shared[None], best, chosen)
    owner = chosen.float().argmax(0)  # (N,)
    assigned = chosen.any(0)
    suitability, overlap = suitability * chosen, overlap * chosen
    scaled = suitability / (suitability.amax(1, keepdim=True) + 1e-9) * overlap.amax(1, keepdim=True)
    strength = scaled.gather(0, owner[None])[0] * assigned
    wanted_cls = F.one_hot(labels[owner], class_logits.shape[1]).to(boxes) * strength[:, None]
    return wanted_cls, gt[owner], assigned


# --- YOLO-Fastest-v2 -----------------------------------------------------------------------------------------------

SIZE_SHIFT = math.atanh(0.5)  # zero size outputs give exactly the anchor's size


def giou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Generalised IoU of a[i] and b[i], (N, 4) x1 y1 x2 y2 boxes → (N,)."""
    inter = (torch.minimum(a[:, 2:], b[:, 2:]) - torch.maximum(a[:, :2], b[:, :2])).clamp(min=0).prod(dim=1)
    union = (a[:, 2:] - a[:, :2]).prod(dim=1) + (b[:, 2:] - b[:, :2]).prod(dim=1) - inter
    enclosing = (torch.maximum(a[:, 2:], b[:, 2:]) - torch.minimum(a[:, :2], b[:, :2])).prod(dim=1)
    return inter / (union + EPS) - (enclosing - union) / (enclosing + EPS)


class YOLOFastestLoss(nn.Module):
    def __init__(self, anchors: list[list[float]] = DEFAULT_ANCHORS, l1_activate_epoch: int | None = None) -> None:
        super().__init__()
        self.anchors = [torch.tensor(level, dtype=torch.float32).view(-1, 2) for level in anchors]
        # l1_activate_epoch is accepted and unused: the peer never adds the L1 term to this loss

    def forward(self, out: dict[str, Any], targets: Targets, image_size: tuple[int, int] | None) -> torch.Tensor:
        levels = out["pred"]  # per level (B, A, 4 + 1 + K, H, W)
        if len(levels) != len(self.anchors) or any(
            level.shape[1] != len(anchors) for level, anchors in zip(levels, self.anchors)
        ):
            raise RunError(
                f"yolofastest_loss has {[len(a) for a in self.anchors]} anchors per level, the head gives "
                f"{[level.shape[1] for level in levels]}: give the loss the head's anchors"
            )
        raw, cells, strides, sizes = [], [], [], []
        for level, anchors in zip(levels, self.anchors):
            batch, count, channels, h, w = level.shape
            stride = (image_size[1] if image_size else w) // w  # as the peer: from the widths
            rows, columns = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
            cells.append(torch.stack([columns, rows], dim=-1).reshape(1, -1, 2).expand(count, -1, -1).reshape(-1, 2))
            strides.append(torch.full((count * h * w,), float(stride)))
            sizes.append(anchors[:, None].expand(-1, h * w, -1).reshape(-1, 2))
            raw.append(level.permute(0, 1, 3, 4, 2).reshape(batch, count * h * w, channels))  # anchor-major
        raw_all = torch.cat(raw, dim=1)
        grid, stride = torch.cat(cells).to(raw_all), torch.cat(strides).to(raw_all)
        centres = (raw_all[..., :2].sigmoid() + grid) * stride[:, None]
        wh = 2 * (torch.tanh(raw_all[..., 2:4] / 2 - SIZE_SHIFT) + 1) * torch.cat(sizes).to(raw_all)
        boxes = torch.cat([centres - wh / 2, centres + wh / 2], dim=-1)  # (B, N, 4) x1 y1 x2 y2
        objectness, class_logits = raw_all[..., 4], raw_all[..., 5:]

        def box_term(fg: torch.Tensor, cells: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
            return (1 - giou(boxes[fg], gt).clamp(-1, 1)).sum()

        box_sum, obj_sum, cls_sum, count = simota_sums(targets, boxes, objectness, class_logits, grid, stride, box_term)
        return (BOX_WEIGHT * box_sum + obj_sum + cls_sum) / count
