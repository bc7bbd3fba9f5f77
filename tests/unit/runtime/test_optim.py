"""Optimizer parameter groups and the per-epoch learning-rate schedules."""

import math

import pytest
import torch

from npc.runtime.engine.optim import ModelEMA, build_optimizer, build_scheduler, lr_at


def test_warmup_then_cosine_reaches_min_lr_at_the_end():
    s = {"name": "cosine_no_sgdr", "warmup_epochs": 2, "warmup_bias_lr": 0.0, "min_lr": 0.01, "end_epoch": None}
    lrs = [lr_at(e, 1.0, s, 12) for e in range(12)]
    assert lrs[:2] == [0.5, 1.0]  # NetsPresso's warm-up: (epoch + 1) / warmup_epochs, so it ends at lr
    # then the peer's chained cosine over end_epoch, scaled from where the warm-up left off
    assert lrs[6] == pytest.approx(0.01 + 0.99 * (1 + math.cos(math.pi * 0.5)) / (1 + math.cos(math.pi / 12)))
    assert lr_at(12, 1.0, s, 12) == pytest.approx(0.01)


def test_sgdr_restarts_every_phase():
    s = {"name": "cosine", "warmup_epochs": 0, "min_lr": 0.0, "iters_per_phase": 3}
    assert [round(lr_at(e, 1.0, s, 9), 6) for e in (0, 3, 6)] == [1.0, 1.0, 1.0]
    assert lr_at(1, 1.0, s, 9) == pytest.approx(0.75)


def test_step_multistep_poly():
    assert [
        lr_at(e, 1.0, {"name": "step", "iters_per_phase": 2, "gamma": 0.1, "end_epoch": 4}, 10) for e in (0, 1, 2, 5, 9)
    ] == pytest.approx([1, 1, 0.1, 0.01, 0.01])
    assert [lr_at(e, 1.0, {"name": "multi_step", "milestones": [2, 4], "gamma": 0.5}, 6) for e in range(6)] == [
        1,
        1,
        0.5,
        0.5,
        0.25,
        0.25,
    ]
    poly = {"name": "poly", "warmup_epochs": 0, "min_lr": 0.0, "power": 2.0, "end_epoch": None}
    assert lr_at(5, 1.0, poly, 10) == pytest.approx((0.5 / 1.1) ** 2)  # the peer's chained form starts a step early
    assert lr_at(3, 0.1, None, 10) == 0.1


def test_scheduler_drives_the_optimizer_and_its_state_resumes():
    config = {
        "optimizer": {"name": "sgd", "lr": 1.0},
        "scheduler": {"name": "multi_step", "milestones": [1], "gamma": 0.5},
    }
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=1.0)
    scheduler = build_scheduler(optimizer, config, 3)
    optimizer.step(), scheduler.step()
    assert optimizer.param_groups[0]["lr"] == 0.5
    state = scheduler.state_dict()
    assert state["lr_lambdas"] == [None]  # the schedule comes from config, not from the checkpoint
    fresh_opt = torch.optim.SGD([param], lr=1.0)
    fresh = build_scheduler(fresh_opt, config, 3)
    fresh_opt.load_state_dict(optimizer.state_dict())
    fresh.load_state_dict(state)
    assert fresh.last_epoch == 1 and fresh_opt.param_groups[0]["lr"] == 0.5


def test_no_bias_decay_and_frozen_parameters():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    model[0].weight.requires_grad_(False)
    opt = build_optimizer(model, {"name": "adamw", "lr": 0.1, "weight_decay": 0.05, "no_bias_decay": True})
    decayed, plain = opt.param_groups
    # NetsPresso's rule is by name: every *bias*; the BN weight ("1.weight") keeps its decay
    assert [p.shape for p in decayed["params"]] == [torch.Size([4]), torch.Size([2, 4])]
    assert decayed["weight_decay"] == 0.05
    assert len(plain["params"]) == 3 and plain["weight_decay"] == 0.0
    assert sum(len(g["params"]) for g in opt.param_groups) == 5  # the frozen weight is not there


def test_ema_follows_the_decay():
    model = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    ema = ModelEMA(model, {"name": "constant_decay", "decay": 0.9})
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model)
    assert ema.module.weight.item() == pytest.approx(0.1)
    exp = ModelEMA(model, {"name": "exp_decay", "decay": 0.9, "beta": 1.0})
    exp.updates = 0
    assert exp.decay() == 0.0  # starts by copying, converges to `decay`
