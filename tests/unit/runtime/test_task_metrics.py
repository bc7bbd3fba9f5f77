"""Segmentation and detection metrics: mIoU / pixel accuracy through torchmetrics, COCO mAP through pycocotools."""

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from npc.runtime.engine.metrics import CocoMAP, evaluate

TRUTH = [{"boxes": torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 40.0]]), "labels": torch.tensor([0, 1])}]


def _pred(boxes, scores, labels):
    return [{"boxes": torch.tensor(boxes), "scores": torch.tensor(scores), "labels": torch.tensor(labels)}]


def _map(preds):
    meter = CocoMAP()
    meter.update(preds, TRUTH)
    return meter.compute()


def test_perfect_boxes_score_one():
    assert _map(_pred([[0.0, 0, 10, 10], [20.0, 20, 30, 40]], [0.9, 0.8], [0, 1])) == pytest.approx(
        {"map": 1.0, "map50": 1.0}
    )


def test_a_loose_box_counts_at_iou_half_only():
    # the class-0 box is shifted by 2 px: IoU 80/120 = 0.67 → a hit at 0.5..0.65, a miss above
    result = _map(_pred([[2.0, 0, 12, 10], [20.0, 20, 30, 40]], [0.9, 0.8], [0, 1]))
    assert result["map50"] == pytest.approx(1.0)
    assert result["map"] == pytest.approx((1.0 + 4 / 10) / 2, abs=0.01)


def test_wrong_labels_and_no_detections_score_zero():
    assert _map(_pred([[0.0, 0, 10, 10]], [0.9], [1]))["map50"] == 0.0
    nothing = [{"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.long)}]
    assert _map(nothing) == {"map": 0.0, "map50": 0.0}


class _Echo(torch.nn.Module):
    """Returns its input as the logits: the test feeds it the logits it should produce."""

    def forward(self, x):
        return {"pred": x}


def test_segmentation_metrics_of_a_perfect_and_a_constant_model():
    mask = torch.tensor([[[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 255, 255], [2, 2, 255, 255]]])
    logits = torch.nn.functional.one_hot(mask.clamp(max=2), 3).permute(0, 3, 1, 2).float() * 10
    loader = DataLoader(TensorDataset(logits, mask), batch_size=1)
    perfect = evaluate(_Echo(), loader, None, 3, torch.device("cpu"), task="segmentation")
    assert perfect["miou"] == pytest.approx(1.0) and perfect["pixel_acc"] == pytest.approx(1.0)
    constant = torch.zeros_like(logits)
    constant[:, 0] = 1  # everything class 0: 4 of the 12 labelled pixels right
    loader = DataLoader(TensorDataset(constant, mask), batch_size=1)
    result = evaluate(_Echo(), loader, None, 3, torch.device("cpu"), task="segmentation")
    assert result["pixel_acc"] == pytest.approx(4 / 12)
    assert result["miou"] == pytest.approx((4 / 12 + 0 + 0) / 3)
