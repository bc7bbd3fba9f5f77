"""npc's learning rates equal NetsPresso Trainer's, epoch by epoch, for every optimizer and scheduler it registers.

``tests/data/peer_lr_facts.json`` was recorded by running the peer's own scheduler and optimizer classes (1.4.1)
over a grid of settings, stepped once per epoch as its training loop does. Each case is replayed here through
npc's optimizer builder (an ``overwrite`` group with its own lr stands for the peer's extra param group) and its
torch scheduler, stepped the same way.
"""

import json
from pathlib import Path

import pytest
import torch

from npc.runtime.engine.optim import build_optimizer, build_scheduler, lr_at
from npc.schemas.run import OPTIMIZERS, SCHEDULERS
from npc.spec.run_config import resolve_training

FACTS = json.loads((Path(__file__).parents[2] / "data" / "peer_lr_facts.json").read_text())["cases"]


def _case_id(case: dict) -> str:
    s = case["scheduler"]
    settings = "-".join(f"{k}={v}" for k, v in s.items() if k != "name")
    return f"{case['optimizer']['name']}-{s['name']}-{case['epochs']}ep-{settings}"


class _Model(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = torch.nn.Linear(2, 2)
        self.head = torch.nn.Linear(2, 1)


def _training(case: dict) -> dict:
    optimizer = dict(case["optimizer"])
    if len(case["group_lrs"]) > 1:  # the second group: the head, with its own lr
        optimizer["overwrite"] = [{"param_group": "head", "lr": case["group_lrs"][1]}]
    return resolve_training({"epochs": case["epochs"], "optimizer": optimizer, "scheduler": case["scheduler"]}, {})


@pytest.mark.parametrize("case", FACTS, ids=[_case_id(c) for c in FACTS])
def test_every_epoch_has_the_peers_learning_rate(case):
    training = _training(case)
    optimizer = build_optimizer(_Model(), training["optimizer"])
    scheduler = build_scheduler(optimizer, training, case["epochs"])
    seen = []
    for _ in range(case["epochs"]):
        seen.append([group["lr"] for group in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    for group, expected in enumerate(case["lr_per_group"]):
        assert [row[group] for row in seen] == pytest.approx(expected, abs=1e-9, rel=0)


def test_the_issue_example_one_warmup_epoch_already_runs_at_lr():
    """adamw lr 1e-3, cosine_no_sgdr, warmup_epochs 1, warmup_bias_lr 1e-5, end_epoch 8: the peer's figures."""
    s = {"name": "cosine_no_sgdr", "warmup_epochs": 1, "warmup_bias_lr": 1e-5, "min_lr": 1e-5, "end_epoch": 8}
    lrs = [lr_at(e, 1e-3, s, 8) for e in range(8)]
    assert [round(v, 7) for v in lrs] == [1.0e-3, 9.623e-4, 8.55e-4, 6.944e-4, 5.05e-4, 3.156e-4, 1.55e-4, 4.77e-5]


def test_the_facts_cover_every_optimizer_and_scheduler_of_the_peer():
    assert {c["optimizer"]["name"] for c in FACTS} == set(OPTIMIZERS)
    assert {c["scheduler"]["name"] for c in FACTS} == set(SCHEDULERS)
    assert set(OPTIMIZERS) == {"adamw", "adam", "adadelta", "adagrad", "rmsprop", "adamax", "sgd"}
    assert any(c["scheduler"].get("warmup_epochs") for c in FACTS)


def test_param_groups_follow_the_peers_names_and_overwrite():
    from npc.runtime.errors import RunError

    class Part(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Linear(2, 2)
            self.norm = torch.nn.LayerNorm(2)

    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone, self.head = Part(), Part()

    base = {"name": "sgd", "lr": 0.1, "weight_decay": 0.01, "no_bias_decay": True, "no_norm_weight_decay": True}
    optimizer = build_optimizer(Model(), base)
    assert [(len(g["params"]), g["weight_decay"]) for g in optimizer.param_groups] == [(2, 0.01), (6, 0.0)]
    overwrite = [{"param_group": "head", "lr": 0.5, "no_bias_decay": False, "no_norm_weight_decay": False}]
    optimizer = build_optimizer(Model(), {**base, "overwrite": overwrite})
    groups = [(len(g["params"]), g["lr"], g["weight_decay"]) for g in optimizer.param_groups]
    # backbone: conv.weight decayed, biases and norm.weight not; head: all four decayed at its own lr
    assert groups == [(1, 0.1, 0.01), (3, 0.1, 0.0), (4, 0.5, 0.01)]
    with pytest.raises(RunError, match="overwrite needs a backbone/neck/head model"):
        build_optimizer(torch.nn.Sequential(torch.nn.Linear(2, 2)), {**base, "overwrite": overwrite})
