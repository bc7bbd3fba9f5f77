"""Mixed precision for ``npc train``: ``training.mixed_precision`` → an autocast context for the forward pass and a
``torch.amp.GradScaler`` for the backward pass.

``true`` means float16 on CUDA (with loss scaling: float16 gradients underflow without it) and bfloat16 on CPU,
whose autocast has no float16; ``"float16"`` / ``"bfloat16"`` name the dtype. bfloat16 has float32's range, so it
needs no scaler. The model's outputs are cast back to float32 before the loss, so every loss runs in float32 as it
was written and tested; evaluation runs in float32. The scaler's state is part of ``training_state.pt``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import UNUSABLE, RunError

__all__ = ["Precision", "build_precision"]


@dataclass
class Precision:
    dtype: torch.dtype | None  # None: float32 throughout
    device_type: str
    scaler: torch.amp.GradScaler

    @property
    def note(self) -> str | None:
        if self.dtype is None:
            return None
        scaled = ", gradients scaled" if self.scaler.is_enabled() else ""
        return f"mixed precision: {str(self.dtype).removeprefix('torch.')} autocast on {self.device_type}{scaled}"

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)


def build_precision(setting: bool | str | None, device: torch.device) -> Precision:
    dtype = _dtype(setting, device)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype is torch.float16)
    return Precision(dtype, device.type, scaler)


def _dtype(setting: bool | str | None, device: torch.device) -> torch.dtype | None:
    if not setting:
        return None
    if setting is True:
        return torch.float16 if device.type == "cuda" else torch.bfloat16
    if setting == "float16" and device.type != "cuda":
        raise RunError(
            f"training.mixed_precision: float16 needs a CUDA device (training on {device.type}); use bfloat16 or true",
            UNUSABLE,
        )
    return {"float16": torch.float16, "bfloat16": torch.bfloat16}[setting]


def to_float32(out: Any) -> Any:
    """The model's outputs with every floating tensor in float32 (dicts, lists and tuples kept as they are)."""
    if isinstance(out, torch.Tensor):
        return out.float() if out.is_floating_point() else out
    if isinstance(out, dict):
        return {key: to_float32(value) for key, value in out.items()}
    if isinstance(out, (list, tuple)):
        return type(out)(to_float32(value) for value in out)
    return out
