"""JSON Schemas of the runtime's two spec-file sections, ``training:`` and ``data:`` (draft 2020-12).

Plain data with no imports from npc, so ``schemas/`` can embed them in the model-spec schema (top-level
``training`` and ``data`` keys) without an import cycle, and editors can autocomplete them.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "DATA_FORMATS",
    "DATA_SCHEMA",
    "EMA_KINDS",
    "LABEL_IMAGE_MODES",
    "OPTIMIZERS",
    "SCHEDULERS",
    "TASKS",
    "TRAINING_SCHEMA",
]

OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULERS = ("cosine", "cosine_no_sgdr", "step", "poly", "multi_step")
EMA_KINDS = ("constant_decay", "exp_decay")
DATA_FORMATS = ("digits", "shapes", "local", "image_folder", "coco")
TASKS = ("classification", "segmentation", "detection")
LABEL_IMAGE_MODES = ("L", "P", "RGB")

_POSITIVE = {"type": "number", "exclusiveMinimum": 0}
_NON_NEGATIVE = {"type": "number", "minimum": 0}
_EPOCHS = {"type": "integer", "minimum": 0}
_OPTIONAL_EPOCH = {"type": ["integer", "null"], "minimum": 1}  # null: the default (the whole run)
_BETAS = {
    "type": "array",
    "items": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
    "minItems": 2,
    "maxItems": 2,
}

# Keys each optimizer accepts besides ``name`` (NetsPresso Trainer's names; all map onto torch.optim).
_OPTIMIZER_KEYS: dict[str, dict[str, Any]] = {
    "adamw": {"lr": _POSITIVE, "betas": _BETAS, "weight_decay": _NON_NEGATIVE, "eps": _POSITIVE},
    "adam": {"lr": _POSITIVE, "betas": _BETAS, "weight_decay": _NON_NEGATIVE, "eps": _POSITIVE},
    "sgd": {
        "lr": _POSITIVE,
        "momentum": _NON_NEGATIVE,
        "weight_decay": _NON_NEGATIVE,
        "nesterov": {"type": "boolean"},
    },
}
_WARMUP = {"warmup_epochs": _EPOCHS, "warmup_bias_lr": _NON_NEGATIVE}
_SCHEDULER_KEYS: dict[str, dict[str, Any]] = {
    "cosine": {**_WARMUP, "min_lr": _NON_NEGATIVE, "iters_per_phase": _OPTIONAL_EPOCH},
    "cosine_no_sgdr": {**_WARMUP, "min_lr": _NON_NEGATIVE, "end_epoch": _OPTIONAL_EPOCH},
    "poly": {
        **_WARMUP,
        "min_lr": _NON_NEGATIVE,
        "power": _POSITIVE,
        "end_epoch": _OPTIONAL_EPOCH,
    },
    "step": {
        "iters_per_phase": {"type": "integer", "minimum": 1},
        "gamma": _POSITIVE,
        "end_epoch": _OPTIONAL_EPOCH,
    },
    "multi_step": {
        "milestones": {"type": "array", "items": {"type": "integer", "minimum": 1}},
        "gamma": _POSITIVE,
    },
}
_EMA_KEYS: dict[str, dict[str, Any]] = {
    "constant_decay": {"decay": {"type": "number", "minimum": 0, "maximum": 1}},
    "exp_decay": {"decay": {"type": "number", "minimum": 0, "maximum": 1}, "beta": _POSITIVE},
}


def _doc(schema: dict[str, Any], text: str) -> dict[str, Any]:
    return {**schema, "description": text}


def _named(
    names: tuple[str, ...], keys: dict[str, dict[str, Any]], *, nullable: bool, common: dict[str, Any] | None = None
) -> dict[str, Any]:
    """An object with a ``name`` from ``names``; each name allows its own keys plus ``common`` (others are errors)."""
    common = common or {}
    all_keys = {"name": {"enum": list(names)}, **common}
    for per_name in keys.values():
        all_keys.update(per_name)
    branches = [
        {
            "if": {"properties": {"name": {"const": name}}, "required": ["name"]},
            "then": {"properties": {"name": {}, **common, **keys[name]}, "additionalProperties": False},
        }
        for name in names
    ]
    return {
        "type": ["object", "null"] if nullable else "object",
        "required": ["name"],
        "properties": all_keys,
        "allOf": branches,
    }


TRAINING_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "npc training section",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "epochs": _doc({"type": "integer", "minimum": 1}, "number of epochs (default 10)"),
        "batch_size": _doc({"type": "integer", "minimum": 1}, "samples per step (default 64)"),
        "seed": _doc({"type": "integer", "minimum": 0}, "seeds python, numpy, torch and the shuffling (default 1)"),
        "num_workers": _doc(
            {"type": ["integer", "null"], "minimum": 0}, "DataLoader workers; null: 0 in memory, else min(4, CPUs)"
        ),
        "optimizer": _doc(
            _named(OPTIMIZERS, _OPTIMIZER_KEYS, nullable=False, common={"no_bias_decay": {"type": "boolean"}}),
            "torch optimizer by NetsPresso name; no_bias_decay: no weight decay on 1-D parameters",
        ),
        "scheduler": _doc(
            _named(SCHEDULERS, _SCHEDULER_KEYS, nullable=True), "per-epoch learning-rate schedule; null: constant"
        ),
        "ema": _doc(_named(EMA_KINDS, _EMA_KEYS, nullable=True), "exponential moving average of the weights"),
        "max_norm": _doc({"type": ["number", "null"], "exclusiveMinimum": 0}, "gradient clipping by global norm"),
        "sync_bn": _doc(
            {"type": "boolean"},
            "torchrun on GPUs: BatchNorm statistics over the global batch (SyncBatchNorm); default false",
        ),
    },
}

_SPLIT = {
    "type": ["object", "null"],
    "additionalProperties": False,
    "properties": {"image": {"type": ["string", "null"]}, "label": {"type": ["string", "null"]}},
}
DATA_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "npc data section",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "name": {"type": ["string", "null"]},
        "task": _doc({"enum": list(TASKS)}, "optional; must be the spec's model.task"),
        "format": _doc(
            {"enum": list(DATA_FORMATS)},
            "digits / shapes (built in), local (NetsPresso layout: CSV, PNG masks or YOLO txt by task), "
            "image_folder (class folders), coco (detection: one COCO JSON per split)",
        ),
        "path": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "root": {"type": ["string", "null"]},
                "train": _SPLIT,
                "valid": _SPLIT,
                "test": _SPLIT,
            },
        },
        "id_mapping": {
            "anyOf": [
                {"type": "null"},
                {"type": "array", "items": {"type": ["string", "integer"]}, "minItems": 1},
                {"type": "object", "additionalProperties": {"type": ["string", "integer"]}, "minProperties": 1},
            ]
        },
        "label_image_mode": _doc(
            {"enum": list(LABEL_IMAGE_MODES)},
            "segmentation masks: L (grey values are class ids, default), P or RGB (colours mapped by id_mapping)",
        ),
        "num_train": _doc({"type": "integer", "minimum": 1}, "shapes: generated train images (default 512)"),
        "num_valid": _doc({"type": "integer", "minimum": 1}, "shapes: generated valid/test images (default 128)"),
        "max_shapes": _doc({"type": "integer", "minimum": 1, "maximum": 8}, "shapes: objects per image, 1..N"),
        "seed": _doc({"type": "integer", "minimum": 0}, "shapes: generator seed (default 0; not training.seed)"),
        "num_classes": _doc({"type": "integer", "minimum": 1}, "optional; must match the classes found"),
        "image_size": _doc({"type": "integer", "minimum": 8, "maximum": 4096}, "square input side (default 224)"),
        "mean": {"type": "array", "items": {"type": "number"}, "minItems": 3, "maxItems": 3},
        "std": {"type": "array", "items": _POSITIVE, "minItems": 3, "maxItems": 3},
    },
}
