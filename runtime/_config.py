"""Run configuration: the model spec plus its ``training:`` and ``data:`` sections, validated and resolved.

Sources, lowest precedence first: built-in defaults, the ``training:``/``data:`` sections of the spec file, the
files given with ``--training`` / ``--data`` (each replaces the spec's section of the same name), then command-line
flags (``--epochs``, ``--batch-size``, ``--lr``, ``--seed``). Both sections are checked against the small JSON
Schemas below; problems come back as :class:`npc.spec.SpecError` with file, line, column and JSON pointer, like
spec problems. Never imports torch.
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from ..spec import (
    Diagnostic,
    LoadError,
    ModelSpec,
    Source,
    SpecError,
    load_file,
    normalise,
    resolve_expressions,
    validate,
)
from ._schema import DATA_SCHEMA, TRAINING_SCHEMA

__all__ = [
    "DATA_SCHEMA",
    "RUNTIME_SECTIONS",
    "TRAINING_SCHEMA",
    "RunConfig",
    "load_run_config",
    "resolve_data",
    "resolve_training",
]

# Top-level keys of a spec file that belong to the runtime, not to the model.
RUNTIME_SECTIONS = ("training", "data")

TRAINING_DEFAULTS: dict[str, Any] = {
    "epochs": 10,
    "batch_size": 64,
    "seed": 1,
    "num_workers": None,  # None: 0 for in-memory data, else min(4, CPU count)
    "optimizer": {"name": "adamw", "lr": 1e-3, "weight_decay": 0.01, "no_bias_decay": False},
    "scheduler": {"name": "cosine_no_sgdr", "warmup_epochs": 0, "warmup_bias_lr": 0.0, "min_lr": 0.0},
    "ema": None,
    "max_norm": None,
    "sync_bn": False,  # under torchrun on GPUs: BatchNorm statistics over the global batch (SyncBatchNorm)
}
OPTIMIZER_DEFAULTS: dict[str, dict[str, Any]] = {
    "adamw": {"lr": 1e-3, "betas": [0.9, 0.999], "weight_decay": 0.01, "eps": 1e-8, "no_bias_decay": False},
    "adam": {"lr": 1e-3, "betas": [0.9, 0.999], "weight_decay": 0.0, "eps": 1e-8, "no_bias_decay": False},
    "sgd": {"lr": 1e-2, "momentum": 0.9, "weight_decay": 1e-4, "nesterov": False, "no_bias_decay": False},
}
SCHEDULER_DEFAULTS: dict[str, dict[str, Any]] = {
    "cosine": {"warmup_epochs": 0, "warmup_bias_lr": 0.0, "min_lr": 0.0, "iters_per_phase": None},
    "cosine_no_sgdr": {"warmup_epochs": 0, "warmup_bias_lr": 0.0, "min_lr": 0.0, "end_epoch": None},
    "poly": {"warmup_epochs": 0, "warmup_bias_lr": 0.0, "min_lr": 0.0, "power": 1.0, "end_epoch": None},
    "step": {"iters_per_phase": 1, "gamma": 0.1, "end_epoch": None},
    "multi_step": {"milestones": [], "gamma": 0.1},
}
EMA_DEFAULTS: dict[str, dict[str, Any]] = {
    "constant_decay": {"decay": 0.9999},
    "exp_decay": {"decay": 0.9999, "beta": 2000},
}
DIGITS_DATA: dict[str, Any] = {"name": "digits", "format": "digits", "image_size": 32}
SHAPES_DATA: dict[str, Any] = {  # built-in segmentation/detection set, small enough to learn on CPU in a minute
    "name": "shapes",
    "format": "shapes",
    "image_size": 64,
    "num_train": 512,
    "num_valid": 128,
    "max_shapes": 3,
    "seed": 0,  # the generator's, not training.seed: the data stays fixed when the training seed changes
}
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


@dataclass(frozen=True)
class RunConfig:
    """Everything a run needs besides the data itself."""

    spec: ModelSpec
    spec_path: str
    spec_source: Source  # the model part of the spec file (runtime sections removed), with positions
    training: dict[str, Any]  # resolved: defaults filled, overrides applied
    data: dict[str, Any]  # resolved: format decided, defaults filled (digits when none was given)
    origins: dict[str, str] = field(default_factory=dict)  # section -> the file it came from ("defaults")

    def resolved_document(self) -> dict[str, Any]:
        """What ``resolved.yaml`` holds: a spec file ``npc train`` accepts again."""
        return {
            "model": copy.deepcopy(self.spec_source.data.get("model")),
            "training": copy.deepcopy(self.training),
            "data": copy.deepcopy(self.data),
        }


def load_run_config(
    spec_path: str | Path,
    *,
    training_path: str | Path | None = None,
    data_path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> RunConfig:
    """Load and validate the spec and its runtime sections; raises :class:`SpecError` listing every problem."""
    spec_source = _load(spec_path)
    document = spec_source.data if isinstance(spec_source.data, dict) else {}
    model_source = Source(
        {k: v for k, v in document.items() if k not in RUNTIME_SECTIONS}
        if isinstance(spec_source.data, dict)
        else spec_source.data,
        spec_source.path,
        spec_source.positions,
    )
    diagnostics = validate(model_source)

    sections: dict[str, tuple[Any, Source, str]] = {}
    for name in RUNTIME_SECTIONS:
        if name in document:
            sections[name] = (document[name], spec_source, f"/{name}")
    for name, path in (("training", training_path), ("data", data_path)):
        if path is None:
            continue
        source = _load(path)
        if not isinstance(source.data, dict) or name not in source.data:
            message = f"expected a top-level '{name}:' key (as in NetsPresso Trainer's {name} YAML)"
            diagnostics.append(Diagnostic(source.path, "", message))
            continue
        sections[name] = (source.data[name], source, f"/{name}")

    for name, (value, source, pointer) in sections.items():
        if value is not None:  # `training: ~` means "all defaults"
            diagnostics += _check(_validator(name), value, source, pointer)

    exit_code = max((2 if d.code in ("io", "syntax") else 1 for d in diagnostics), default=0)
    if exit_code:
        raise SpecError(sorted(diagnostics, key=lambda d: (d.file, d.line or 0, d.col or 0)), exit_code)

    spec = normalise(model_source.data, model_source.path)
    data_section = sections.get("data", (None,))[0]
    if isinstance(data_section, dict) and data_section.get("task") not in (None, spec.task):
        source, pointer = sections["data"][1], sections["data"][2] + "/task"
        line, col = source.position(pointer) or (None, None)
        message = f"the data is for {data_section['task']}, but model.task is {spec.task}"
        raise SpecError([Diagnostic(source.path, pointer, message, line, col, "semantic")], 1)
    training = resolve_training(sections.get("training", (None,))[0], overrides or {})
    data = resolve_data(data_section, task=spec.task)
    origins = {name: sections[name][1].path if name in sections else "defaults" for name in RUNTIME_SECTIONS}
    return RunConfig(spec, str(spec_path), model_source, training, data, origins)


def _load(path: str | Path) -> Source:
    try:
        source = load_file(path)
    except LoadError as exc:
        raise SpecError([exc.diagnostic()], 2) from None
    source, diagnostics = resolve_expressions(source)  # `vars` and "=..." formulas, as `npc validate` does
    if diagnostics:
        raise SpecError(diagnostics, 1)
    return source


# --- resolution ------------------------------------------------------------------------------------------------


def resolve_training(section: dict[str, Any] | None, overrides: dict[str, Any]) -> dict[str, Any]:
    """Defaults under the user's section, per-name defaults under optimizer/scheduler/ema, then CLI overrides."""
    section = section or {}
    out = copy.deepcopy(TRAINING_DEFAULTS)
    for key, value in section.items():
        if key not in ("optimizer", "scheduler", "ema"):
            out[key] = value
    optimizer = section.get("optimizer") or {}
    name = optimizer.get("name", "adamw")
    out["optimizer"] = {"name": name, **OPTIMIZER_DEFAULTS[name], **{k: v for k, v in optimizer.items() if k != "name"}}
    if "scheduler" in section and section["scheduler"] is None:
        out["scheduler"] = None
    else:
        scheduler = section.get("scheduler") or TRAINING_DEFAULTS["scheduler"]
        name = scheduler["name"]
        out["scheduler"] = {
            "name": name,
            **SCHEDULER_DEFAULTS[name],
            **{k: v for k, v in scheduler.items() if k != "name"},
        }
    ema = section.get("ema")
    if ema:
        out["ema"] = {"name": ema["name"], **EMA_DEFAULTS[ema["name"]], **{k: v for k, v in ema.items() if k != "name"}}
    for key in ("epochs", "batch_size", "seed"):
        if overrides.get(key) is not None:
            out[key] = overrides[key]
    if overrides.get("lr") is not None:
        out["optimizer"]["lr"] = overrides["lr"]
    return out


def resolve_data(section: dict[str, Any] | None, *, task: str = "classification") -> dict[str, Any]:
    """The data section with its format decided.

    No section (or no ``path``): the built-in set of the task (digits; shapes for segmentation and detection).
    With a ``path``: classification reads CSV labels (``local``) or class folders (``image_folder``); segmentation
    and detection read NetsPresso's local layout (PNG masks, YOLO txt).
    """
    builtin = DIGITS_DATA if task == "classification" else SHAPES_DATA
    if not section:
        return dict(builtin)
    out = copy.deepcopy(section)
    out.pop("task", None)
    if "format" not in out:
        path = out.get("path") or {}
        train = path.get("train") or {}
        if not path:
            out["format"] = builtin["format"]
        elif task != "classification":
            out["format"] = "local"
        else:
            out["format"] = "local" if train.get("label") else "image_folder"
    if out["format"] in ("digits", "shapes"):
        defaults = DIGITS_DATA if out["format"] == "digits" else SHAPES_DATA
        for key, value in defaults.items():
            out.setdefault(key, value)
    else:
        out.setdefault("image_size", 224)
        out.setdefault("mean", list(IMAGENET_MEAN))
        out.setdefault("std", list(IMAGENET_STD))
    return out


# --- validation ------------------------------------------------------------------------------------------------


@lru_cache(maxsize=2)
def _validator(name: str) -> Draft202012Validator:
    return Draft202012Validator({"training": TRAINING_SCHEMA, "data": DATA_SCHEMA}[name])


def _check(validator: Draft202012Validator, value: Any, source: Source, base: str) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    seen: set[tuple[str, str]] = set()
    for error in validator.iter_errors(value):
        for pointer, message in _explain(error, base):
            if (pointer, message) in seen:
                continue
            seen.add((pointer, message))
            line, col = source.position(pointer) or (None, None)
            out.append(Diagnostic(source.path, pointer, message, line, col, "schema"))
    return out


def _pointer(base: str, path: Any) -> str:
    pointer = base
    for token in path:
        pointer += "/" + str(token).replace("~", "~0").replace("/", "~1")
    return pointer


def _explain(error: ValidationError, base: str) -> Iterator[tuple[str, str]]:
    if error.validator in ("anyOf", "oneOf") and error.context:
        # the branch that got furthest explains best
        best = max(error.context, key=lambda e: len(e.absolute_path))
        if len(best.absolute_path) > len(error.absolute_path):
            yield from _explain(best, base)
            return
    pointer = _pointer(base, error.absolute_path)
    kind = error.validator
    if kind == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        for key in sorted(set(error.instance) - set(allowed)):
            yield _pointer(pointer, [key]), _unknown_key(key, allowed)
    elif kind == "enum":
        choices = error.validator_value
        message = f"{error.instance!r} is not allowed"
        hint = _closest(error.instance, [c for c in choices if isinstance(c, str)])
        if hint:
            message += f"; did you mean {hint!r}?"
        yield pointer, message + f" (allowed: {', '.join(map(str, choices))})"
    elif kind == "const":
        yield pointer, f"must be {error.validator_value!r}"
    elif kind == "type":
        expected = error.validator_value
        expected = [expected] if isinstance(expected, str) else expected
        got = "null" if error.instance is None else f"{_json_type(error.instance)} {error.instance!r}"
        yield pointer, f"expected {' or '.join(expected)}, got {got}"
    elif kind == "required":
        missing = re.findall(r"'([^']+)' is a required property", error.message)
        yield pointer, f"missing required key {missing[0]!r}" if missing else error.message
    elif kind in _BOUNDS:
        yield pointer, f"must be {_BOUNDS[kind]} {error.validator_value}, got {error.instance!r}"
    elif kind in ("minItems", "maxItems"):
        yield pointer, f"expected {'at least' if kind == 'minItems' else 'at most'} {error.validator_value} item(s)"
    elif kind == "anyOf":
        yield pointer, f"expected a list or a mapping of class names, got {_json_type(error.instance)}"
    else:
        yield pointer, error.message


_BOUNDS = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}


def _unknown_key(key: str, allowed: list[str]) -> str:
    message = f"unknown key {key!r}"
    hint = _closest(key, allowed)
    if hint:
        message += f"; did you mean {hint!r}?"
    return message + f" (allowed: {', '.join(allowed)})"


def _closest(word: Any, choices: list[str]) -> str | None:
    matches = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.6)
    return matches[0] if matches else None


def _json_type(value: Any) -> str:
    names = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}
    return "null" if value is None else names.get(type(value), type(value).__name__)
