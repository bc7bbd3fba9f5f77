"""Zoo losses (runtime/losses/zoo.py) against hand-computed values, and their gradients into the compiled models."""

import math
import re

import pytest
import torch

from helpers import EXAMPLES, compile_file, import_source
from npc.runtime.losses import build_loss
from npc.runtime.losses.zoo import boundary_mask, simcc_targets
from npc.spec import LossSpec, SpecError

LN2 = math.log(2)


def _loss(criterion, weight=1.0, **params):
    return LossSpec(criterion, weight, params, "/model/losses/0")


def _softplus(x):
    return math.log(1 + math.exp(x))


def _example(stem, tmp_path):
    (path,) = [p for p in EXAMPLES if p.stem == stem]
    return import_source(compile_file(path), stem.replace("-", "_"), tmp_path)


def _assert_every_parameter_gets_a_gradient(model, total, zero_ok=()):
    """Every trainable parameter gets a non-zero gradient; under the ``zero_ok`` patterns a zero one will do."""
    total.backward()
    missing = [
        name
        for name, p in model.named_parameters()
        if p.requires_grad and (p.grad is None or (not p.grad.any() and not any(re.match(z, name) for z in zero_ok)))
    ]
    assert not missing, missing


# --- pidnet_loss ---------------------------------------------------------------------------------------------------

MASK = torch.tensor([[[0, 0, 0, 1]]])  # 1 image, 1 x 4 pixels, 2 classes: pixels 2 and 3 lie on the boundary


def _pidnet(**params):
    loss, _ = build_loss((_loss("pidnet_loss", **params),), task="segmentation")
    return loss


def _pidnet_out(pred=None, extra_d=None):
    return {
        "pred": torch.zeros(1, 2, 1, 4) if pred is None else pred,
        "extra_p": torch.zeros(1, 2, 1, 4),
        "extra_d": torch.zeros(1, 1, 1, 4) if extra_d is None else extra_d,
    }


def test_boundary_mask_marks_pixels_next_to_another_label():
    assert boundary_mask(MASK).tolist() == [[[False, False, True, True]]]
    assert not boundary_mask(torch.zeros(1, 3, 3, dtype=torch.long)).any()


def test_pidnet_loss_at_zero_logits():
    total, _ = _pidnet()(_pidnet_out(), MASK)
    # CE ln 2 on extra_p (x 0.4) and pred; boundary BCE ln 2 per pixel, each class of pixel weighted 2/4, mean over
    # 4 pixels = ln 2 / 2, x 20; sigmoid(0) = 0.5 <= 0.8: no pixel in the boundary-aware CE
    assert total.item() == pytest.approx(0.4 * LN2 + LN2 + 20 * LN2 / 2, abs=1e-5)


def test_pidnet_loss_boundary_aware_ce_reads_the_confident_d_pixels():
    pred = torch.zeros(1, 2, 1, 4)
    pred[0, 1, 0, 3] = 1.0  # pixel 3 (class 1): CE ln(1 + e^-1)
    extra_d = torch.tensor([-2.0, -2.0, -2.0, 2.0]).view(1, 1, 1, 4)  # only pixel 3 has sigmoid > 0.8
    total, _ = _pidnet()(_pidnet_out(pred, extra_d), MASK)
    main = (3 * LN2 + _softplus(-1)) / 4
    boundary = 0.5 * (2 * _softplus(-2) + _softplus(2) + _softplus(-2)) / 4  # targets 0, 0, 1, 1
    expected = 0.4 * LN2 + main + 20 * boundary + _softplus(-1)
    assert total.item() == pytest.approx(expected, abs=1e-5)


def test_pidnet_loss_skips_ignored_pixels_and_upsamples_with_aligned_corners():
    out = {
        "pred": torch.tensor([2.0, 0.0]).view(1, 2, 1, 1),  # one cell, the same everywhere once upsampled
        "extra_p": torch.zeros(1, 2, 1, 1),
        "extra_d": torch.zeros(1, 1, 1, 1),
    }
    mask = torch.tensor([[[0, 255], [0, 0]]])  # the ignored pixel still draws a boundary around itself
    total, _ = _pidnet(ignore_index=255)(out, mask)
    p0 = math.exp(2) / (math.exp(2) + 1)
    # every pixel is a boundary pixel: positives 4, negatives 0, so the boundary BCE weighs nothing
    assert total.item() == pytest.approx(0.4 * LN2 - math.log(p0), abs=1e-5)


def test_pidnet_loss_is_zero_without_the_auxiliary_outputs():
    total, _ = _pidnet()({"pred": torch.zeros(1, 2, 1, 4), "extra_p": None, "extra_d": None}, MASK)
    assert total.item() == 0.0


def test_pidnet_loss_needs_a_pidnet_model():
    from npc.runtime.errors import RunError

    with pytest.raises(RunError, match="only a pidnet model gives"):
        _pidnet()({"pred": torch.zeros(1, 2, 1, 4)}, MASK)


def test_pidnet_loss_reaches_every_parameter_of_a_compiled_pidnet(tmp_path):
    torch.manual_seed(0)
    model = _example("pidnet-s-segmentation", tmp_path).build_model(num_classes=2).train()
    mask = torch.zeros(2, 64, 64, dtype=torch.long)
    mask[:, 16:48, 16:48] = 1
    total, _ = _pidnet(ignore_index=255)(model(torch.randn(2, 3, 64, 64)), mask)
    # a norm bias right before another batch norm (layer5 -> spp) gets an exact zero
    _assert_every_parameter_gets_a_gradient(model, total, zero_ok=(r"layer5\.\d\.\w+\.block\.norm\.bias",))


# --- rtmcc_loss ----------------------------------------------------------------------------------------------------

SIGMA = 5.66


def _kl_to_uniform(centre, bins):
    """KL(softmax(10 g) || uniform over bins) / bins: the loss of zero logits against a keypoint at ``centre``."""
    scores = [10 * math.exp(-((i - centre) ** 2) / (2 * SIGMA**2)) for i in range(bins)]
    norm = math.log(sum(math.exp(s) for s in scores))
    labels = [math.exp(s - norm) for s in scores]
    return sum(q * (math.log(q) + math.log(bins)) for q in labels) / bins


def _rtmcc(pred, keypoints, image_size):
    loss, _ = build_loss((_loss("rtmcc_loss"),), task="pose_estimation", head="rtmcc")
    return loss({"pred": pred}, keypoints, image_size)[0]


def test_rtmcc_loss_of_zero_logits_is_the_kl_to_the_uniform_bins():
    # 1 image, 2 keypoints, a 3 x 2 (H x W) input at 2 bins per pixel: 4 x bins then 6 y bins
    keypoints = torch.tensor([[[1.0, 2.0, 1.0], [0.0, 0.0, 0.0]]])  # the second keypoint is not labelled
    total = _rtmcc(torch.zeros(1, 2, 10), keypoints, (3, 2))
    expected = (_kl_to_uniform(2, 4) + _kl_to_uniform(4, 6)) / 2  # summed over keypoints, divided by K = 2
    assert total.item() == pytest.approx(expected, rel=1e-5)


def test_rtmcc_loss_is_smaller_for_logits_peaked_at_the_keypoint():
    keypoints = torch.tensor([[[1.0, 2.0, 1.0]]])
    flat = _rtmcc(torch.zeros(1, 1, 10), keypoints, (3, 2))
    peaked = torch.zeros(1, 1, 10)
    peaked[0, 0, 2] = peaked[0, 0, 4 + 4] = 0.03  # x 10 = 0.3: about the Gaussian label's peak
    assert _rtmcc(peaked, keypoints, (3, 2)).item() < flat.item()


def test_simcc_targets_drop_keypoints_whose_gaussian_misses_the_bins():
    keypoints = torch.tensor([[[1.0, 1.0, 1.0], [40.0, 1.0, 1.0], [1.0, 1.0, 0.0]]])
    target_x, target_y, weight = simcc_targets(keypoints, (4, 4), 2.0)
    assert weight.tolist() == [[1.0, 0.0, 0.0]]  # 80 - 3 x 5.66 > 4 bins; the third is not labelled
    assert target_x[0, 0].tolist() == pytest.approx([math.exp(-((i - 2) ** 2) / (2 * SIGMA**2)) for i in range(4)])
    assert target_x[0, 1:].abs().sum() == 0 and target_y[0, 2].abs().sum() == 0


def test_rtmcc_loss_needs_keypoints_per_prediction():
    from npc.runtime.errors import RunError

    with pytest.raises(RunError, match=r"\(B, K, 3\)"):
        _rtmcc(torch.zeros(1, 2, 10), torch.zeros(1, 3, 3), (3, 2))


def test_rtmcc_loss_reaches_every_head_parameter_of_a_compiled_rtmpose(tmp_path):
    torch.manual_seed(0)
    model = _example("rtmpose-mobilenetv3-small-pose_estimation", tmp_path).build_model(num_classes=3).train()
    keypoints = torch.tensor([[[30.0, 40.0, 1.0], [100.0, 200.0, 1.0], [0.0, 0.0, 0.0]]])
    total = _rtmcc(model(torch.randn(1, 3, 256, 256))["pred"], keypoints, (256, 256))
    _assert_every_parameter_gets_a_gradient(model.head, total)


def test_rtmcc_loss_is_the_pose_default_and_fits_only_rtmcc():
    loss, notes = build_loss((), task="pose_estimation", head="rtmcc")
    assert loss.names == ["rtmcc_loss"] and "using rtmcc_loss" in notes[0]
    with pytest.raises(SpecError, match="rtmcc_loss needs the head rtmcc"):
        build_loss((_loss("rtmcc_loss"),), task="pose_estimation", head="other")


# --- yolov9_loss ---------------------------------------------------------------------------------------------------

# 1 image of 8 x 16 pixels, one level at stride 8 (1 x 2 cells, anchor points (4, 4) and (12, 4)), reg_max 4, 2 classes.
# Zero logits: every side's distance is the mean bin 1.5 strides = 12 px, so cell 0 predicts (-8, -8, 16, 16) and
# cell 1 (0, -8, 24, 16); class probabilities are 0.5.
YOLO_BOX = [{"boxes": torch.tensor([[-8.0, -8.0, 16.0, 16.0]]), "labels": torch.tensor([0])}]


def _yolov9(out, targets, image_size=(8, 16), reg_max=4):
    loss, _ = build_loss((_loss("yolov9_loss", reg_max=reg_max),), task="detection", head="yolo_detection_head")
    return loss(out, targets, image_size)[0]


def test_yolov9_loss_hand_computed_assignment_and_terms():
    total = _yolov9({"pred": [torch.zeros(1, 4 * 4 + 2, 1, 2)]}, YOLO_BOX)
    # both anchors lie inside the box. Cell 0: CIoU 1. Cell 1: IoU 384 / 768 = 0.5, centre distance^2 64 over the
    # enclosing diagonal^2 32^2 + 24^2 = 1600, same aspect: CIoU 0.46. Suitability CIoU^6 x 0.5^0.5: both are in the
    # top 10; class targets scaled by suitability / best x best CIoU: 1 and q = 0.46^6; their sum 1 + q normalises.
    q = 0.46**6
    cls = 4 * LN2 / (1 + q)  # BCE(0, t) = ln 2 whatever t, over 2 cells x 2 classes
    iou = (0 * 1 + (1 - 0.46) * q) / (1 + q)
    dfl = (math.log(4) * 1 + math.log(4) * q) / (1 + q)  # uniform bins: CE ln 4 to either neighbour
    assert total.item() == pytest.approx(0.5 * cls + 1.5 * dfl + 7.5 * iou, rel=1e-5)


def test_yolov9_loss_without_boxes_is_the_class_bce_only():
    empty = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}]
    total = _yolov9({"pred": [torch.zeros(1, 18, 1, 2)]}, empty)
    assert total.item() == pytest.approx(0.5 * 4 * LN2, abs=1e-6)


def test_yolov9_distribution_focal_loss_splits_between_neighbouring_bins():
    from npc.runtime.losses.yolo import distribution_focal_loss

    logits = torch.tensor([0.0, 1.0, 0.0, 0.0]).expand(1, 4, 4)
    norm = math.log(math.e + 3)
    expected = 0.75 * (norm - 1) + 0.25 * norm  # distance 1.25: bin 1 weighted 0.75, bin 2 0.25
    assert distribution_focal_loss(logits, torch.full((1, 4), 1.25)).item() == pytest.approx(expected, abs=1e-6)


def test_yolov9_a_cell_wanted_by_two_boxes_goes_to_the_one_it_overlaps_most():
    from npc.runtime.losses.yolo import assign

    gt = torch.tensor([[0.0, 0.0, 8.0, 8.0], [2.0, 2.0, 12.0, 12.0]])  # both hold the anchor (4, 4)
    wanted_cls, wanted_box, assigned = assign(
        gt, torch.tensor([0, 1]), gt[:1], torch.zeros(1, 2), torch.tensor([[4.0, 4.0]])
    )
    assert assigned.tolist() == [True]
    assert wanted_box.tolist() == [[0.0, 0.0, 8.0, 8.0]]
    assert wanted_cls.tolist() == [[pytest.approx(1.0), 0.0]]  # suitability over the best (itself) x CIoU 1


def test_yolov9_loss_reg_max_must_match_the_head():
    from npc.runtime.errors import RunError

    with pytest.raises(RunError, match="reg_max 16"):
        _yolov9({"pred": [torch.zeros(1, 18, 1, 2)]}, YOLO_BOX, reg_max=16)


def test_yolov9_loss_reaches_every_head_parameter_of_a_compiled_yolov9(tmp_path):
    torch.manual_seed(0)
    model = _example("yolov9-s-detection", tmp_path).build_model(num_classes=2).train()
    targets = [
        {"boxes": torch.tensor([[4.0, 8.0, 40.0, 60.0], [30.0, 30.0, 60.0, 50.0]]), "labels": torch.tensor([0, 1])}
    ]
    total = _yolov9(model(torch.randn(1, 3, 64, 64)), targets, (64, 64), reg_max=16)
    _assert_every_parameter_gets_a_gradient(model.head, total)


# --- yolofastest_loss ----------------------------------------------------------------------------------------------

# 1 image of 8 x 8, one level with one cell (stride 8) and two anchors, 8 x 8 and 16 x 16, 2 classes. Zero outputs:
# both boxes are centred on the cell, (4, 4), at their anchor's size: (0, 0, 8, 8) and (-4, -4, 12, 12).
FASTEST_ANCHORS = [[8.0, 8.0, 16.0, 16.0]]


def _fastest(out, targets, image_size=(8, 8), anchors=FASTEST_ANCHORS):
    loss, _ = build_loss((_loss("yolofastest_loss", anchors=anchors),), task="detection", head="yolo_fastest_head_v2")
    return loss(out, targets, image_size)[0]


def test_giou_subtracts_the_empty_share_of_the_enclosing_box():
    from npc.runtime.losses.yolo import giou

    value = giou(torch.tensor([[0.0, 0, 8, 8]]), torch.tensor([[4.0, 4, 12, 12]]))
    assert value.item() == pytest.approx(16 / 112 - (144 - 112) / 144, abs=1e-6)


def test_yolofastest_loss_exact_anchor_box():
    target = [{"boxes": torch.tensor([[0.0, 0.0, 8.0, 8.0]]), "labels": torch.tensor([0])}]
    total = _fastest({"pred": [torch.zeros(1, 2, 7, 1, 1)]}, target)
    # IoUs 1 and 64 / 256: dynamic k = int(1.25) = 1, the cheaper (anchor 0) is foreground, GIoU 1: no box loss;
    # objectness BCE(0, 1) + BCE(0, 0) = 2 ln 2; class BCE(0, (1, 0)) = 2 ln 2; one foreground anchor
    assert total.item() == pytest.approx(4 * LN2, abs=1e-5)


def test_yolofastest_loss_giou_term_and_iou_scaled_class_target():
    target = [{"boxes": torch.tensor([[0.0, 0.0, 8.0, 16.0]]), "labels": torch.tensor([0])}]
    total = _fastest({"pred": [torch.zeros(1, 2, 7, 1, 1)]}, target, image_size=(16, 8))
    # anchor 0: IoU 64 / 128 = 0.5 = GIoU (the enclosing box is the union); anchor 1: IoU 96 / 288. k = 1: anchor 0.
    # box 5 x (1 - 0.5); objectness 2 ln 2; class BCE(0, (0.5, 0)) = 2 ln 2 (any target at logit 0 costs ln 2)
    assert total.item() == pytest.approx(5 * 0.5 + 4 * LN2, abs=1e-5)


def test_yolofastest_loss_decodes_offsets_and_sizes():
    pred = torch.zeros(1, 2, 7, 1, 1)
    pred[0, 0, 0] = 2.0  # centre x (sigmoid(2) + 0) x 8
    pred[0, 0, 3] = 1.0  # height 2 x (tanh(0.5 - atanh(0.5)) + 1) x 8
    sx = 8 / (1 + math.exp(-2))
    h = 16 * (math.tanh(0.5 - math.atanh(0.5)) + 1)
    target = [{"boxes": torch.tensor([[sx - 4, 4 - h / 2, sx + 4, 4 + h / 2]]), "labels": torch.tensor([1])}]
    total = _fastest({"pred": [pred]}, target)
    assert total.item() == pytest.approx(4 * LN2, abs=1e-4)  # anchor 0 predicts the box exactly


def test_yolofastest_loss_anchors_must_match_the_head():
    from npc.runtime.errors import RunError

    with pytest.raises(RunError, match=r"\[3\] anchors per level, the head gives \[2\]"):
        _fastest({"pred": [torch.zeros(1, 2, 7, 1, 1)]}, YOLO_BOX, anchors=[[8, 8, 16, 16, 32, 32]])


def test_yolofastest_loss_reaches_every_head_parameter_of_a_compiled_yolo_fastest(tmp_path):
    torch.manual_seed(0)
    model = _example("yolo-fastest-v2-detection", tmp_path).build_model(num_classes=2).train()
    # the whole-image box fits the second level's larger anchors, so both levels get foreground anchors
    targets = [
        {"boxes": torch.tensor([[4.0, 8.0, 40.0, 60.0], [0.0, 0.0, 128.0, 128.0]]), "labels": torch.tensor([0, 1])}
    ]
    loss, _ = build_loss((_loss("yolofastest_loss"),), task="detection", head="yolo_fastest_head_v2")
    total, _ = loss(model(torch.randn(1, 3, 128, 128)), targets, (128, 128))
    _assert_every_parameter_gets_a_gradient(model.head, total)


# --- detr_loss -----------------------------------------------------------------------------------------------------

# 1 image of 10 x 10, one target (0, 0, 5, 5) = normalised (cx, cy, w, h) (0.25, 0.25, 0.5, 0.5), class 0 of 2.
# Two queries with zero logits: sigmoid 0.5, so any BCE term costs ln 2; query 1 sits far away in the other corner.
DETR_TARGET = [{"boxes": torch.tensor([[0.0, 0.0, 5.0, 5.0]]), "labels": torch.tensor([0])}]


def _detr_pred(first_box=(0.25, 0.25, 0.5, 0.5)):
    boxes = torch.tensor([list(first_box), [0.75, 0.75, 0.5, 0.5]])
    return torch.cat([boxes, torch.zeros(2, 2)], dim=-1)[None]  # (1, 2, 4 + 2)


def _detr(out, targets=DETR_TARGET, **params):
    loss, _ = build_loss((_loss("detr_loss", **params),), task="detection", head="rtdetr_head")
    return loss({"aux_pred": None, "dn_aux_pred": None, "dn_meta": None, **out}, targets, (10, 10))[0]


def test_detr_loss_exact_query_costs_only_the_varifocal_term():
    # query 0 matches (IoU 1): its class entry has target 1 and weight 1; the other three entries target 0 with
    # weight alpha p^gamma = 0.2 x 0.25; boxes exact: L1 0, GIoU 1
    total = _detr({"pred": _detr_pred()})
    assert total.item() == pytest.approx(LN2 * (1 + 3 * 0.05), abs=1e-6)


def test_detr_loss_shifted_query_hand_computed():
    # query 0 (0.3, 0.25, 0.5, 0.5) = (0.05, 0, 0.55, 0.5): IoU 0.225 / 0.275 = 9/11 = GIoU (the union encloses both)
    total = _detr({"pred": _detr_pred((0.3, 0.25, 0.5, 0.5))})
    vfl = LN2 * (9 / 11 + 3 * 0.05)  # the positive entry's target and weight are both the IoU
    boxes = 5 * 0.05 + 2 * (1 - 9 / 11)  # weight_dict: loss_bbox 5, loss_giou 2
    assert total.item() == pytest.approx(vfl + boxes, abs=1e-6)


def test_detr_loss_focal_term_and_auxiliary_outputs_add_up():
    pred = _detr_pred()
    aux = {"pred_boxes": pred[..., :4], "pred_logits": pred[..., 4:]}
    params = {"weight_dict": {"loss_focal": 1}, "losses": ["focal"]}
    alone = _detr({"pred": pred}, **params)
    # focal at p = 0.5: ln 2 x 0.25 x (alpha 0.2 on the matched entry, 0.8 on the other three)
    assert alone.item() == pytest.approx(LN2 * 0.25 * (0.2 + 3 * 0.8), abs=1e-6)
    assert _detr({"pred": pred, "aux_pred": [aux, aux]}, **params).item() == pytest.approx(3 * alone.item())


def test_detr_hungarian_matching_is_one_to_one_and_global():
    from npc.runtime.losses.detr import DEFAULT_MATCHER, hungarian_match

    targets = [{"boxes": torch.tensor([[0.0, 0, 0.5, 0.5], [0.5, 0.5, 1, 1]]), "labels": torch.tensor([0, 1])}]
    boxes = torch.tensor([[[0.75, 0.75, 0.5, 0.5], [0.25, 0.25, 0.5, 0.5], [0.5, 0.5, 0.2, 0.2]]])
    ((queries, columns),) = hungarian_match(
        {"pred_boxes": boxes, "pred_logits": torch.zeros(1, 3, 2)}, targets, DEFAULT_MATCHER
    )
    assert dict(zip(columns.tolist(), queries.tolist())) == {0: 1, 1: 0}


def test_detr_loss_without_targets_is_the_negative_varifocal_term():
    empty = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}]
    assert _detr({"pred": _detr_pred()}, empty).item() == pytest.approx(LN2 * 4 * 0.05, abs=1e-6)


def test_detr_loss_labels_term_is_refused_at_its_position():
    with pytest.raises(SpecError) as info:
        _detr({"pred": _detr_pred()}, losses=["vfl", "labels"], weight_dict={"loss_vfl": 1, "loss_ce": 1})
    (diagnostic,) = info.value.diagnostics
    assert diagnostic.pointer == "/model/losses/0/losses/1"
    assert "no-object logit" in diagnostic.message


def test_detr_loss_reaches_every_head_parameter_of_a_compiled_rtdetr(tmp_path):
    torch.manual_seed(0)
    model = _example("rtdetr-r18-detection", tmp_path).build_model(num_classes=3).train()
    targets = [
        {"boxes": torch.tensor([[4.0, 8.0, 40.0, 60.0], [30.0, 30.0, 60.0, 50.0]]), "labels": torch.tensor([0, 2])}
    ]
    model.head.set_training_targets({"img_size": (160, 160), "gt": targets})  # so the denoising queries train too
    out = model(torch.randn(1, 3, 160, 160))  # 20^2 + 10^2 + 5^2 encoder tokens: enough for the 300 queries
    assert out["aux_pred"] and out["dn_aux_pred"]
    loss, _ = build_loss((_loss("detr_loss"),), task="detection", head="rtdetr_head")
    total, _ = loss(out, targets, (160, 160))
    # the box MLPs' last layers start at zero (as RT-DETR's), so the layers before them get zero gradients at first
    _assert_every_parameter_gets_a_gradient(model.head, total, zero_ok=(r"(enc|dec)_bbox_head\.(\d\.)?layers\.[01]\.",))


# --- the runtime's criteria against the spec's loss registry ---------------------------------------------------------


def test_every_spec_loss_is_trainable_with_the_spec_defaults():
    """Each loss of compiler/components/losses.py (its tasks and parameters with their defaults) has a runtime
    criterion whose constructor takes the same parameters with the same defaults."""
    import inspect

    from npc.compiler import registry
    from npc.runtime.losses import CRITERIA

    problems = []
    for component in registry.list_components("loss"):
        criterion = CRITERIA.get(component.name)
        if criterion is None:
            problems.append(f"{component.name}: no runtime criterion")
            continue
        signature = inspect.signature(criterion.make).parameters
        constructor = {k: p.default for k, p in signature.items() if p.kind is p.POSITIONAL_OR_KEYWORD}
        if constructor != component.defaults():
            problems.append(f"{component.name}: constructor defaults {constructor} != {component.defaults()}")
    assert not problems, "\n".join(problems)
