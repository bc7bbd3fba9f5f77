"""Schema fragments and check helpers shared by the model-zoo families (backbones, necks, heads, losses).

``_common.param`` builds one parameter; the helpers here add the shapes that recur across the NetsPresso
Trainer 1.4.1 families: positive integers, probabilities, per-block lists inside a stage object, and
"row" stages (a list of ``[kind, arg, ...]`` lists, as gelan and mobilenetv4 write them) whose item schema is
chosen by the row's first item so that a wrong row is reported at the offending position.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from .._registry import Issue
from ._common import ACTIVATIONS, param

__all__ = [
    "ACT_NAMES",
    "boolean",
    "choice",
    "divisible_issue",
    "equal_length_issues",
    "field",
    "integer",
    "number",
    "per_block",
    "positive",
    "probability",
    "resolved",
    "return_stage_idx_issues",
    "return_stage_idx_param",
    "row",
    "rows",
    "stage_object",
]

ACT_NAMES = list(ACTIVATIONS)


def _types(base: str, nullable: bool) -> str | list[str]:
    return [base, "null"] if nullable else base


def integer(
    default: int | None, description: str, *, minimum: int | None = 1, nullable: bool = False, **extra: Any
) -> dict[str, Any]:
    """An integer parameter (at least ``minimum`` unless that is None)."""
    if minimum is not None:
        extra["minimum"] = minimum
    return param(_types("integer", nullable or default is None), default, description, **extra)


def number(default: float | None, description: str, *, nullable: bool = False, **extra: Any) -> dict[str, Any]:
    """A real-valued parameter."""
    return param(_types("number", nullable or default is None), default, description, **extra)


def positive(default: float, description: str) -> dict[str, Any]:
    """A real-valued parameter that must be strictly greater than zero (multipliers, ratios)."""
    return number(default, description, exclusiveMinimum=0)


def probability(default: float, description: str) -> dict[str, Any]:
    """A probability or rate in [0, 1]."""
    return number(default, description, minimum=0, maximum=1)


def boolean(default: bool, description: str) -> dict[str, Any]:
    return param("boolean", default, description)


def choice(values: Sequence[Any], default: Any, description: str) -> dict[str, Any]:
    """A parameter restricted to ``values`` (all of one JSON type)."""
    kind = "string" if all(isinstance(v, str) for v in values) else "integer"
    return param(kind, default, description, enum=list(values))


def return_stage_idx_param() -> dict[str, Any]:
    return param(
        ["array", "null"],
        None,
        "Indices (0-based, increasing) of the stages whose outputs are passed on for segmentation, detection "
        "and pose estimation; null or empty means the last stage only. Classification ignores it.",
        items={"type": "integer", "minimum": 0},
    )


# --- stage_params shapes ------------------------------------------------------------------------------------


def stage_object(description: str, properties: dict[str, Any], required: Sequence[str] | None = None) -> dict:
    """Schema of one stage written as a mapping; every key is required unless ``required`` says otherwise."""
    return {
        "type": "object",
        "description": description,
        "properties": properties,
        "required": list(properties if required is None else required),
        "additionalProperties": False,
    }


def per_block(item: dict[str, Any], description: str) -> dict[str, Any]:
    """A stage key holding one value per block of the stage."""
    return {"type": "array", "minItems": 1, "items": item, "description": description}


def row(kind: str, *fields: tuple[str, dict[str, Any]]) -> tuple[str, tuple[tuple[str, dict[str, Any]], ...]]:
    """One row kind: its name and its positional fields after the kind, each ``(name, schema)``."""
    return kind, fields


def rows(description: str, *kinds: tuple[str, tuple[tuple[str, dict[str, Any]], ...]]) -> dict[str, Any]:
    """Schema of one stage written as a list of rows ``[kind, field, ...]``.

    The first item picks the row kind (an unknown kind is an ``enum`` error on that item); each kind then fixes
    how many fields follow and what each one is, so a wrong field is reported at its own index.
    """
    branches = []
    for kind, fields in kinds:
        layout = ", ".join([repr(kind), *(name for name, _ in fields)])
        branches.append(
            {
                "if": {"type": "array", "minItems": 1, "prefixItems": [{"const": kind}]},
                "then": {
                    "description": f"[{layout}]",
                    "prefixItems": [
                        {"const": kind},
                        *({**schema, "description": f"{name}: {schema['description']}"} for name, schema in fields),
                    ],
                    "minItems": len(fields) + 1,
                    "items": False,
                },
            }
        )
    layouts = "; ".join(branch["then"]["description"] for branch in branches)
    return {
        "type": "array",
        "minItems": 1,
        "description": f"{description} Row layouts: {layouts}.",
        "items": {
            "type": "array",
            "minItems": 1,
            "prefixItems": [{"enum": [kind for kind, _ in kinds], "description": "Block kind of this row."}],
            "allOf": branches,
        },
    }


def field(type_: str | list[str], description: str, **extra: Any) -> dict[str, Any]:
    """A positional row field or a stage key (no default: the peer requires it)."""
    return {"type": type_, "description": description, **extra}


# --- check() helpers ---------------------------------------------------------------------------------------


def resolved(component: Any, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """``params`` with defaults filled (idempotent, so check() works on raw or resolved params)."""
    return component.resolve_params(params)


def equal_length_issues(stage_index: int, stage: Mapping[str, Any], keys: Sequence[str]) -> Iterator[Issue]:
    """Every per-block list of a stage must describe the same number of blocks as the first one."""
    lists = [(key, stage[key]) for key in keys if isinstance(stage.get(key), list)]
    if not lists:
        return
    first_key, first = lists[0]
    for key, values in lists[1:]:
        if len(values) != len(first):
            yield Issue(
                f"/stage_params/{stage_index}/{key}",
                f"has {len(values)} entries but {first_key} has {len(first)}: "
                "every per-block list of a stage needs one entry per block",
            )


def return_stage_idx_issues(params: Mapping[str, Any], num_stages: int) -> Iterator[Issue]:
    """Indices must be in range and strictly increasing (features come out in stage order)."""
    indices = params.get("return_stage_idx") or []
    for position, index in enumerate(indices):
        pointer = f"/params/return_stage_idx/{position}"
        if not 0 <= index < num_stages:
            yield Issue(pointer, f"stage index {index} out of range: there are {num_stages} stages (0-based)")
        elif position > 0 and index <= indices[position - 1]:
            yield Issue(pointer, "return_stage_idx must be strictly increasing (features come out in stage order)")


def divisible_issue(pointer: str, value: int, divisor: int, what: str, by: str) -> Iterator[Issue]:
    if divisor and value % divisor:
        yield Issue(pointer, f"{what} ({value}) must be divisible by {by} ({divisor})")
