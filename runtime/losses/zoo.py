"""Losses of single zoo models: ``pidnet_loss`` (segmentation, pidnet) and ``rtmcc_loss`` (pose, rtmcc head).

Both follow NetsPresso Trainer 1.4.1 (written anew here):

* **pidnet_loss** — the three outputs of a ``pidnet`` model are upsampled (bilinear, corners aligned) to the mask;
  loss = 0.4 x CE(``extra_p``) + CE(``pred``) + 20 x boundary BCE(``extra_d``) + boundary-aware CE(``pred``). The
  boundary BCE weights boundary pixels by the non-boundary share and the rest by the boundary share, averaged over
  every pixel. The boundary-aware CE is CE over the pixels where sigmoid(``extra_d``) > 0.8. The peer reads boundary
  labels (Canny edges of the mask, dilated) from its data loader; npc derives them from the mask itself: a pixel is
  a boundary pixel when a label in its 3x3 neighbourhood differs from its own. A CE over no labelled pixel counts 0
  (PyTorch, and so the peer, would give NaN).
* **rtmcc_loss** — SimCC: ``pred`` (B, K, X + Y) holds per keypoint the x-bin logits, then the y-bin logits, with
  ``simcc_split_ratio`` bins per input pixel. The target is a (B, K, 3) tensor of keypoints ``x, y, visible`` in
  input pixels (``visible`` 1 labelled, 0 not). Each labelled keypoint becomes, per axis, a Gaussian (sigma 5.66
  bins) around ``round(coordinate x ratio)``, softmax-ed with beta 10; the loss is the KL divergence from the
  softmax of 10 x the logits, averaged over the bins, times ``visible``, summed over the batch and the keypoints
  and divided by K (as the peer: not by the batch size). A keypoint whose Gaussian lies wholly outside the bins
  does not count.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import RunError

__all__ = ["PIDNetLoss", "RTMCCLoss", "boundary_mask", "simcc_targets"]


# --- PIDNet --------------------------------------------------------------------------------------------------------

P_WEIGHT, MAIN_WEIGHT = 0.4, 1.0  # the peer's BALANCE_WEIGHTS for (extra_p, pred)
BOUNDARY_WEIGHT = 20.0
BOUNDARY_THRESHOLD = 0.8  # sigmoid(extra_d) above which a pixel counts in the boundary-aware CE


class PIDNetLoss(nn.Module):
    def __init__(self, ignore_index: int = -100) -> None:
        super().__init__()
        self.ignore_index = ignore_index

    def forward(self, out: dict[str, Any], target: torch.Tensor, image_size: tuple[int, int] | None) -> torch.Tensor:
        if "extra_p" not in out or "extra_d" not in out:
            raise RunError("pidnet_loss reads the outputs extra_p and extra_d, which only a pidnet model gives")
        if out["extra_p"] is None:  # the peer's model leaves the auxiliary heads out in evaluation
            return out["pred"].sum() * 0.0
        size = target.shape[-2:]
        pred, extra_p, extra_d = (
            F.interpolate(out[key], size=size, mode="bilinear", align_corners=True)
            for key in ("pred", "extra_p", "extra_d")
        )
        ce = P_WEIGHT * self._ce(extra_p, target) + MAIN_WEIGHT * self._ce(pred, target)
        boundary = weighted_boundary_bce(extra_d[:, 0], boundary_mask(target).to(extra_d))
        on_boundary = torch.sigmoid(extra_d[:, 0]) > BOUNDARY_THRESHOLD
        aware = self._ce(pred, torch.where(on_boundary, target, torch.full_like(target, self.ignore_index)))
        return ce + BOUNDARY_WEIGHT * boundary + aware

    def _ce(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if not (target != self.ignore_index).any():
            return logits.sum() * 0.0
        return F.cross_entropy(logits, target, ignore_index=self.ignore_index)


def boundary_mask(mask: torch.Tensor) -> torch.Tensor:
    """(B, H, W) bool: pixels with a differently labelled pixel in their 3x3 neighbourhood."""
    labels = mask[:, None].float()
    padded = F.pad(labels, (1, 1, 1, 1), mode="replicate")
    highest = F.max_pool2d(padded, 3, stride=1)
    lowest = -F.max_pool2d(-padded, 3, stride=1)
    return (highest != lowest)[:, 0]


def weighted_boundary_bce(logits: torch.Tensor, boundary: torch.Tensor) -> torch.Tensor:
    """BCE averaged over all pixels, each class of pixel weighted by the other's share (the peer's weighted_bce)."""
    positives = boundary.sum()
    negatives = boundary.numel() - positives
    weight = torch.where(boundary > 0, negatives, positives) / boundary.numel()
    return F.binary_cross_entropy_with_logits(logits, boundary, weight=weight.to(logits))


# --- RTMCC ---------------------------------------------------------------------------------------------------------

SIMCC_SIGMA = 5.66  # in bins, both axes (fixed in the peer)
LOGIT_BETA = 10.0  # logits are multiplied by this before the softmax
LABEL_BETA = 10.0  # the Gaussian targets too
DEFAULT_SPLIT_RATIO = 2.0  # bins per pixel when the input size is unknown (the peer's fixed value)


class RTMCCLoss(nn.Module):
    def forward(self, out: dict[str, Any], target: torch.Tensor, image_size: tuple[int, int] | None) -> torch.Tensor:
        pred = out["pred"]  # (B, K, X + Y)
        if target.shape[:2] != pred.shape[:2] or target.shape[-1] != 3:
            raise RunError(
                f"rtmcc_loss needs keypoints as (B, K, 3) = x, y, visible for pred {tuple(pred.shape)}; "
                f"got {tuple(target.shape)}"
            )
        bins_x, ratio = _split(pred.shape[-1], image_size)
        bins = (bins_x, pred.shape[-1] - bins_x)
        target_x, target_y, weight = simcc_targets(target.to(pred), bins, ratio)
        loss = pred.new_zeros(())
        for logits, wanted in ((pred[..., :bins_x], target_x), (pred[..., bins_x:], target_y)):
            log_p = F.log_softmax(logits * LOGIT_BETA, dim=-1)
            labels = F.softmax(wanted * LABEL_BETA, dim=-1)
            kl = F.kl_div(log_p, labels, reduction="none").mean(dim=-1)  # (B, K)
            loss = loss + (kl * weight).sum()
        return loss / pred.shape[1]


def _split(total_bins: int, image_size: tuple[int, int] | None) -> tuple[int, float]:
    """(x bins, bins per pixel): from the input size when known, else half and half at the peer's ratio."""
    if image_size is None:
        return total_bins // 2, DEFAULT_SPLIT_RATIO
    height, width = image_size
    ratio = total_bins / (height + width)
    return int(width * ratio), ratio


def simcc_targets(
    keypoints: torch.Tensor, bins: tuple[int, int], ratio: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Unnormalised Gaussians over the x and y bins, (B, K, X) and (B, K, Y), and the keypoint weights (B, K)."""
    centres = torch.round(keypoints[..., :2] * ratio)  # (B, K, 2)
    weight = keypoints[..., 2].clone()
    labelled = weight >= 0.5
    radius = 3 * SIMCC_SIGMA
    inside = (
        (centres[..., 0] - radius < bins[0])
        & (centres[..., 1] - radius < bins[1])
        & (centres[..., 0] + radius + 1 >= 0)
        & (centres[..., 1] + radius + 1 >= 0)
    )
    weight[labelled & ~inside] = 0.0
    shown = (labelled & inside)[..., None]
    axes = []
    for axis, count in enumerate(bins):
        positions = torch.arange(count, dtype=keypoints.dtype, device=keypoints.device)
        gaussian = torch.exp(-((positions - centres[..., axis, None]) ** 2) / (2 * SIMCC_SIGMA**2))
        axes.append(gaussian * shown)
    return axes[0], axes[1], weight
