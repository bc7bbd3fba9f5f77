"""Losses: cross_entropy (with label smoothing) against hand-computed values; weights multiply and sum."""

import math

import pytest
import torch

from npc.cli.exits import exit_code_for
from npc.runtime.losses import build_loss
from npc.spec import LossSpec, Source, SpecError

LOGITS = torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.0, 3.0]])
TARGET = torch.tensor([0, 1])


def _log_softmax(row):
    norm = math.log(sum(math.exp(v) for v in row))
    return [v - norm for v in row]


ROWS = [_log_softmax([2.0, 1.0, 0.0]), _log_softmax([0.0, 0.0, 3.0])]
NLL = (-ROWS[0][0] - ROWS[1][1]) / 2  # plain cross entropy, mean over the batch


def _loss(criterion="cross_entropy", weight=1.0, **params):
    return LossSpec(criterion, weight, params, "/model/losses/0")


def test_plain_cross_entropy_matches_the_hand_computed_value():
    loss, _ = build_loss((_loss(),))
    total, parts = loss({"pred": LOGITS}, TARGET)
    assert total.item() == pytest.approx(NLL, abs=1e-6)
    assert parts == {"cross_entropy": pytest.approx(NLL, abs=1e-6)}
    assert NLL == pytest.approx(((math.log(1 + math.e**-1 + math.e**-2)) + (3 + math.log(2 + math.e**3) - 3)) / 2)


def test_label_smoothing_mixes_in_the_uniform_target():
    eps = 0.1
    uniform = (-sum(ROWS[0]) / 3 - sum(ROWS[1]) / 3) / 2  # cross entropy against the uniform distribution
    expected = (1 - eps) * NLL + eps * uniform
    loss, _ = build_loss((_loss(label_smoothing=eps),))
    total, _ = loss({"pred": LOGITS}, TARGET)
    assert total.item() == pytest.approx(expected, abs=1e-6)


def test_weights_multiply_and_entries_sum():
    loss, _ = build_loss((_loss(weight=0.5), _loss(weight=2.0, label_smoothing=0.2)))
    total, parts = loss({"pred": LOGITS}, TARGET)
    smoothed = 0.8 * NLL + 0.2 * ((-sum(ROWS[0]) / 3 - sum(ROWS[1]) / 3) / 2)
    assert set(parts) == {"cross_entropy", "cross_entropy#2"}
    assert total.item() == pytest.approx(0.5 * NLL + 2.0 * smoothed, abs=1e-6)


def test_no_losses_means_cross_entropy_with_a_note():
    loss, notes = build_loss(())
    total, _ = loss({"pred": LOGITS}, TARGET)
    assert total.item() == pytest.approx(NLL, abs=1e-6)
    assert "no losses" in notes[0]


def test_unsupported_criterion_is_reported_at_its_position():
    source = Source({}, "spec.yaml", {"/model/losses/0/criterion": (30, 7)})
    with pytest.raises(SpecError) as info:
        build_loss((_loss("pidnet_loss", ignore_index=255),), source)
    (diagnostic,) = info.value.diagnostics
    assert (diagnostic.file, diagnostic.line, diagnostic.col) == ("spec.yaml", 30, 7)
    assert diagnostic.pointer == "/model/losses/0/criterion"
    assert "'pidnet_loss' is not supported by npc train for classification" in diagnostic.message
    assert exit_code_for(info.value) == 1


def test_unsupported_parameter_is_an_error():
    with pytest.raises(SpecError, match="'alpha'"):
        build_loss((_loss(alpha=3),))


# --- segmentation, focal, detection ------------------------------------------------------------------------------

LN2 = math.log(2)


def test_seg_cross_entropy_upsamples_the_logits_and_skips_ignored_pixels():
    logits = torch.tensor([2.0, 0.0]).view(1, 2, 1, 1)  # one cell, upsampled to the 2x2 mask: the same everywhere
    mask = torch.tensor([[[0, 1], [255, 0]]])
    loss, _ = build_loss((_loss("seg_cross_entropy", ignore_index=255),), task="segmentation")
    total, _ = loss({"pred": logits}, mask)
    p0 = math.exp(2) / (math.exp(2) + 1)
    expected = (-math.log(p0) * 2 - math.log(1 - p0)) / 3  # three labelled pixels: two of class 0, one of class 1
    assert total.item() == pytest.approx(expected, abs=1e-6)


def test_focal_loss_at_even_odds():
    loss, _ = build_loss((_loss("focal_loss", alpha=0.25, gamma=2.0),))
    total, _ = loss({"pred": torch.zeros(1, 2)}, torch.tensor([0]))
    # p = 0.5: BCE ln 2, (1 - p_t)^2 = 1/4; alpha 0.25 on the true class, 0.75 on the other; mean over 2 entries
    assert total.item() == pytest.approx((0.25 + 0.75) * 0.25 * LN2 / 2, abs=1e-6)


TARGET_BOX = [{"boxes": torch.tensor([[0.0, 0.0, 8.0, 8.0]]), "labels": torch.tensor([0])}]


def _retina_out():
    anchors = torch.tensor([[0.0, 0.0, 8.0, 8.0], [20.0, 20.0, 28.0, 28.0]])
    return {"anchors": anchors, "cls_logits": [torch.zeros(1, 2, 1)], "bbox_regression": [torch.zeros(1, 2, 4)]}


def test_retinanet_loss_on_an_exact_anchor():
    loss, _ = build_loss((_loss("retinanet_loss"),), task="detection", head="anchor_decoupled_head")
    total, _ = loss(_retina_out(), TARGET_BOX)
    # anchor 0 matches (IoU 1), anchor 1 is background; logits 0: focal 0.25*0.25*ln2 + 0.75*0.25*ln2; deltas exact
    assert total.item() == pytest.approx(0.25 * LN2, abs=1e-6)


def test_retinanet_loss_regresses_the_matched_anchor_with_l1():
    shifted = [{"boxes": torch.tensor([[2.0, 0.0, 10.0, 8.0]]), "labels": torch.tensor([0])}]  # IoU 48/80 = 0.6
    loss, _ = build_loss((_loss("retinanet_loss"),), task="detection", head="anchor_decoupled_head")
    total, _ = loss(_retina_out(), shifted)
    assert total.item() == pytest.approx(0.25 * LN2 + 2 / 8, abs=1e-6)  # dx = 2 / anchor width 8


def test_retinanet_matching_thresholds():
    from npc.runtime.losses.detection import match_anchors

    anchors = torch.tensor([[0.0, 0, 10, 10], [0.0, 0, 10, 5.5], [0.0, 0, 10, 4.5], [50.0, 50, 60, 60]])
    matched = match_anchors(torch.tensor([[0.0, 0, 10, 10]]), anchors)
    assert matched.tolist() == [0, 0, -2, -1]  # IoU 1 and 0.55: foreground; 0.45: ignored; 0: background


def _yolox(l1_activate_epoch=1):
    loss, _ = build_loss(
        (_loss("yolox_loss", l1_activate_epoch=l1_activate_epoch),), task="detection", head="anchor_free_decoupled_head"
    )
    return loss


def test_yolox_loss_one_cell_predicting_the_box_exactly():
    pred = torch.tensor([0.5, 0.5, 0.0, 0.0, 0.0, 0.0]).view(1, 6, 1, 1)  # centre (4, 4), size 8: the box
    total, _ = _yolox()({"pred": [pred]}, TARGET_BOX, (8, 8))
    # IoU 1 → no IoU or L1 loss; objectness BCE(0, 1) = ln 2; class BCE(0, IoU 1) = ln 2
    assert total.item() == pytest.approx(2 * LN2, abs=1e-6)


def test_yolox_simota_picks_the_cheaper_cell_and_the_other_is_background():
    pred = torch.zeros(1, 6, 1, 2)
    pred[0, :2, 0, 0] = 0.5  # cell 0 predicts the box exactly; cell 1 predicts (4, -4, 12, 4): IoU 1/7
    total, _ = _yolox()({"pred": [pred]}, TARGET_BOX, (8, 16))
    # dynamic k = int(1 + 1/7) = 1: only cell 0 is foreground; cell 1 adds objectness BCE(0, 0) = ln 2
    assert total.item() == pytest.approx(3 * LN2, abs=1e-6)


def test_yolox_l1_term_starts_at_l1_activate_epoch():
    pred = torch.tensor([0.0, 0.5, 0.0, 0.0, 0.0, 0.0]).view(1, 6, 1, 1)  # centre x off by half a stride
    loss = _yolox(l1_activate_epoch=3)
    loss.set_epoch(2)
    without, _ = loss({"pred": [pred]}, TARGET_BOX, (8, 8))
    loss.set_epoch(3)
    with_l1, _ = loss({"pred": [pred]}, TARGET_BOX, (8, 8))
    assert with_l1.item() - without.item() == pytest.approx(0.5, abs=1e-5)  # |0 - 0.5| on the x offset


def test_detection_loss_must_fit_the_head():
    with pytest.raises(SpecError, match="retinanet_loss needs the head anchor_decoupled_head"):
        build_loss((_loss("retinanet_loss"),), task="detection", head="anchor_free_decoupled_head")


def test_default_losses_per_task():
    _, notes = build_loss((), task="segmentation")
    assert "seg_cross_entropy with ignore_index 255" in notes[0]
    loss, _ = build_loss((), task="detection", head="anchor_decoupled_head")
    assert loss.names == ["retinanet_loss"]
    loss, _ = build_loss((), task="detection", head="yolo_fastest_head_v2")
    assert loss.names == ["yolofastest_loss"]
    with pytest.raises(SpecError, match="no loss fits the head 'new_head'"):
        build_loss((), task="detection", head="new_head")


def test_seg_cross_entropy_without_ignore_index_explains_unlabelled_pixels():
    from npc.runtime.errors import RunError

    loss, _ = build_loss((_loss("seg_cross_entropy"),), task="segmentation")
    with pytest.raises(RunError, match="need seg_cross_entropy's ignore_index: 255"):
        loss({"pred": torch.zeros(1, 2, 2, 2)}, torch.tensor([[[0, 1], [255, 0]]]))
