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


def _net() -> torch.nn.Module:
    # no bias before the BatchNorm: its true gradient is 0, so Adam would scale rounding noise up to +-lr
    torch.manual_seed(0)
    layers = [torch.nn.Conv2d(3, 4, 3, bias=False), torch.nn.BatchNorm2d(4), torch.nn.Flatten(), torch.nn.Linear(16, 2)]
    return torch.nn.Sequential(*layers)


def _steps(model: torch.nn.Module, optimizer: torch.optim.Optimizer, count: int, seed: int = 1) -> None:
    generator = torch.Generator().manual_seed(seed)
    for _ in range(count):
        optimizer.zero_grad(set_to_none=True)
        model(torch.randn(2, 3, 4, 4, generator=generator)).square().mean().backward()
        optimizer.step()


@pytest.mark.parametrize("name", ["adamw", "adam", "sgd", "adagrad", "adadelta", "rmsprop", "adamax"])
def test_fused_optimizer_is_the_same_update_rule_as_torchs_per_tensor_loop(name):
    """training.fused_optimizer (the default) swaps torch's per-tensor loop for its fused kernel where it has one:
    the weights after a few steps agree to float rounding, and a state saved by one resumes in the other."""
    config = {"name": name, "lr": 0.01, "weight_decay": 0.01, "momentum": 0.9}
    fast_model, loop_model = _net(), _net()
    fast = build_optimizer(fast_model, config)
    loop = build_optimizer(loop_model, config, fused=False)
    assert bool(fast.defaults.get("fused")) == (name in {"adamw", "adam", "sgd", "adagrad"})  # where torch has one
    assert not loop.defaults.get("fused") and not loop.defaults.get("foreach")  # torch's default: NetsPresso's
    _steps(fast_model, fast, 3)
    _steps(loop_model, loop, 3)
    for a, b in zip(fast_model.parameters(), loop_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    resumed = build_optimizer(loop_model, config, fused=False)
    resumed.load_state_dict(fast.state_dict())  # the fused run's state, in the per-tensor loop
    before = [p.detach().clone() for p in loop_model.parameters()]
    _steps(loop_model, resumed, 1, seed=2)
    assert any(not torch.equal(p, q) for p, q in zip(before, loop_model.parameters()))


def test_ema_update_is_the_per_tensor_formula_to_the_bit():
    model = _net()
    ema = ModelEMA(model, {"name": "constant_decay", "decay": 0.99})
    expected = {k: v.clone() for k, v in ema.module.state_dict().items()}
    optimizer = build_optimizer(model, {"name": "sgd", "lr": 0.1})
    for _ in range(5):
        _steps(model, optimizer, 1)
        ema.update(model)
        for key, value in model.state_dict().items():
            if value.dtype.is_floating_point:
                expected[key].mul_(0.99).add_(value, alpha=1 - 0.99)
            else:
                expected[key].copy_(value)
    for key, value in ema.module.state_dict().items():
        assert torch.equal(value, expected[key]), key
