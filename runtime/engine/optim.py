"""Optimizer, learning-rate schedule and EMA from the resolved ``training:`` section, as NetsPresso Trainer builds them.

Parameter groups follow the peer's ``optimizers/builder.py``: ``no_bias_decay`` takes parameters whose name holds
``bias`` out of weight decay, ``no_norm_weight_decay`` those whose name holds ``norm.weight``; ``overwrite`` gives
``backbone``/``neck``/``head`` their own lr, weight decay and no-decay choices (one group per part, then its no-decay
group). The schedule is per epoch, as in the peer's ``pipelines/train.py`` (one ``scheduler.step()`` after each
epoch), and each epoch's learning rate is the one the peer's own scheduler classes give: :func:`lr_schedule` replays
their recursions (warm-up ``warmup_bias_lr + (epoch + 1) / warmup_epochs * (lr - warmup_bias_lr)``, then the named
curve), so a one-epoch warm-up already trains its first epoch at ``lr``. ``tests/data/peer_lr_facts.json`` holds the
peer's sequences for a grid of settings. The schedule runs as a ``LambdaLR`` (one factor per group, since the
warm-up start is absolute), so its state saves and resumes like any torch scheduler.
"""

from __future__ import annotations

import copy
import math
from collections import Counter
from typing import Any

import torch
from torch import nn

from ..errors import RunError

__all__ = ["ModelEMA", "build_optimizer", "build_scheduler", "lr_at", "lr_schedule", "param_groups"]

PARTS = ("backbone", "neck", "head")  # the overwrite param_group names: the peer's top-level modules
NO_DECAY_KEYS = ("no_bias_decay", "no_norm_weight_decay")


# --- parameter groups ----------------------------------------------------------------------------------------


def _no_decay(name: str, config: dict[str, Any]) -> bool:
    """The peer's name tests: ``bias`` anywhere in the name, ``norm.weight`` for norm layers named ``*norm``."""
    return bool(config.get("no_bias_decay") and "bias" in name) or bool(
        config.get("no_norm_weight_decay") and "norm.weight" in name
    )


def _split(named: list[tuple[str, nn.Parameter]], config: dict[str, Any]) -> list[dict[str, Any]]:
    """A decayed group and a no-decay group (either left out when empty), with the config's lr and decay."""
    decay = config.get("weight_decay", 0.0) or 0.0
    plain = [p for n, p in named if not _no_decay(n, config)]
    free = [p for n, p in named if _no_decay(n, config)]
    groups = [{"params": plain, "lr": config["lr"], "weight_decay": decay}]
    groups.append({"params": free, "lr": config["lr"], "weight_decay": 0.0})
    return [g for g in groups if g["params"]]


def _part_configs(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The optimizer config of each part with its ``overwrite`` entries applied (later entries win, as the peer)."""
    parts = {part: {k: v for k, v in config.items() if k != "overwrite"} for part in PARTS}
    for entry in config.get("overwrite") or []:
        parts[entry["param_group"]].update({k: v for k, v in entry.items() if k != "param_group"})
    return parts


def param_groups(model: nn.Module, config: dict[str, Any]) -> list[dict[str, Any]]:
    """Trainable parameters in the peer's groups; ValueError when there are none, RunError when ``overwrite``
    cannot apply (a model without backbone/neck/head, which the peer refuses too)."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("the model has no trainable parameters")
    if not config.get("overwrite"):
        return _split(named, config)
    strays = sorted({n.split(".")[0] for n, _ in named if n.split(".")[0] not in PARTS})
    if strays:  # not a ValueError: the caller's "is everything frozen?" hint would mislead
        raise RunError(
            "training.optimizer.overwrite needs a backbone/neck/head model (as NetsPresso Trainer); this model's "
            f"parameters also sit under {', '.join(strays)}"
        )
    groups: list[dict[str, Any]] = []
    for part, part_config in _part_configs(config).items():
        groups += _split([(n, p) for n, p in named if n.split(".")[0] == part], part_config)
    return groups


# torch's fused kernels (one pass over all parameters per step) exist for these. On a CPU torch otherwise loops over
# the parameter tensors in Python: resnet18's AdamW step takes ~10x longer that way (docs/benchmarks.md). The
# multi-tensor ("foreach") loop is no help there: slower than the plain loop on yolox-nano, so the rest keep it.
FUSED = frozenset({"adam", "adamw", "sgd", "adagrad"})


def build_optimizer(model: nn.Module, config: dict[str, Any], *, fused: bool = True) -> torch.optim.Optimizer:
    """The named torch optimizer with the peer's arguments over :func:`param_groups`; ``fused``
    (``training.fused_optimizer``): torch's fused implementation where it has one, instead of its per-tensor loop."""
    groups = param_groups(model, config)
    cls, kwargs = _optimizer_class(config)
    if fused and config["name"] in FUSED:
        try:
            return cls(groups, **kwargs, fused=True)
        except RuntimeError:  # parameters on a device torch has no fused kernel for: its default implementation
            pass
    return cls(groups, **kwargs)


def _optimizer_class(config: dict[str, Any]) -> tuple[type[torch.optim.Optimizer], dict[str, Any]]:
    lr, decay = config["lr"], config.get("weight_decay", 0.0) or 0.0
    name = config["name"]
    if name == "sgd":
        momentum, nesterov = config.get("momentum", 0.0), bool(config.get("nesterov", False))
        return torch.optim.SGD, {"lr": lr, "momentum": momentum, "weight_decay": decay, "nesterov": nesterov}
    if name == "adadelta":
        return torch.optim.Adadelta, {"lr": lr, "rho": config.get("rho", 0.9), "weight_decay": decay}
    if name == "adagrad":
        return torch.optim.Adagrad, {"lr": lr, "lr_decay": config.get("lr_decay", 0.0), "weight_decay": decay}
    if name == "rmsprop":
        return torch.optim.RMSprop, {
            "lr": lr,
            "alpha": config.get("alpha", 0.99),
            "momentum": config.get("momentum", 0.0),
            "eps": config.get("eps", 1e-8),
            "weight_decay": decay,
        }
    betas = tuple(config.get("betas", (0.9, 0.999)))
    if name == "adamax":
        return torch.optim.Adamax, {"lr": lr, "betas": betas, "weight_decay": decay}
    cls = torch.optim.AdamW if name == "adamw" else torch.optim.Adam
    return cls, {"lr": lr, "betas": betas, "eps": config.get("eps", 1e-8), "weight_decay": decay}


# --- learning-rate schedule ----------------------------------------------------------------------------------


def _warmup(epoch: int, base_lr: float, scheduler: dict[str, Any]) -> float | None:
    """The warm-up value of ``epoch`` (None past the warm-up): it reaches ``lr`` in epoch ``warmup_epochs - 1``."""
    warmup = scheduler.get("warmup_epochs") or 0
    if not 0 <= epoch < warmup:
        return None
    start = scheduler.get("warmup_bias_lr") or 0.0
    return start + (float(epoch + 1) / float(max(1, warmup))) * (base_lr - start)


def _cosine_no_sgdr(base_lr: float, scheduler: dict[str, Any], epochs: int, count: int) -> list[float]:
    """The peer's CosineAnnealingLRWithCustomWarmUp: torch's chained cosine, over ``end_epoch`` (at most
    ``epochs``), applied to the current lr; past ``end_epoch`` the lr stays."""
    period = min(scheduler.get("end_epoch") or epochs, epochs)
    eta = scheduler.get("min_lr") or 0.0
    lr, out = base_lr, []
    for epoch in range(count):
        warm = _warmup(epoch, base_lr, scheduler)
        if epoch > period:
            pass
        elif warm is not None:
            lr = warm
        elif (epoch - 1 - period) % (2 * period) == 0:
            lr = lr + (base_lr - eta) * (1 - math.cos(math.pi / period)) / 2
        else:
            lr = (1 + math.cos(math.pi * epoch / period)) / (1 + math.cos(math.pi * (epoch - 1) / period)) * (
                lr - eta
            ) + eta
        out.append(lr)
    return out


def _restart_period(current: int, remaining: int) -> tuple[int, int]:
    """The peer's get_reassigned_t_i (T_mult 1): the last period stretches to end with the run."""
    if remaining == 0:
        return current, 0
    if remaining < current:  # past the run's end (a resumed, longer run): the peer would stop; keep the period
        return current, remaining
    return (remaining, remaining) if remaining < 2 * current else (current, remaining)


def _cosine(base_lr: float, scheduler: dict[str, Any], epochs: int, count: int) -> list[float]:
    """The peer's CosineAnnealingWarmRestartsWithCustomWarmUp: restarts every ``iters_per_phase`` epochs (0 or
    null: a tenth of the run), counted from epoch 0 (warm-up included)."""
    phase = scheduler.get("iters_per_phase") or 0
    if phase <= 0:
        phase = epochs // 10 if epochs // 10 != 0 else epochs
    phase = min(phase, epochs)
    period, remaining = _restart_period(phase, epochs)
    eta = scheduler.get("min_lr") or 0.0
    position, out = 0, []
    for epoch in range(count):
        if epoch > 0:
            position += 1
            if position >= period:
                position -= period
                remaining -= period
                period, remaining = _restart_period(period, remaining)
        warm = _warmup(epoch, base_lr, scheduler)
        out.append(
            warm if warm is not None else eta + (base_lr - eta) * (1 + math.cos(math.pi * position / period)) / 2
        )
    return out


def _poly(base_lr: float, scheduler: dict[str, Any], epochs: int, count: int) -> list[float]:
    """The peer's PolynomialLRWithWarmUp: a chained polynomial decay to ``min_lr`` at ``end_epoch``, then stays."""
    end = scheduler.get("end_epoch") or epochs
    warmup = scheduler.get("warmup_epochs") or 0
    low, power = scheduler.get("min_lr") or 0.0, scheduler.get("power", 1.0)
    lr, out = base_lr, []
    for epoch in range(count):
        warm = _warmup(epoch, base_lr, scheduler)
        if epoch > end:
            pass
        elif warm is not None:
            lr = warm
        else:
            steps, step = end - warmup, epoch - warmup
            lr = low + (lr - low) * ((1.0 - step / steps) / (1.0 - (step - 1) / steps)) ** power
        out.append(lr)
    return out


def _step(base_lr: float, scheduler: dict[str, Any], epochs: int, count: int) -> list[float]:
    """The peer's StepLR: times ``gamma`` every ``iters_per_phase`` epochs up to ``end_epoch``."""
    end, phase = scheduler.get("end_epoch") or epochs, scheduler["iters_per_phase"]
    lr, out = base_lr, []
    for epoch in range(count):
        if 0 < epoch <= end and epoch % phase == 0:
            lr = lr * scheduler["gamma"]
        out.append(lr)
    return out


def _multi_step(base_lr: float, scheduler: dict[str, Any], epochs: int, count: int) -> list[float]:
    """The peer's MultiStepLR: times ``gamma`` once per listing of the epoch in ``milestones``."""
    milestones = Counter(scheduler["milestones"])
    lr, out = base_lr, []
    for epoch in range(count):
        if epoch in milestones:
            lr = lr * scheduler["gamma"] ** milestones[epoch]
        out.append(lr)
    return out


_SCHEDULES = {
    "cosine": _cosine,
    "cosine_no_sgdr": _cosine_no_sgdr,
    "poly": _poly,
    "step": _step,
    "multi_step": _multi_step,
}


def lr_schedule(base_lr: float, scheduler: dict[str, Any] | None, epochs: int, count: int | None = None) -> list[float]:
    """The learning rate of (0-based) epochs ``0 .. count - 1`` (default ``epochs``) of a run of ``epochs``."""
    count = epochs if count is None else count
    if not scheduler:
        return [base_lr] * count
    return _SCHEDULES[scheduler["name"]](base_lr, scheduler, epochs, count)


def lr_at(epoch: int, base_lr: float, scheduler: dict[str, Any] | None, epochs: int) -> float:
    """The learning rate for (0-based) ``epoch`` of ``epochs``."""
    return lr_schedule(base_lr, scheduler, epochs, epoch + 1)[epoch]


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: dict[str, Any], epochs: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """One factor per parameter group: an overwrite group has its own lr, and the warm-up start is absolute."""
    scheduler = config.get("scheduler")

    def factor_of(base_lr: float):
        def factor(epoch: int) -> float:  # a plain function: LambdaLR keeps it out of its state_dict
            return lr_at(epoch, base_lr, scheduler, epochs) / base_lr

        return factor

    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=[factor_of(g["lr"]) for g in optimizer.param_groups])


class ModelEMA:
    """Exponential moving average of a model's float state (parameters and BN statistics), as NetsPresso's EMA.

    ``constant_decay``: ``decay`` every step. ``exp_decay``: ``decay * (1 - exp(-updates / beta))``.
    """

    def __init__(self, model: nn.Module, config: dict[str, Any]) -> None:
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.config = config
        self.updates = 0

    def decay(self) -> float:
        decay = self.config["decay"]
        if self.config["name"] == "exp_decay":
            return decay * (1.0 - math.exp(-self.updates / self.config["beta"]))
        return decay

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = self.decay()
        source = model.state_dict()
        floats, their_floats = [], []
        for key, value in self.module.state_dict().items():
            if value.dtype.is_floating_point:
                floats.append(value)
                their_floats.append(source[key].detach())
            else:
                value.copy_(source[key])
        if floats:  # the same two element-wise ops per tensor as value.mul_(d).add_(x, alpha=1 - d), in one call each
            torch._foreach_mul_(floats, d)
            torch._foreach_add_(floats, their_floats, alpha=1.0 - d)

    def state_dict(self) -> dict[str, Any]:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])
