"""Optimizer, learning-rate schedule and EMA from the resolved ``training:`` section.

The schedule is per epoch, as in NetsPresso Trainer: the learning rate changes at the end of each epoch, from
``lr_at(epoch)`` (warm-up from ``warmup_bias_lr`` to ``lr`` over ``warmup_epochs``, then the named curve down to
``min_lr``). It runs as a ``LambdaLR``, so its state saves and resumes like any torch scheduler.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

__all__ = ["ModelEMA", "build_optimizer", "build_scheduler", "lr_at"]


def build_optimizer(model: nn.Module, config: dict[str, Any]) -> torch.optim.Optimizer:
    """Only trainable parameters; with ``no_bias_decay`` biases and norm weights (1-D tensors) get no decay."""
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    decay = config.get("weight_decay", 0.0) or 0.0
    if config.get("no_bias_decay") and decay:
        groups = [
            {"params": [p for _, p in params if p.ndim > 1], "weight_decay": decay},
            {"params": [p for _, p in params if p.ndim <= 1], "weight_decay": 0.0},
        ]
        groups = [g for g in groups if g["params"]]
    else:
        groups = [{"params": [p for _, p in params], "weight_decay": decay}]
    name, lr = config["name"], config["lr"]
    if name == "sgd":
        return torch.optim.SGD(
            groups, lr=lr, momentum=config.get("momentum", 0.0), nesterov=bool(config.get("nesterov", False))
        )
    cls = torch.optim.AdamW if name == "adamw" else torch.optim.Adam
    return cls(groups, lr=lr, betas=tuple(config.get("betas", (0.9, 0.999))), eps=config.get("eps", 1e-8))


def lr_at(epoch: int, base_lr: float, scheduler: dict[str, Any] | None, epochs: int) -> float:
    """The learning rate for (0-based) ``epoch`` of ``epochs``."""
    if not scheduler:
        return base_lr
    name = scheduler["name"]
    if name == "step":
        end = scheduler.get("end_epoch") or epochs
        return base_lr * scheduler["gamma"] ** (min(epoch, end) // scheduler["iters_per_phase"])
    if name == "multi_step":
        return base_lr * scheduler["gamma"] ** sum(1 for m in scheduler["milestones"] if epoch >= m)
    warmup = scheduler.get("warmup_epochs") or 0
    if epoch < warmup:
        start = scheduler.get("warmup_bias_lr") or 0.0
        return start + (base_lr - start) * epoch / warmup
    min_lr = scheduler.get("min_lr") or 0.0
    if name == "cosine":  # SGDR: restart every iters_per_phase epochs (default: one cycle over the rest)
        period = scheduler.get("iters_per_phase") or max(1, epochs - warmup)
        t = ((epoch - warmup) % period) / period
    else:  # cosine_no_sgdr, poly: one decay that reaches min_lr at end_epoch, then stays there
        end = scheduler.get("end_epoch") or epochs
        t = min(1.0, (epoch - warmup) / max(1, end - warmup))
    if name == "poly":
        return min_lr + (base_lr - min_lr) * (1.0 - t) ** scheduler.get("power", 1.0)
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * t))


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: dict[str, Any], epochs: int
) -> torch.optim.lr_scheduler.LambdaLR:
    base_lr, scheduler = config["optimizer"]["lr"], config.get("scheduler")

    def factor(epoch: int) -> float:  # a plain function: LambdaLR keeps it out of its state_dict
        return lr_at(epoch, base_lr, scheduler, epochs) / base_lr

    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=factor)


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
        for key, value in self.module.state_dict().items():
            if value.dtype.is_floating_point:
                value.mul_(d).add_(source[key].detach(), alpha=1.0 - d)
            else:
                value.copy_(source[key])

    def state_dict(self) -> dict[str, Any]:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])
