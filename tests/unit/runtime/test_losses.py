"""Losses: cross_entropy (with label smoothing) against hand-computed values; weights multiply and sum."""

import math

import pytest
import torch

from npc.runtime._losses import build_loss
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
        build_loss((_loss("focal_loss", alpha=0.25, gamma=2.0),), source)
    (diagnostic,) = info.value.diagnostics
    assert (diagnostic.file, diagnostic.line, diagnostic.col) == ("spec.yaml", 30, 7)
    assert diagnostic.pointer == "/model/losses/0/criterion"
    assert "'focal_loss' is not supported by npc train" in diagnostic.message
    assert info.value.exit_code == 1


def test_unsupported_parameter_is_an_error():
    with pytest.raises(SpecError, match="ignore_index"):
        build_loss((_loss(ignore_index=3),))
