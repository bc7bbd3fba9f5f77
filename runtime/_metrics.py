"""Validation: mean loss, top-1 and (with at least five classes) top-5 accuracy, through torchmetrics."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

__all__ = ["evaluate"]


@torch.no_grad()
def evaluate(
    model: nn.Module, loader: DataLoader, loss_fn: nn.Module | None, num_classes: int, device: torch.device
) -> dict[str, Any]:
    """{"loss", "top1", "top5" (None below five classes), "samples"}; the model is left in eval mode."""
    from torchmetrics.classification import MulticlassAccuracy

    model.eval()
    top1 = MulticlassAccuracy(num_classes=num_classes, top_k=1, average="micro").to(device)
    top5 = (
        MulticlassAccuracy(num_classes=num_classes, top_k=5, average="micro").to(device) if num_classes >= 5 else None
    )
    total_loss, samples = 0.0, 0
    for images, labels in loader:
        images, labels = images.to(device), labels.to(device)
        out = model(images)
        pred = out["pred"]
        if loss_fn is not None:
            loss, _ = loss_fn(out, labels)
            total_loss += float(loss) * len(labels)
        top1.update(pred, labels)
        if top5 is not None:
            top5.update(pred, labels)
        samples += len(labels)
    return {
        "loss": total_loss / max(1, samples) if loss_fn is not None else None,
        "top1": float(top1.compute()),
        "top5": float(top5.compute()) if top5 is not None else None,
        "samples": samples,
    }
