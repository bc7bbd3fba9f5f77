"""Parameter-schema helpers and the fixed tables of activations and normalisations shared by all families.

The tables map the peer's ``act_type`` / ``norm_type`` names to trusted torch source: a spec value is checked
against the table's keys by the schema, then only the table's value reaches the emitted code.
"""

from __future__ import annotations

from typing import Any

from .._registry import Code

# NetsPresso Trainer's activation names (docs/models/layers/activations.md) → torch class.
ACTIVATIONS: dict[str, Code] = {
    "relu": Code("nn.ReLU"),
    "relu6": Code("nn.ReLU6"),
    "prelu": Code("nn.PReLU"),
    "leaky_relu": Code("nn.LeakyReLU"),
    "gelu": Code("nn.GELU"),
    "silu": Code("nn.SiLU"),
    "swish": Code("nn.SiLU"),
    "hard_swish": Code("nn.Hardswish"),
    "hard_sigmoid": Code("nn.Hardsigmoid"),
    "sigmoid": Code("nn.Sigmoid"),
    "tanh": Code("nn.Tanh"),
    "identity": Code("nn.Identity"),
}

# NetsPresso Trainer's normalisation names (docs/models/layers/normalizations.md) → torch class.
NORMALIZATIONS: dict[str, Code] = {
    "batch_norm": Code("nn.BatchNorm2d"),
    "instance_norm": Code("nn.InstanceNorm2d"),
    "layer_norm": Code("nn.LayerNorm"),
    "group_norm": Code("nn.GroupNorm"),
}


def param(type_: str | list[str], default: Any, description: str, **extra: Any) -> dict[str, Any]:
    """One parameter's JSON Schema fragment; every param documents its default and meaning."""
    return {"type": type_, "default": default, "description": description, **extra}


def act_param(default: str | None, description: str = "Activation function.") -> dict[str, Any]:
    types = ["string", "null"] if default is None else "string"
    enum = [*ACTIVATIONS, None] if default is None else list(ACTIVATIONS)
    return param(types, default, description, enum=enum)


def norm_param(default: str | None = "batch_norm", description: str = "Normalisation layer.") -> dict[str, Any]:
    types = ["string", "null"] if default is None else "string"
    enum = [*NORMALIZATIONS, None] if default is None else list(NORMALIZATIONS)
    return param(types, default, description, enum=enum)
