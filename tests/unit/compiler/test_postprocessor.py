"""The emitted detection postprocessor: NMS on hand-made boxes and against a brute-force reference, each head's
decoder on hand-made raw outputs, and model + postprocessor end to end on a tiny compiled detector.

torchvision is not importable here, so the reference NMS is the greedy definition written out in plain Python.
"""

import inspect
import json
import math
import random
import re

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import REPO, compile_file, compile_problem, import_source

NUM_CLASSES = 3
HEADS = {
    "anchor_decoupled_head": {"anchor_sizes": [[16], [32], [64]], "num_layers": 1},
    "anchor_free_decoupled_head": {},
    "yolo_detection_head": {"reg_max": 4},
}


def _spec(head: str, postprocessor: dict | None = None, name: str = "tiny_detector") -> dict:
    """A tiny ResNet + FPN detector ending in ``head``; every head with a decoder accepts FPN's levels."""
    model = {
        "task": "detection",
        "name": name,
        "architecture": {
            "backbone": {
                "name": "resnet",
                "params": {"block_type": "basicblock", "return_stage_idx": [1, 2]},
                "stage_params": [
                    {"channels": 8, "num_blocks": 1},
                    {"channels": 16, "num_blocks": 1},
                    {"channels": 32, "num_blocks": 1},
                ],
            },
            "neck": {"name": "fpn", "params": {"num_outs": 3, "add_extra_convs": True}},
            "head": {"name": head, "params": HEADS[head]},
        },
    }
    if postprocessor is not None:
        model["postprocessor"] = {"params": postprocessor}
    return {"model": model}


def _compile(tmp_path, head: str, **kwargs) -> str:
    path = tmp_path / f"{head}.json"
    path.write_text(json.dumps(_spec(head, **kwargs)))
    return compile_file(path)


@pytest.fixture(scope="module")
def modules(tmp_path_factory):
    """The emitted module of the tiny detector, per head."""
    tmp_path = tmp_path_factory.mktemp("postprocessor")
    return {head: import_source(_compile(tmp_path, head), f"pp_{head}", tmp_path) for head in HEADS}


@pytest.fixture(scope="module")
def emitted(modules):
    return modules["anchor_decoupled_head"]


def _boxes(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


# --- NMS on hand-made boxes ---------------------------------------------------------------------------------

# A and B overlap (IoU 81/119 = 0.68); C is B's box in another class; D overlaps nothing.
BOXES = _boxes([[0, 0, 10, 10], [1, 1, 11, 11], [1, 1, 11, 11], [20, 20, 30, 30]])
SCORES = torch.tensor([0.9, 0.8, 0.7, 0.6])
LABELS = torch.tensor([0, 0, 1, 0])


def test_overlapping_boxes_are_suppressed_within_their_class_only(emitted):
    assert emitted.batched_nms(BOXES, SCORES, LABELS, 0.5).tolist() == [0, 2, 3]


def test_class_agnostic_nms_suppresses_across_classes(emitted):
    assert emitted.batched_nms(BOXES, SCORES, LABELS, 0.5, class_agnostic=True).tolist() == [0, 3]


def test_nms_keeps_best_first_whatever_the_input_order(emitted):
    order = torch.tensor([3, 1, 0, 2])
    kept = emitted.batched_nms(BOXES[order], SCORES[order], LABELS[order], 0.5)
    assert order[kept].tolist() == [0, 2, 3]


def test_an_iou_equal_to_the_threshold_is_not_suppressed(emitted):
    boxes = _boxes([[0, 0, 3, 1], [1, 0, 4, 1]])  # intersection 2, union 4: IoU exactly 0.5
    scores, labels = torch.tensor([0.9, 0.8]), torch.tensor([0, 0])
    assert emitted.batched_nms(boxes, scores, labels, 0.5).tolist() == [0, 1]
    assert emitted.batched_nms(boxes, scores, labels, 0.49).tolist() == [0]


def test_nms_of_no_boxes_is_no_indices(emitted):
    kept = emitted.batched_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long), 0.5)
    assert kept.shape == (0,) and kept.dtype == torch.long


class _Candidates(torch.nn.Module):
    """A decoder that hands the postprocessor fixed candidates for one image."""

    def __init__(self, boxes, scores, labels):
        super().__init__()
        self.candidates = [(boxes, scores, labels)]

    def forward(self, outputs, image_size):
        return self.candidates


def test_postprocessor_caps_detections_per_image(emitted):
    capped = emitted.Postprocessor(_Candidates(BOXES, SCORES, LABELS), 0.5, False, 2)({}, (32, 32))
    assert capped[0]["scores"].tolist() == pytest.approx([0.9, 0.7])
    uncapped = emitted.Postprocessor(_Candidates(BOXES, SCORES, LABELS), 0.5, False, None)({}, (32, 32))
    assert uncapped[0]["labels"].tolist() == [0, 1, 0]


def test_postprocessor_of_no_candidates_is_well_formed(emitted):
    empty = _Candidates(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long))
    (detections,) = emitted.Postprocessor(empty, 0.5, False, None)({}, (32, 32))
    assert [tuple(detections[key].shape) for key in ("boxes", "scores", "labels")] == [(0, 4), (0,), (0,)]


# --- NMS against a brute-force reference -----------------------------------------------------------------------


def _iou(a, b) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    intersection = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - intersection
    return intersection / union


def _reference_nms(boxes, scores, labels, threshold, class_agnostic) -> list[int]:
    """Greedy NMS by its definition: best first (equal scores: lower index first, as ``sorted`` is stable), a box is
    kept unless it overlaps a kept box (of its class)."""
    kept = []
    for i in sorted(range(len(boxes)), key=lambda i: -scores[i]):
        overlaps = (_iou(boxes[i], boxes[k]) > threshold and (class_agnostic or labels[i] == labels[k]) for k in kept)
        if not any(overlaps):
            kept.append(i)
    return kept


@pytest.mark.parametrize("class_agnostic", [False, True])
def test_nms_matches_the_brute_force_reference_on_random_boxes(emitted, class_agnostic):
    rng = random.Random(0)
    for trial in range(40):
        count = rng.randint(0, 60)
        corners = [(rng.uniform(0, 90), rng.uniform(0, 90)) for _ in range(count)]
        boxes = [[x, y, x + rng.uniform(1, 30), y + rng.uniform(1, 30)] for x, y in corners]
        scores = rng.sample(range(1, 10_000), count)  # distinct, so the order is unambiguous
        labels = [rng.randrange(3) for _ in range(count)]
        threshold = rng.choice([0.1, 0.3, 0.5, 0.7])
        expected = _reference_nms(boxes, scores, labels, threshold, class_agnostic)
        kept = emitted.batched_nms(
            torch.tensor(boxes, dtype=torch.float64).reshape(-1, 4),
            torch.tensor(scores, dtype=torch.float64),
            torch.tensor(labels, dtype=torch.long),
            threshold,
            class_agnostic,
        )
        assert kept.tolist() == expected, f"trial {trial}"


# Integer corners on a small grid, few distinct scores and thresholds that IoUs of such boxes hit exactly: equal
# scores and IoUs equal to the threshold come up often. float64, so both sides round alike.
_GRID_BOX = st.tuples(st.integers(0, 12), st.integers(0, 12), st.integers(1, 6), st.integers(1, 6))
_CANDIDATES = st.lists(st.tuples(_GRID_BOX, st.sampled_from([0.2, 0.5, 0.9]), st.integers(0, 2)), max_size=40)
_THRESHOLDS = st.sampled_from([0.0, 0.25, 1 / 3, 0.5, 2 / 3, 0.9])


def _tensors(candidates) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    boxes = [[x, y, x + w, y + h] for (x, y, w, h), _, _ in candidates]
    return (
        torch.tensor(boxes, dtype=torch.float64).reshape(-1, 4),
        torch.tensor([score for _, score, _ in candidates], dtype=torch.float64),
        torch.tensor([label for _, _, label in candidates], dtype=torch.long),
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    candidates=_CANDIDATES,
    threshold=_THRESHOLDS,
    class_agnostic=st.booleans(),
    max_kept=st.none() | st.integers(1, 8),
)
def test_batched_nms_is_the_greedy_definition_with_ties(emitted, candidates, threshold, class_agnostic, max_kept):
    boxes, scores, labels = _tensors(candidates)
    expected = _reference_nms(boxes.tolist(), scores.tolist(), labels.tolist(), threshold, class_agnostic)
    kept = emitted.batched_nms(boxes, scores, labels, threshold, class_agnostic, max_kept)
    assert kept.dtype == torch.long
    assert kept.tolist() == expected[:max_kept]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(candidates=_CANDIDATES, threshold=_THRESHOLDS, block=st.integers(1, 8), max_kept=st.none() | st.integers(1, 8))
def test_nms_in_blocks_is_the_greedy_definition_with_ties(emitted, candidates, threshold, block, max_kept):
    """Small blocks, so that boxes kept in one block suppress candidates in later ones."""
    boxes, scores, labels = _tensors(candidates)
    expected = _reference_nms(boxes.tolist(), scores.tolist(), labels.tolist(), threshold, class_agnostic=True)
    assert emitted.nms(boxes, scores, threshold, max_kept, block).tolist() == expected[:max_kept]


# --- decoders on hand-made raw outputs -------------------------------------------------------------------------


def test_anchor_decoupled_decoder_moves_anchors_by_deltas_and_clips(emitted):
    anchors = _boxes([[0, 0, 10, 10], [10, 10, 30, 30]])
    logits = torch.full((1, 2, 2), -10.0)  # (B, anchors, classes)
    logits[0, 0, 1] = 2.0  # anchor 0, class 1: p = 0.88
    logits[0, 1, 0] = 0.0  # anchor 1, class 0: p = 0.5 exactly
    deltas = torch.zeros(1, 2, 4)
    deltas[0, 0] = torch.tensor([0.1, 0.0, math.log(2), 0.0])  # centre x + 0.1 * width, width x 2
    outputs = {"anchors": anchors, "cls_logits": [logits], "bbox_regression": [deltas]}

    decoder = emitted.AnchorDecoupledDecoder(score_thresh=0.05, topk_candidates=1000)
    ((boxes, scores, labels),) = decoder(outputs, (25, 40))  # image (H, W) = (25, 40)
    # anchor 0: centre (6, 5), size (20, 10) → (-4, 0, 16, 10), clipped at x = 0; anchor 1 clipped at y = 25
    torch.testing.assert_close(boxes, _boxes([[0, 0, 16, 10], [10, 10, 30, 25]]))
    torch.testing.assert_close(scores, torch.tensor([torch.sigmoid(torch.tensor(2.0)).item(), 0.5]))
    assert labels.tolist() == [1, 0]

    strict = emitted.AnchorDecoupledDecoder(score_thresh=0.5, topk_candidates=1000)
    assert strict(outputs, (25, 40))[0][2].tolist() == [1]  # the peer keeps scores strictly above
    top1 = emitted.AnchorDecoupledDecoder(score_thresh=0.05, topk_candidates=1)
    assert top1(outputs, (25, 40))[0][2].tolist() == [1]  # top-k per level before NMS


def test_anchor_decoupled_decoder_takes_top_k_per_level(emitted):
    anchors = _boxes([[0, 0, 4, 4]] * 3)
    levels = [torch.tensor([[[1.0], [3.0]]]), torch.tensor([[[2.0]]])]  # level 0: two anchors, level 1: one
    deltas = [torch.zeros(1, 2, 4), torch.zeros(1, 1, 4)]
    outputs = {"anchors": anchors, "cls_logits": levels, "bbox_regression": deltas}
    ((_, scores, _),) = emitted.AnchorDecoupledDecoder(0.05, 1)(outputs, (8, 8))
    torch.testing.assert_close(scores, torch.sigmoid(torch.tensor([3.0, 2.0])))


def test_anchor_free_decoder_decodes_yolox_cells(modules):
    emitted = modules["anchor_free_decoupled_head"]
    pred = torch.full((1, 4 + 1 + 2, 2, 2), -10.0)  # (B, box + objectness + 2 classes, H, W); stride 8
    pred[0, :4, 0, 1] = torch.tensor([0.5, 0.25, math.log(4), math.log(2)])  # cell x = 1, y = 0
    pred[0, 4, 0, 1] = 0.0  # objectness 0.5
    pred[0, 5:, 0, 1] = torch.tensor([-10.0, 0.0])  # class 1 at 0.5: score 0.25 exactly
    decoder = emitted.AnchorFreeDecoupledDecoder(score_thresh=0.25)
    ((boxes, scores, labels),) = decoder({"pred": [pred]}, (16, 16))
    # centre ((0.5 + 1) * 8, (0.25 + 0) * 8) = (12, 2), size (4 * 8, 2 * 8) = (32, 16); not clipped
    torch.testing.assert_close(boxes, _boxes([[-4, -6, 28, 10]]))
    assert scores.tolist() == [0.25] and labels.tolist() == [1]  # kept at score == score_thresh


def test_yolo_decoder_decodes_distributions_from_cell_centres(modules):
    emitted = modules["yolo_detection_head"]
    reg_max = 4
    pred = torch.full((1, 4 * reg_max + 2, 1, 2), -10.0)  # (B, 4 sides x 4 bins + 2 classes, H, W); stride 8
    sides = torch.tensor(
        [
            [0.0, 0.0, 0.0, 0.0],  # left: uniform, mean 1.5 bins
            [100.0, 0.0, 0.0, 0.0],  # top: bin 0
            [0.0, 0.0, 0.0, 100.0],  # right: bin 3
            [-100.0, 0.0, 0.0, -100.0],  # bottom: bins 1 and 2, mean 1.5
        ]
    )
    pred[0, : 4 * reg_max, 0, 1] = sides.flatten()
    pred[0, 4 * reg_max :, 0, 1] = torch.tensor([0.0, 2.0])
    decoder = emitted.YOLODetectionDecoder(score_thresh=0.6, reg_max=reg_max)
    ((boxes, scores, labels),) = decoder({"pred": [pred]}, (8, 16))
    # cell centre (1 * 8 + 4, 0 * 8 + 4) = (12, 4); distances (12, 0, 24, 12)
    torch.testing.assert_close(boxes, _boxes([[0, 4, 36, 16]]), atol=1e-4, rtol=0)
    torch.testing.assert_close(scores, torch.sigmoid(torch.tensor([2.0])))
    assert labels.tolist() == [1]


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def _reference_cells(levels, image_size, decode_cell):
    """Every cell of every level in order (level, row, column), decoded by ``decode_cell(values, x, y, stride)``."""
    found = []
    for level in levels:
        height, width = level.shape[-2:]
        stride = image_size[1] // width
        for y in range(height):
            for x in range(width):
                found.append(decode_cell(level[0, :, y, x].tolist(), x, y, stride))
    return found


def _yolox_cell(values, x, y, stride):
    centre_x, centre_y = (values[0] + x) * stride, (values[1] + y) * stride
    width, height = math.exp(values[2]) * stride, math.exp(values[3]) * stride
    probabilities = [_sigmoid(v) for v in values[5:]]
    label = max(range(len(probabilities)), key=probabilities.__getitem__)
    box = [centre_x - width / 2, centre_y - height / 2, centre_x + width / 2, centre_y + height / 2]
    return box, _sigmoid(values[4]) * probabilities[label], label


def _yolo_cell(values, x, y, stride, reg_max=4):
    distances = []
    for side in range(4):
        logits = values[side * reg_max : (side + 1) * reg_max]
        weights = [math.exp(v - max(logits)) for v in logits]
        distances.append(sum(i * w for i, w in enumerate(weights)) / sum(weights) * stride)
    centre_x, centre_y = x * stride + stride // 2, y * stride + stride // 2
    probabilities = [_sigmoid(v) for v in values[4 * reg_max :]]
    label = max(range(len(probabilities)), key=probabilities.__getitem__)
    box = [centre_x - distances[0], centre_y - distances[1], centre_x + distances[2], centre_y + distances[3]]
    return box, probabilities[label], label


@pytest.mark.parametrize(
    ("head", "decoder", "channels", "decode_cell", "threshold"),
    [
        ("anchor_free_decoupled_head", "AnchorFreeDecoupledDecoder", 4 + 1 + 3, _yolox_cell, 0.2),
        ("yolo_detection_head", "YOLODetectionDecoder", 4 * 4 + 3, _yolo_cell, 0.7),
    ],
)
def test_grid_decoders_match_a_cell_by_cell_reference(modules, head, decoder, channels, decode_cell, threshold):
    """Random raw outputs on three levels of a non-square input, against the peer's formulas cell by cell."""
    torch.manual_seed(0)
    image_size = (32, 64)  # (H, W): levels of 4x8, 2x4 and 1x2 cells at strides 8, 16 and 32
    levels = [torch.randn(1, channels, 32 // s, 64 // s) for s in (8, 16, 32)]
    kwargs = {"reg_max": 4} if head == "yolo_detection_head" else {}
    ((boxes, scores, labels),) = getattr(modules[head], decoder)(threshold, **kwargs)({"pred": levels}, image_size)
    expected = [cell for cell in _reference_cells(levels, image_size, decode_cell) if cell[1] >= threshold]
    assert 0 < len(expected) < 4 * 8 + 2 * 4 + 1 * 2  # the threshold keeps some cells, not all
    torch.testing.assert_close(boxes, _boxes([box for box, _, _ in expected]), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(scores, torch.tensor([score for _, score, _ in expected]))
    assert labels.tolist() == [label for _, _, label in expected]


# --- end to end and emission -----------------------------------------------------------------------------------


@pytest.mark.parametrize("head", list(HEADS))
def test_model_and_postprocessor_turn_images_into_detections(modules, head):
    module = modules[head]
    torch.manual_seed(0)
    model = module.build_model(num_classes=NUM_CLASSES).eval()
    postprocess = module.build_postprocessor(score_thresh=0.0, nms_thresh=0.5, detections_per_image=20)
    images = torch.randn(2, 3, 32, 64)
    with torch.no_grad():
        detections = postprocess(model(images), images.shape[-2:])
    assert len(detections) == 2
    for found in detections:
        boxes, scores, labels = found["boxes"], found["scores"], found["labels"]
        assert boxes.shape == (len(scores), 4) and labels.shape == scores.shape and 0 < len(scores) <= 20
        assert labels.dtype == torch.long and labels.min() >= 0 and labels.max() < NUM_CLASSES
        assert torch.all(scores[:-1] >= scores[1:]) and torch.all(boxes[:, 2:] >= boxes[:, :2])
        assert module.batched_nms(boxes, scores, labels, 0.5).tolist() == list(range(len(scores)))


def test_spec_values_become_build_postprocessor_defaults(tmp_path):
    spec = REPO / "tests" / "specs" / "golden" / "tiny-resnet-fpn-detection.json"
    module = import_source(compile_file(spec), "pp_golden", tmp_path)
    defaults = {k: p.default for k, p in inspect.signature(module.build_postprocessor).parameters.items()}
    assert defaults == {
        "score_thresh": 0.05,
        "topk_candidates": 100,
        "nms_thresh": 0.5,
        "class_agnostic": False,
        "detections_per_image": None,
    }


@pytest.mark.parametrize(
    ("head", "defaults"),
    [
        ("anchor_decoupled_head", {"score_thresh": 0.05, "topk_candidates": 1000}),
        ("anchor_free_decoupled_head", {"score_thresh": 0.7}),
        ("yolo_detection_head", {"score_thresh": 0.7}),
    ],
)
def test_without_postprocessor_params_the_peer_defaults_apply(modules, head, defaults):
    parameters = inspect.signature(modules[head].build_postprocessor).parameters
    expected = {**defaults, "nms_thresh": 0.45, "class_agnostic": False, "detections_per_image": None}
    assert {k: p.default for k, p in parameters.items()} == expected


def test_an_integer_threshold_is_emitted_as_a_float(tmp_path):
    source = _compile(tmp_path, "anchor_free_decoupled_head", postprocessor={"score_thresh": 0, "nms_thresh": 1})
    assert "score_thresh: float = 0.0," in source and "nms_thresh: float = 1.0," in source


def test_yolo_reg_max_must_agree_with_the_head(tmp_path):
    path = tmp_path / "bad_reg_max.json"
    path.write_text(json.dumps(_spec("yolo_detection_head", postprocessor={"reg_max": 16})))
    pointer, message = compile_problem(path)  # reported by npc validate already (the decoder is planned in a pass)
    assert pointer == "/model/postprocessor/params/reg_max"
    assert "reg_max (4)" in message
    assert "reg_max=4)" in _compile(tmp_path, "yolo_detection_head", postprocessor={"reg_max": 4})


def test_a_head_without_a_decoder_emits_no_postprocessor(tmp_path, monkeypatch):
    from npc.compiler import registry

    monkeypatch.setattr(registry.get("head", "anchor_free_decoupled_head"), "postprocessor_template", None)
    source = _compile(tmp_path, "anchor_free_decoupled_head")
    assert "def build_model" in source
    assert "build_postprocessor" not in source and "batched_nms" not in source


def test_a_model_named_postprocessor_does_not_shadow_the_postprocessor(tmp_path):
    path = tmp_path / "named.json"
    path.write_text(json.dumps(_spec("anchor_free_decoupled_head", name="postprocessor")))
    module = import_source(compile_file(path), "pp_named", tmp_path)
    assert module.PostprocessorModel is not module.Postprocessor
    assert isinstance(module.build_postprocessor(), module.Postprocessor)


def test_docs_list_exactly_the_heads_with_a_decoder():
    from npc.compiler import registry

    text = (REPO / "docs" / "postprocessing.md").read_text()
    documented = set(re.findall(r"^\| `(\w+)` \(", text, flags=re.MULTILINE))
    assert documented == {head.name for head in registry.list_components("head") if head.postprocessor_template}


ZOO = REPO / "zoo"


@pytest.fixture(scope="module")
def peer_heads(tmp_path_factory):
    """The emitted modules of the peer's YOLO-Fastest-v2 and RT-DETR-R18 examples (heads that need their own
    necks, so not the tiny FPN detector above)."""
    tmp_path = tmp_path_factory.mktemp("peer_heads")
    configs = {"yolo_fastest": "yolo-fastest-v2-detection.yaml", "rtdetr": "rtdetr-res18-detection.yaml"}
    return {key: import_source(compile_file(ZOO / path), f"pp_{key}", tmp_path) for key, path in configs.items()}


def test_yolo_fastest_decoder_places_anchors_on_cells(peer_heads):
    emitted = peer_heads["yolo_fastest"]
    level = torch.full((1, 1, 4 + 1 + 2, 1, 2), -10.0)  # (B, A, box + objectness + 2 classes, H, W); stride 32
    level[0, 0, :4, 0, 1] = 0.0  # cell x = 1: centre offset 0.5, size scale 2 * (tanh(-0.549306) + 1) = 1
    level[0, 0, 4, 0, 1] = 10.0
    level[0, 0, 5:, 0, 1] = torch.tensor([-10.0, 5.0])
    quiet = torch.full((1, 1, 4 + 1 + 2, 1, 1), -10.0)  # a second level with nothing in it
    decoder = emitted.YOLOFastestDecoder(anchors=((10.0, 20.0), (30.0, 30.0)), score_thresh=0.5)
    ((boxes, scores, labels),) = decoder({"pred": [level, quiet]}, (32, 64))
    # centre ((0.5 + 1) * 32, 0.5 * 32) = (48, 16), size = the anchor (10, 20)
    torch.testing.assert_close(boxes, _boxes([[43, 6, 53, 26]]), atol=1e-4, rtol=0)
    torch.testing.assert_close(scores, torch.sigmoid(torch.tensor([10.0])) * torch.sigmoid(torch.tensor([5.0])))
    assert labels.tolist() == [1]


def test_rtdetr_decoder_takes_the_best_query_class_pairs_without_nms(peer_heads):
    emitted = peer_heads["rtdetr"]
    pred = torch.tensor([[[0.5, 0.5, 0.2, 0.4, 2.0, -1.0], [0.25, 0.25, 0.1, 0.1, -3.0, 0.0]]])  # 2 queries, 2 classes
    postprocessor = emitted.build_postprocessor(num_top_queries=2)
    assert postprocessor.nms_thresh is None  # the peer runs no NMS after RT-DETR
    (result,) = postprocessor({"pred": pred}, (100, 200))
    # best pairs: (query 0, class 0) sigmoid(2), (query 1, class 1) sigmoid(0); boxes scaled by (W, H) = (200, 100)
    torch.testing.assert_close(result["boxes"], _boxes([[80, 30, 120, 70], [40, 20, 60, 30]]))
    torch.testing.assert_close(result["scores"], torch.sigmoid(torch.tensor([2.0, 0.0])))
    assert result["labels"].tolist() == [0, 1]


@pytest.mark.parametrize(("key", "size"), [("yolo_fastest", 64), ("rtdetr", 320)])  # RT-DETR: >= 300 tokens
def test_peer_models_and_their_postprocessors_give_detections(peer_heads, key, size):
    module = peer_heads[key]
    torch.manual_seed(0)
    model = module.build_model(num_classes=NUM_CLASSES).eval()
    images = torch.rand(2, 3, size, size)
    with torch.no_grad():
        detections = module.build_postprocessor(score_thresh=0.0)(model(images), images.shape[-2:])
    assert len(detections) == 2
    for found in detections:
        assert found["boxes"].shape[1:] == (4,) and len(found["scores"]) == len(found["labels"])
        assert torch.all(found["scores"][:-1] >= found["scores"][1:])  # best first
        assert found["labels"].max() < NUM_CLASSES
