"""``detr_loss`` (``rtdetr_head``): Hungarian matching, then class and box terms per decoder layer.

Follows NetsPresso Trainer 1.4.1 (after lyuwenyu/RT-DETR's criterion), written anew here. The head's ``pred`` is
(B, Q, 4 + K): boxes as normalised (cx, cy, w, h), then class logits; in training ``aux_pred`` lists the other
decoder layers' and the encoder's top-k ``{"pred_logits", "pred_boxes"}``, and ``dn_aux_pred``/``dn_meta`` the
denoising queries when the head made any. Target boxes (x1, y1, x2, y2 in pixels) are divided by the input size.

* **Matching** (per output, per image): cost = ``cost_class`` x class cost + ``cost_bbox`` x L1 distance of the
  (cx, cy, w, h) boxes + ``cost_giou`` x (-GIoU); the class cost is the focal cost
  alpha (1 - p)^gamma (-log p) - (1 - alpha) p^gamma (-log(1 - p)) of the target class's sigmoid probability
  (``use_focal_loss``) or minus its softmax probability. Each target gets one query, minimising the total cost
  (``scipy.optimize.linear_sum_assignment``). Denoising queries are matched by construction (``dn_meta``).
* **Terms**, each divided by the number of target boxes in the batch (at least 1; for the denoising outputs times
  the number of denoising groups) and multiplied by its ``weight_dict`` entry (missing: not counted):
  ``vfl`` — varifocal BCE against the matched class scaled by the (detached) IoU, weighted by
  alpha p^gamma on the negatives and by the target score on the positives; ``focal`` — sigmoid focal loss
  against the one-hot matched class; ``boxes`` — ``loss_bbox`` L1 of (cx, cy, w, h) and ``loss_giou`` 1 - GIoU of
  the matched pairs; ``cardinality`` — |number of queries whose top class is not the last - number of targets|,
  averaged over images, without gradient (for logging, as the peer).
* ``labels`` (softmax cross-entropy with a no-object class) is refused: the head gives no no-object logit, so the
  peer's term cannot run on it either.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment  # scipy comes with scikit-learn, a runtime dependency
from torch import nn

from .detection import sigmoid_focal_loss

__all__ = [
    "DEFAULT_MATCHER",
    "DEFAULT_TERMS",
    "DEFAULT_WEIGHTS",
    "DETRLoss",
    "LossParamError",
    "hungarian_match",
    "pairwise_giou",
]

Targets = list[dict[str, torch.Tensor]]
Output = dict[str, torch.Tensor]
Indices = list[tuple[torch.Tensor, torch.Tensor]]
EPS = 1e-8

DEFAULT_WEIGHTS = {"loss_vfl": 1, "loss_bbox": 5, "loss_giou": 2}
DEFAULT_TERMS = ["vfl", "boxes"]
DEFAULT_MATCHER = {
    "type": "HungarianMatcher",
    "weight_dict": {"cost_class": 2, "cost_bbox": 5, "cost_giou": 2},
    "alpha": 0.25,
    "gamma": 2.0,
    "use_focal_loss": True,
}


class LossParamError(ValueError):
    """A loss parameter the runtime cannot honour; ``key`` is its path under the loss entry."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    centre, size = boxes[..., :2], boxes[..., 2:]
    return torch.cat([centre - size / 2, centre + size / 2], dim=-1)


def xyxy_to_cxcywh(boxes: torch.Tensor) -> torch.Tensor:
    return torch.cat([(boxes[..., :2] + boxes[..., 2:]) / 2, boxes[..., 2:] - boxes[..., :2]], dim=-1)


def pairwise_giou(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(IoU, GIoU) of (N, 4) and (M, 4) x1 y1 x2 y2 boxes, each (N, M)."""
    area_a = (a[:, 2:] - a[:, :2]).prod(dim=1)
    area_b = (b[:, 2:] - b[:, :2]).prod(dim=1)
    inter = (torch.minimum(a[:, None, 2:], b[None, :, 2:]) - torch.maximum(a[:, None, :2], b[None, :, :2])).clamp(min=0)
    inter = inter.prod(dim=2)
    union = area_a[:, None] + area_b[None, :] - inter
    enclosing = (torch.maximum(a[:, None, 2:], b[None, :, 2:]) - torch.minimum(a[:, None, :2], b[None, :, :2])).prod(2)
    iou = inter / union
    return iou, iou - (enclosing - union) / enclosing


@torch.no_grad()
def hungarian_match(output: Output, targets: Targets, matcher: dict[str, Any]) -> Indices:
    """Per image: (query indices, target indices) of the cheapest one-to-one matching."""
    costs = matcher["weight_dict"]
    indices = []
    for logits, boxes, target in zip(output["pred_logits"], output["pred_boxes"], targets, strict=True):
        labels = target["labels"].long()
        if len(labels) == 0:
            empty = torch.zeros(0, dtype=torch.long, device=logits.device)
            indices.append((empty, empty))
            continue
        if matcher["use_focal_loss"]:
            p = logits.sigmoid()[:, labels]
            alpha, gamma = matcher["alpha"], matcher["gamma"]
            positive = alpha * (1 - p) ** gamma * -(p + EPS).log()
            negative = (1 - alpha) * p**gamma * -(1 - p + EPS).log()
            cost_class = positive - negative
        else:
            cost_class = -logits.softmax(-1)[:, labels]
        cost_bbox = torch.cdist(boxes, xyxy_to_cxcywh(target["boxes"]), p=1)
        cost_giou = -pairwise_giou(cxcywh_to_xyxy(boxes), target["boxes"])[1]
        cost = costs["cost_bbox"] * cost_bbox + costs["cost_class"] * cost_class + costs["cost_giou"] * cost_giou
        rows, columns = linear_sum_assignment(cost.float().cpu().numpy())
        device = logits.device
        indices.append((torch.as_tensor(rows, device=device), torch.as_tensor(columns, device=device)))
    return indices


class DETRLoss(nn.Module):
    def __init__(
        self,
        weight_dict: dict[str, float] = DEFAULT_WEIGHTS,
        losses: list[str] = DEFAULT_TERMS,
        alpha: float = 0.2,  # the peer's default; its example configs set 0.75
        gamma: float = 2.0,
        matcher: dict[str, Any] = DEFAULT_MATCHER,
    ) -> None:
        super().__init__()
        self.weight_dict = dict(weight_dict)
        self.losses = list(losses)
        if "labels" in self.losses:
            raise LossParamError(
                f"losses/{self.losses.index('labels')}",
                "detr_loss term 'labels' needs a no-object logit, which rtdetr_head does not give (the peer's fails "
                "too): use vfl or focal",
            )
        self.alpha, self.gamma = alpha, gamma
        self.matcher = {**DEFAULT_MATCHER, **matcher}

    def forward(self, out: dict[str, Any], targets: Targets, image_size: tuple[int, int] | None) -> torch.Tensor:
        pred = out["pred"]  # (B, Q, 4 + K)
        height, width = image_size if image_size else (1, 1)
        scale = pred.new_tensor([width, height, width, height])
        targets = [{"boxes": t["boxes"].to(pred) / scale, "labels": t["labels"].long()} for t in targets]
        num_boxes = max(1, sum(len(t["labels"]) for t in targets))
        final = {"pred_boxes": pred[..., :4], "pred_logits": pred[..., 4:]}
        total = self._terms(final, targets, hungarian_match(final, targets, self.matcher), num_boxes)
        for aux in out.get("aux_pred") or []:
            total = total + self._terms(aux, targets, hungarian_match(aux, targets, self.matcher), num_boxes)
        meta = out.get("dn_meta")
        if out.get("dn_aux_pred") and meta is not None:
            indices = denoising_indices(meta, targets)
            for aux in out["dn_aux_pred"]:
                total = total + self._terms(aux, targets, indices, num_boxes * meta["dn_num_group"])
        return total

    def _terms(self, output: Output, targets: Targets, indices: Indices, num_boxes: float) -> torch.Tensor:
        logits, boxes = output["pred_logits"], output["pred_boxes"]
        batch = torch.cat([torch.full_like(query, b) for b, (query, _) in enumerate(indices)])
        query = torch.cat([q for q, _ in indices])
        matched_boxes = torch.cat([t["boxes"][j] for t, (_, j) in zip(targets, indices)])
        matched_labels = torch.cat([t["labels"][j] for t, (_, j) in zip(targets, indices)])
        one_hot = torch.zeros_like(logits)
        one_hot[batch, query, matched_labels] = 1.0
        values: dict[str, torch.Tensor] = {}
        if "vfl" in self.losses:
            iou = pairwise_giou(cxcywh_to_xyxy(boxes[batch, query]), matched_boxes)[0].diagonal().detach()
            score = torch.zeros_like(logits)
            score[batch, query, matched_labels] = iou.to(score)
            weight = self.alpha * logits.sigmoid().detach() ** self.gamma * (1 - one_hot) + score
            bce = F.binary_cross_entropy_with_logits(logits, score, weight=weight, reduction="sum")
            values["loss_vfl"] = bce / num_boxes
        if "focal" in self.losses:
            values["loss_focal"] = sigmoid_focal_loss(logits, one_hot, self.alpha, self.gamma).sum() / num_boxes
        if "boxes" in self.losses:
            chosen = boxes[batch, query]
            l1 = F.l1_loss(chosen, xyxy_to_cxcywh(matched_boxes), reduction="sum")
            values["loss_bbox"] = l1 / num_boxes
            giou = pairwise_giou(cxcywh_to_xyxy(chosen), matched_boxes)[1].diagonal()
            values["loss_giou"] = (1 - giou).sum() / num_boxes
        if "cardinality" in self.losses:
            with torch.no_grad():
                predicted = (logits.argmax(-1) != logits.shape[-1] - 1).sum(1).float()
                counts = torch.tensor([float(len(t["labels"])) for t in targets], device=logits.device)
                values["cardinality_error"] = F.l1_loss(predicted, counts)
        weighted = [value * self.weight_dict[key] for key, value in values.items() if key in self.weight_dict]
        return torch.stack(weighted).sum() if weighted else logits.sum() * 0.0


def denoising_indices(meta: dict[str, Any], targets: Targets) -> Indices:
    """The denoising queries' fixed matching: each group's positive copies in target order."""
    indices = []
    for positive, target in zip(meta["dn_positive_idx"], targets, strict=True):
        count = len(target["labels"])
        gt = torch.arange(count, dtype=torch.long, device=positive.device).tile(meta["dn_num_group"])
        indices.append((positive.long(), gt) if count else (positive[:0].long(), gt))
    return indices
