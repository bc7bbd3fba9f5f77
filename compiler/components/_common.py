"""Parameter-schema helpers and the fixed tables of activations and normalisations shared by all families.

The tables map the peer's ``act_type`` / ``norm_type`` names to trusted torch source: a spec value is checked
against the table's keys by the schema, then only the table's value reaches the emitted code. They hold exactly
the names NetsPresso Trainer 1.4.1 registers (``models/op/registry.py``), so a spec the peer rejects is rejected
here too.
"""

from __future__ import annotations

from typing import Any

from .._registry import Code

# NetsPresso Trainer's ACTIVATION_REGISTRY (docs/models/layers/activations.md) → torch class, built with no args.
ACTIVATIONS: dict[str, Code] = {
    "relu": Code("nn.ReLU"),
    "relu6": Code("nn.ReLU6"),
    "prelu": Code("nn.PReLU"),  # one learnable slope: a `weight` of shape (1,) in the state dict
    "leaky_relu": Code("nn.LeakyReLU"),
    "gelu": Code("nn.GELU"),
    "silu": Code("nn.SiLU"),
    "swish": Code("nn.SiLU"),  # the peer's alias of silu
    "hard_swish": Code("nn.Hardswish"),
}

# NetsPresso Trainer's NORM_REGISTRY (docs/models/layers/normalizations.md) → torch class, built as
# ``cls(num_features)``. InstanceNorm2d is then affine-free and tracks no statistics: it adds no state_dict keys.
NORMALIZATIONS: dict[str, Code] = {
    "batch_norm": Code("nn.BatchNorm2d"),
    "instance_norm": Code("nn.InstanceNorm2d"),
}


def param(type_: str | list[str], default: Any, description: str, **extra: Any) -> dict[str, Any]:
    """One parameter's JSON Schema fragment; every param documents its default and meaning."""
    return {"type": type_, "default": default, "description": description, **extra}


def act_param(
    default: str | None, description: str = "Activation function.", *, nullable: bool = False
) -> dict[str, Any]:
    """An ``act_type``-like param; null is allowed when the default is null or ``nullable`` is set."""
    return _choice(ACTIVATIONS, default, description, nullable)


def norm_param(
    default: str | None = "batch_norm", description: str = "Normalisation layer.", *, nullable: bool = False
) -> dict[str, Any]:
    """A ``norm_type``-like param; null is allowed when the default is null or ``nullable`` is set."""
    return _choice(NORMALIZATIONS, default, description, nullable)


def _choice(table: dict[str, Code], default: str | None, description: str, nullable: bool) -> dict[str, Any]:
    if default is None or nullable:
        return param(["string", "null"], default, description, enum=[*table, None])
    return param("string", default, description, enum=list(table))
