"""The spec's ``losses`` as one module: each criterion times its ``weight``, summed (weight ``~`` means 1).

Only classification's ``cross_entropy`` (with ``label_smoothing``) exists in this release; any other criterion is
reported at its spec position. Unlike NetsPresso Trainer, which keys losses by criterion name (so a second entry
with the same criterion replaces the first), every entry counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..spec import Diagnostic, LossSpec, Source, SpecError

__all__ = ["CombinedLoss", "build_loss"]

SUPPORTED: dict[str, set[str]] = {"cross_entropy": {"label_smoothing"}}


@dataclass(frozen=True)
class LossTerm:
    name: str  # "cross_entropy", or "cross_entropy#2" for a repeated criterion
    weight: float
    module: nn.Module


class CombinedLoss(nn.Module):
    """``forward(out, target) -> (total, {name: unweighted value})``; ``out`` is the model's output dict."""

    def __init__(self, terms: list[LossTerm]) -> None:
        super().__init__()
        self.names = [t.name for t in terms]
        self.weights = [t.weight for t in terms]
        self.terms = nn.ModuleList([t.module for t in terms])

    def forward(self, out: dict[str, torch.Tensor], target: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        pred = out["pred"]
        total = pred.new_zeros(())
        parts: dict[str, float] = {}
        for name, weight, term in zip(self.names, self.weights, self.terms):
            value = term(pred, target)
            parts[name] = float(value.detach())
            total = total + weight * value
        return total, parts


def build_loss(losses: tuple[LossSpec, ...], source: Source | None = None) -> tuple[CombinedLoss, list[str]]:
    """The combined loss and notes for the user; unsupported criteria or params raise :class:`SpecError`."""
    notes: list[str] = []
    if not losses:
        notes.append("the spec lists no losses: using cross_entropy")
        return CombinedLoss([LossTerm("cross_entropy", 1.0, nn.CrossEntropyLoss())]), notes
    problems: list[tuple[str, str]] = []
    terms: list[LossTerm] = []
    seen: dict[str, int] = {}
    for loss in losses:
        if loss.criterion not in SUPPORTED:
            problems.append(
                (
                    f"{loss.pointer}/criterion",
                    f"loss {loss.criterion!r} is not supported by npc train yet (supported: {', '.join(SUPPORTED)})",
                )
            )
            continue
        unknown = sorted(k for k, v in loss.params.items() if k not in SUPPORTED[loss.criterion] and v is not None)
        for key in unknown:
            problems.append((f"{loss.pointer}/{key}", f"{loss.criterion}: parameter {key!r} is not supported"))
        if unknown:
            continue
        smoothing = loss.params.get("label_smoothing") or 0.0
        if not 0.0 <= float(smoothing) <= 1.0:
            problems.append((f"{loss.pointer}/label_smoothing", f"must be in [0, 1], got {smoothing}"))
            continue
        seen[loss.criterion] = seen.get(loss.criterion, 0) + 1
        name = loss.criterion if seen[loss.criterion] == 1 else f"{loss.criterion}#{seen[loss.criterion]}"
        terms.append(LossTerm(name, loss.weight, nn.CrossEntropyLoss(label_smoothing=float(smoothing))))
    if problems:
        path = source.path if source else "<spec>"
        diagnostics = []
        for pointer, message in problems:
            line, col = (source.position(pointer) if source else None) or (None, None)
            diagnostics.append(Diagnostic(path, pointer, message, line, col, "semantic"))
        raise SpecError(diagnostics, 1)
    return CombinedLoss(terms), notes
