"""Detection losses: ``retinanet_loss`` (anchor_decoupled_head) and ``yolox_loss`` (anchor_free_decoupled_head).

Both follow NetsPresso Trainer 1.4.1 (written anew here, without torchvision):

* **retinanet_loss** — anchors are matched to ground-truth boxes by IoU: IoU >= 0.5 foreground, < 0.4
  background, in between ignored; each box's best anchors are foreground too (low-quality matches, as torchvision's
  ``Matcher(allow_low_quality_matches=True)``). Sigmoid focal loss (alpha 0.25, gamma 2) over every class of every
  non-ignored anchor plus L1 on the foreground anchors' box deltas (``dx = (gx - ax) / aw``, ``dw = log(gw / aw)``,
  weights 1), each summed per image, divided by that image's foreground count (at least 1), averaged over images.
  The anchors are the head's own (``out["anchors"]``), which NetsPresso lays out for a 512x512 input.
* **yolox_loss** — SimOTA assignment as in YOLOX: candidates are cells whose centre lies within 1.5 strides of a
  box's centre; cost = class BCE of sqrt(class x objectness probabilities) + 3 x (-log IoU) (+1e6 outside the
  centre region); each box takes its ``k`` cheapest candidates, ``k`` = the sum of its 10 best IoUs (at least 1);
  a cell claimed by two boxes goes to the cheaper. Loss = 5 x IoU loss (1 - IoU^2) + objectness BCE (all cells) +
  class BCE against IoU-scaled one-hot targets + L1 on the raw box outputs (from ``l1_activate_epoch`` on), each
  summed over the batch and divided by the number of foreground cells.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["RetinaNetLoss", "YOLOXLoss", "box_iou", "sigmoid_focal_loss"]

Targets = list[dict[str, torch.Tensor]]


def sigmoid_focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float, gamma: float) -> torch.Tensor:
    """Elementwise focal loss (Lin et al.); ``alpha < 0`` turns the class weighting off."""
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU of (N, 4) and (M, 4) boxes as x1, y1, x2, y2 → (N, M)."""
    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=2)
    return inter / (area_a[:, None] + area_b[None, :] - inter).clamp(min=1e-9)


# --- RetinaNet -----------------------------------------------------------------------------------------------------

FG_IOU, BG_IOU = 0.5, 0.4
IGNORED, BACKGROUND = -2, -1


class RetinaNetLoss(nn.Module):
    alpha, gamma = 0.25, 2.0  # fixed in the peer too

    def forward(self, out: dict[str, Any], targets: Targets, image_size: tuple[int, int] | None) -> torch.Tensor:
        anchors = out["anchors"]  # (A, 4)
        logits = torch.cat(out["cls_logits"], dim=1)  # (B, A, K)
        deltas = torch.cat(out["bbox_regression"], dim=1)  # (B, A, 4)
        cls_losses, box_losses = [], []
        for image_logits, image_deltas, target in zip(logits, deltas, targets, strict=True):
            matched = match_anchors(target["boxes"], anchors)
            foreground = matched >= 0
            count = max(1, int(foreground.sum()))
            wanted = torch.zeros_like(image_logits)
            wanted[foreground, target["labels"][matched[foreground]]] = 1.0
            valid = matched != IGNORED
            focal = sigmoid_focal_loss(image_logits[valid], wanted[valid], self.alpha, self.gamma)
            cls_losses.append(focal.sum() / count)
            encoded = encode_boxes(target["boxes"][matched[foreground]], anchors[foreground])
            box_losses.append(F.l1_loss(image_deltas[foreground], encoded, reduction="sum") / count)
        return torch.stack(cls_losses).mean() + torch.stack(box_losses).mean()


def match_anchors(boxes: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """Per anchor: the index of its ground-truth box, BACKGROUND (-1) or IGNORED (-2)."""
    if boxes.numel() == 0:
        return torch.full((len(anchors),), BACKGROUND, dtype=torch.long, device=anchors.device)
    iou = box_iou(boxes.to(anchors), anchors)  # (G, A)
    best, matched = iou.max(dim=0)
    result = matched.clone()
    result[best < FG_IOU] = IGNORED
    result[best < BG_IOU] = BACKGROUND
    best_per_box = iou.max(dim=1, keepdim=True).values
    low_quality = ((iou == best_per_box) & (best_per_box > 0)).any(dim=0)  # each box's best anchors stay foreground
    result[low_quality] = matched[low_quality]
    return result


def encode_boxes(boxes: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """Deltas that move ``anchors`` onto ``boxes`` (both (N, 4) x1 y1 x2 y2): centre shift in anchor sizes, log size."""
    anchor_size = anchors[:, 2:] - anchors[:, :2]
    anchor_centre = anchors[:, :2] + 0.5 * anchor_size
    box_size = boxes[:, 2:] - boxes[:, :2]
    box_centre = boxes[:, :2] + 0.5 * box_size
    return torch.cat([(box_centre - anchor_centre) / anchor_size, torch.log(box_size / anchor_size)], dim=1)


# --- YOLOX ---------------------------------------------------------------------------------------------------------

CENTRE_RADIUS = 1.5  # strides around a box centre where cells are candidates
IOU_COST = 3.0
CANDIDATES_FOR_K = 10  # best IoUs summed for a box's dynamic k
BOX_WEIGHT = 5.0


class YOLOXLoss(nn.Module):
    def __init__(self, l1_activate_epoch: int = 1) -> None:
        super().__init__()
        self.l1_activate_epoch = l1_activate_epoch
        self.epoch: int | None = None  # None: not training (the L1 term counts, as in the peer)

    def set_epoch(self, epoch: int | None) -> None:
        self.epoch = epoch

    def forward(self, out: dict[str, Any], targets: Targets, image_size: tuple[int, int] | None) -> torch.Tensor:
        levels = out["pred"]  # per level (B, 4 + 1 + K, H, W)
        raw, cells, strides = [], [], []
        for level in levels:
            h, w = level.shape[-2:]
            stride = (image_size[1] if image_size else w) // w  # as the peer: from the widths
            rows, columns = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
            cells.append(torch.stack([columns, rows], dim=-1).reshape(-1, 2).to(level))
            strides.append(torch.full((h * w,), float(stride), dtype=level.dtype, device=level.device))
            raw.append(level.flatten(2).transpose(1, 2))  # (B, H*W, 4 + 1 + K)
        raw_all = torch.cat(raw, dim=1)
        grid, stride = torch.cat(cells).to(raw_all.device), torch.cat(strides)
        centres = (raw_all[..., :2] + grid) * stride[:, None]
        sizes = torch.exp(raw_all[..., 2:4]) * stride[:, None]
        boxes = torch.cat([centres - sizes / 2, centres + sizes / 2], dim=-1)  # (B, N, 4) x1 y1 x2 y2
        objectness, class_logits = raw_all[..., 4], raw_all[..., 5:]
        use_l1 = self.epoch is None or self.epoch >= self.l1_activate_epoch

        l1_sum = boxes.new_zeros(())

        def box_term(fg: torch.Tensor, cells: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
            nonlocal l1_sum
            if use_l1:  # the L1 term is unweighted, so it is summed apart from the IoU term
                l1_sum = F.l1_loss(raw_all[fg][:, :4], l1_target(gt, grid[cells], stride[cells]), reduction="sum")
            return (1 - box_iou_aligned(boxes[fg], gt) ** 2).sum()

        box_sum, obj_sum, cls_sum, count = simota_sums(targets, boxes, objectness, class_logits, grid, stride, box_term)
        return (BOX_WEIGHT * box_sum + obj_sum + cls_sum + l1_sum) / count


def simota_sums(
    targets: Targets,
    boxes: torch.Tensor,
    objectness: torch.Tensor,
    class_logits: torch.Tensor,
    grid: torch.Tensor,
    stride: torch.Tensor,
    box_term: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """The SimOTA-assigned loss sums shared by yolox_loss and yolofastest_loss: (box, objectness, class, count).

    Per image, SimOTA picks the foreground cells and their boxes (no gradient). The loss terms then run once over
    the whole batch, as the peer's per-image sums add up to (a handful of ops for autograd instead of a dozen per
    image): ``box_term(fg, cells, matched_gt)`` gets the (B, N) foreground mask, each foreground cell's index and its
    box, in the mask's row-major order, and gives the box loss summed over them. Objectness is BCE over every cell (1
    on foreground), class BCE is against IoU-scaled one-hot targets; ``count`` is the number of foreground cells (at
    least 1), which the caller divides by.
    """
    fg_all = torch.zeros(objectness.shape, dtype=torch.bool, device=boxes.device)
    matched_gt, matched_labels, matched_ious = [], [], []
    with torch.no_grad():
        for b, target in enumerate(targets):
            gt = target["boxes"].to(boxes)
            if len(gt) == 0:
                continue
            fg, matched, matched_iou = simota(
                gt, target["labels"], boxes[b], objectness[b], class_logits[b], grid, stride
            )
            if not fg.any():
                continue
            fg_all[b] = fg
            matched_gt.append(gt[matched])
            matched_labels.append(target["labels"].to(boxes.device)[matched].long())
            matched_ious.append(matched_iou)
    obj_sum = F.binary_cross_entropy_with_logits(objectness, fg_all.to(objectness.dtype), reduction="sum")
    if not matched_gt:
        zero = boxes.new_zeros(())
        return zero, obj_sum, zero, 1
    cells = fg_all.nonzero()[:, 1]
    box_sum = box_term(fg_all, cells, torch.cat(matched_gt))
    wanted = F.one_hot(torch.cat(matched_labels), class_logits.shape[-1]).to(boxes) * torch.cat(matched_ious)[:, None]
    cls_sum = F.binary_cross_entropy_with_logits(class_logits[fg_all], wanted, reduction="sum")
    return box_sum, obj_sum, cls_sum, len(cells)


def box_iou_aligned(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of a[i] with b[i] for (N, 4) x1 y1 x2 y2 boxes → (N,)."""
    top_left = torch.maximum(a[:, :2], b[:, :2])
    bottom_right = torch.minimum(a[:, 2:], b[:, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=1)
    area_a = (a[:, 2:] - a[:, :2]).clamp(min=0).prod(dim=1)
    area_b = (b[:, 2:] - b[:, :2]).clamp(min=0).prod(dim=1)
    return inter / (area_a + area_b - inter).clamp(min=1e-9)


def l1_target(gt: torch.Tensor, grid: torch.Tensor, stride: torch.Tensor) -> torch.Tensor:
    """What the raw box outputs should be: centre offset from the cell and log size, in strides."""
    centre = (gt[:, :2] + gt[:, 2:]) / 2
    size = gt[:, 2:] - gt[:, :2]
    return torch.cat([centre / stride[:, None] - grid, torch.log(size / stride[:, None] + 1e-8)], dim=1)


def simota(
    gt: torch.Tensor,
    labels: torch.Tensor,
    boxes: torch.Tensor,
    objectness: torch.Tensor,
    class_logits: torch.Tensor,
    grid: torch.Tensor,
    stride: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(foreground mask (N,), matched box index per foreground cell, its IoU) for one image."""
    cell_centres = (grid + 0.5) * stride[:, None]  # (N, 2)
    gt_centres = (gt[:, :2] + gt[:, 2:]) / 2  # (G, 2)
    reach = CENTRE_RADIUS * stride[None, :]  # (1, N)
    near = ((cell_centres[None, :, 0] - gt_centres[:, None, 0]).abs() < reach) & (
        (cell_centres[None, :, 1] - gt_centres[:, None, 1]).abs() < reach
    )  # (G, N)
    candidate = near.any(dim=0)
    fg = torch.zeros(len(boxes), dtype=torch.bool, device=boxes.device)
    if not candidate.any():
        return fg, torch.zeros(0, dtype=torch.long, device=boxes.device), boxes.new_zeros(0)
    ious = box_iou(gt, boxes[candidate])  # (G, C)
    probabilities = (class_logits[candidate].sigmoid() * objectness[candidate, None].sigmoid()).sqrt()
    one_hot = F.one_hot(labels.long(), class_logits.shape[-1]).to(boxes)  # (G, K)
    cls_cost = F.binary_cross_entropy(
        probabilities[None].expand(len(gt), -1, -1),
        one_hot[:, None].expand(-1, len(probabilities), -1),
        reduction="none",
    ).sum(-1)
    cost = cls_cost + IOU_COST * -torch.log(ious + 1e-8) + 1e6 * (~near[:, candidate])
    top = ious.topk(min(CANDIDATES_FOR_K, ious.shape[1]), dim=1).values
    dynamic_k = top.sum(dim=1).int().clamp(min=1)
    matching = torch.zeros_like(cost, dtype=torch.bool)
    for g in range(len(gt)):
        matching[g, cost[g].topk(int(dynamic_k[g]), largest=False).indices] = True
    shared = matching.sum(dim=0) > 1
    if shared.any():  # a cell claimed by several boxes goes to the cheapest
        cheapest = cost[:, shared].argmin(dim=0)
        matching[:, shared] = False
        matching[cheapest, shared.nonzero().squeeze(1)] = True
    chosen = matching.any(dim=0)
    matched = matching[:, chosen].float().argmax(dim=0)
    matched_iou = ious[matched, chosen.nonzero().squeeze(1)]
    fg[candidate.nonzero().squeeze(1)[chosen]] = True
    return fg, matched, matched_iou
