"""Run configuration: the model spec plus its ``training:`` and ``data:`` sections, validated and resolved.

Sources, lowest precedence first: built-in defaults, the ``training:``/``data:``/``augmentation:``/``environment:``/
``logging:`` sections of the spec file, the files given with ``--training`` / ``--data`` / ``--augmentation`` /
``--environment`` / ``--logging`` (each replaces the spec's section of the same name: NetsPresso Trainer's six-file
form), then command-line flags (``--epochs``, ``--batch-size``, ``--lr``, ``--seed``). ``environment``'s seed,
num_workers and batch_size go into the training section (NetsPresso keeps them there). The sections are checked
against the small JSON Schemas in ``_schema``; every problem of every file comes back at once as one
:class:`npc.spec.SpecError` with file, line, column and JSON pointer, like spec problems. Never imports torch.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from ..errors import INVALID, UNUSABLE
from ..schemas.run import (
    AUGMENTATION_SCHEMA,
    DATA_SCHEMA,
    ENVIRONMENT_SCHEMA,
    EVALUATION_KEY,
    HUGGINGFACE_TASKS,
    LOGGING_SCHEMA,
    TASKS,
    TRAINING_SCHEMA,
)
from . import (
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
from ._explain import explain
from ._validate import StrictValidator

__all__ = [
    "DATA_SCHEMA",
    "RUNTIME_SECTIONS",
    "TRAINING_SCHEMA",
    "RunConfig",
    "load_run_config",
    "resolve_environment",
    "resolve_logging",
    "resolve_augmentation",
    "resolve_data",
    "resolve_training",
]

# Top-level keys of a spec file that belong to the runtime, not to the model.
RUNTIME_SECTIONS = ("training", "data", "augmentation", "environment", "logging")

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
    "mixed_precision": False,  # true: float16 autocast + GradScaler on CUDA (bfloat16 on CPU); or name the dtype
    "channels_last": False,  # the model in NHWC memory format (a speed option: docs/benchmarks.md)
    "fused_optimizer": True,  # torch's fused optimizer step where it has one, not its per-tensor loop
    "checkpoint_every": None,  # {steps: N, minutes: M}: mid-epoch training states too; None: at epoch ends only
    "on_nonfinite": "stop",  # a NaN/inf loss stops the run; "skip" leaves the step out (counted)
    "max_consecutive_nonfinite": 10,  # under "skip": this many non-finite steps in a row stop the run anyway
}
_GROUPS = {"no_bias_decay": False, "no_norm_weight_decay": False, "overwrite": None}  # one group, all decayed
# NetsPresso requires every key; these are the examples of its optimizer documentation (torch's defaults).
OPTIMIZER_DEFAULTS: dict[str, dict[str, Any]] = {
    "adamw": {"lr": 1e-3, "betas": [0.9, 0.999], "weight_decay": 0.01, "eps": 1e-8, **_GROUPS},
    "adam": {"lr": 1e-3, "betas": [0.9, 0.999], "weight_decay": 0.0, "eps": 1e-8, **_GROUPS},
    "adadelta": {"lr": 1.0, "rho": 0.9, "weight_decay": 0.0, **_GROUPS},
    "adagrad": {"lr": 1e-2, "lr_decay": 0.0, "weight_decay": 0.0, **_GROUPS},
    "rmsprop": {"lr": 1e-2, "alpha": 0.99, "momentum": 0.0, "weight_decay": 0.0, "eps": 1e-8, **_GROUPS},
    "adamax": {"lr": 2e-3, "betas": [0.9, 0.999], "weight_decay": 0.0, **_GROUPS},
    "sgd": {"lr": 1e-2, "momentum": 0.9, "weight_decay": 1e-4, "nesterov": False, **_GROUPS},
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
POSE_DATA: dict[str, Any] = {  # built-in pose set; the input size comes from the rtmcc head (see pose_input_size)
    "name": "stick_figures",
    "format": "stick_figures",
    "num_train": 512,
    "num_valid": 128,
    "seed": 0,  # the generator's, not training.seed
}
ENVIRONMENT_DEFAULTS: dict[str, Any] = {"gpus": None, "cache_data": False}  # None: npc picks the device
LOGGING_DEFAULTS: dict[str, Any] = {  # npc's own behaviour; NetsPresso's logging.yaml states its own values
    "project_id": None,
    "output_dir": "runs",
    "tensorboard": True,
    "mlflow": False,
    "stdout": True,
    "num_save_samples": None,
    "model_save_options": {
        "save_optimizer_state": True,
        "save_best_only": True,  # best.safetensors and last.safetensors only; false adds epoch_N.safetensors
        "best_model_criterion": "loss",  # NetsPresso's default: the lowest validation loss
        "sample_input_size": None,
        "onnx_export_opset": None,
        "validation_epoch": 1,
        "save_checkpoint_epoch": None,  # None: validation_epoch
    },
    "metrics": {"classwise_analysis": False, "metric_names": None},
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
    augmentation: dict[str, Any] | None = None  # resolved ``train``/``inference`` lists; None: no augmentation
    environment: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(ENVIRONMENT_DEFAULTS))
    logging: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(LOGGING_DEFAULTS))

    def resolved_document(self) -> dict[str, Any]:
        """What ``resolved.yaml`` holds: a spec file ``npc train`` accepts again."""
        model = self.spec_source.data.get("model")
        if self.spec.late is not None:  # values that read inferred ones, as the compiler resolved them (vars are gone)
            from ..compiler import compile_graph

            compile_graph(self.spec)
            model = self.spec.late.document().get("model")
        document = {
            "model": copy.deepcopy(model),
            "training": copy.deepcopy(self.training),
            "data": {
                k: copy.deepcopy(v) for k, v in self.data.items() if k != EVALUATION_KEY
            },  # read from augmentation
        }
        if self.augmentation is not None:
            document["augmentation"] = copy.deepcopy(self.augmentation)
        document["environment"] = copy.deepcopy(self.environment)
        document["logging"] = copy.deepcopy(self.logging)
        return document


def load_run_config(
    spec_path: str | Path,
    *,
    training_path: str | Path | None = None,
    data_path: str | Path | None = None,
    augmentation_path: str | Path | None = None,
    environment_path: str | Path | None = None,
    logging_path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> RunConfig:
    """Load and validate the spec and its runtime sections; raises :class:`SpecError` listing every problem of
    every file (schema problems first found per section, then what only the resolved values show)."""
    diagnostics: list[Diagnostic] = []
    spec_source = _load_collecting(spec_path, diagnostics)
    paths = {
        "training": training_path,
        "data": data_path,
        "augmentation": augmentation_path,
        "environment": environment_path,
        "logging": logging_path,
    }
    files = {name: _load_collecting(path, diagnostics) for name, path in paths.items() if path is not None}
    model_source = _model_source(spec_source) if spec_source is not None else None
    if model_source is not None:
        diagnostics += validate(model_source)
    sections = _sections(spec_source, files, diagnostics)
    invalid = set()
    for name, (value, source, pointer) in sections.items():
        if value is not None:  # `training: ~` means "all defaults"
            found = _check(_validator(name), value, source, pointer)
            diagnostics += found
            invalid |= {name} if found else set()
    model_ok = model_source is not None and not diagnostics_in(diagnostics, model_source.path)
    spec = normalise(model_source.data, model_source.path, model_source.late) if model_ok else None
    resolved = _resolve_sections(sections, invalid, spec, model_source, overrides or {}, diagnostics)
    if diagnostics:
        unusable = any(d.code in ("io", "syntax") for d in diagnostics)
        raise SpecError(_ordered(diagnostics, str(spec_path)), UNUSABLE if unusable else INVALID)
    training, data, augmentation, environment, logging = resolved
    origins = {name: sections[name][1].path if name in sections else "defaults" for name in ("training", "data")}
    for name in ("augmentation", "environment", "logging"):  # no augmentation section is no augmentation
        if name in sections:
            origins[name] = sections[name][1].path
    return RunConfig(spec, str(spec_path), model_source, training, data, origins, augmentation, environment, logging)


def diagnostics_in(diagnostics: list[Diagnostic], path: str) -> bool:
    return any(d.file == path for d in diagnostics)


def _ordered(diagnostics: list[Diagnostic], spec_path: str) -> list[Diagnostic]:
    """The model file first, then the others by name; within a file by position."""
    return sorted(diagnostics, key=lambda d: (d.file != spec_path, d.file, d.line or 0, d.col or 0))


def _load_collecting(path: str | Path, diagnostics: list[Diagnostic]) -> Source | None:
    """:func:`_load`, its problems added to ``diagnostics`` (None then) so the other files are still checked."""
    try:
        return _load(path)
    except SpecError as exc:
        diagnostics += exc.diagnostics
        return None


def _model_source(spec_source: Source) -> Source:
    """The spec file without its runtime sections, as ``npc validate`` sees a model file."""
    document = spec_source.data
    return Source(
        {k: v for k, v in document.items() if k not in RUNTIME_SECTIONS} if isinstance(document, dict) else document,
        spec_source.path,
        spec_source.positions,
        late=spec_source.late,  # values reading inferred ones (`=backbone.channels[-1]`): the compiler resolves them
    )


def _sections(
    spec_source: Source | None, files: dict[str, Source | None], diagnostics: list[Diagnostic]
) -> dict[str, tuple[Any, Source, str]]:
    """Each runtime section with the file and pointer it came from; a ``--<name>`` file replaces the spec's."""
    sections: dict[str, tuple[Any, Source, str]] = {}
    document = spec_source.data if spec_source is not None and isinstance(spec_source.data, dict) else {}
    for name in RUNTIME_SECTIONS:
        if name in document:
            sections[name] = (document[name], spec_source, f"/{name}")
    for name, source in files.items():
        if source is None:
            continue
        if not isinstance(source.data, dict) or name not in source.data:
            message = f"expected a top-level '{name}:' key (as in NetsPresso Trainer's {name} YAML)"
            diagnostics.append(Diagnostic(source.path, "", message))
            continue
        sections[name] = (source.data[name], source, f"/{name}")
    return sections


def _located(found: tuple[Any, Source, str], problems: list[Problem]) -> list[Diagnostic]:
    """Problems (pointer below the section, message) as diagnostics in the section's file."""
    _, source, base = found
    out = []
    for pointer, message in problems:
        line, col = source.position(base + pointer) or (None, None)
        out.append(Diagnostic(source.path, base + pointer, message, line, col, "semantic"))
    return out


def _resolve_sections(
    sections: dict[str, tuple[Any, Source, str]],
    invalid: set[str],
    spec: ModelSpec | None,
    model_source: Source | None,
    overrides: dict[str, Any],
    diagnostics: list[Diagnostic],
) -> tuple[Any, ...]:
    """Resolve every section whose schema check passed, adding what only resolved values show to ``diagnostics``."""

    def value(name: str) -> Any:
        return sections[name][0] if name in sections and name not in invalid else None

    environment = resolve_environment(value("environment"))
    logging, problems = resolve_logging(value("logging"))
    diagnostics += _located(sections["logging"], problems) if problems else []
    if "environment" in sections and "environment" not in invalid:
        diagnostics += _located(sections["environment"], _gpu_problems(value("environment")))
    training = resolve_training(value("training"), overrides, environment=value("environment"))
    if "training" in sections and "training" not in invalid:
        diagnostics += _located(sections["training"], _schedule_problems(training))
    task = spec.task if spec is not None else _raw_task(model_source)
    if task is None or "data" in invalid:
        return training, None, None, environment, logging
    data_section = value("data")
    if isinstance(data_section, dict) and data_section.get("task") not in (None, task):
        problem = ("/task", f"the data is for {data_section['task']}, but model.task is {task}")
        diagnostics += _located(sections["data"], [problem])
        return training, None, None, environment, logging
    augmentation_section = value("augmentation") if "augmentation" not in invalid else None
    if "data" in sections:
        diagnostics += _located(sections["data"], huggingface_problems(data_section, task))
    data = resolve_data(data_section, task=task, augmentation=augmentation_section)
    if task == "pose_estimation" and spec is not None:
        diagnostics += _pose_input_size_problems(data, spec, sections.get("data"))
        data.setdefault("input_size", pose_input_size(spec))
    augmentation, problems = None, []
    if augmentation_section is not None and (task != "pose_estimation" or "input_size" in data):
        augmentation, problems = resolve_augmentation(augmentation_section, data, task=task)
    diagnostics += _located(sections["augmentation"], problems) if problems else []
    return training, data, augmentation, environment, logging


def _raw_task(model_source: Source | None) -> str | None:
    """model.task as written, when the model section has other problems (the runtime sections are still checked)."""
    document = model_source.data if model_source is not None and isinstance(model_source.data, dict) else {}
    model = document.get("model")
    task = model.get("task") if isinstance(model, dict) else None
    return task if task in TASKS else None


def _load(path: str | Path) -> Source:
    try:
        source = load_file(path)
    except LoadError as exc:
        raise SpecError([exc.diagnostic()], UNUSABLE) from None
    source, diagnostics = resolve_expressions(source)  # `vars` and "=..." formulas, as `npc validate` does
    if diagnostics:
        raise SpecError(diagnostics, INVALID)
    return source


# --- resolution ------------------------------------------------------------------------------------------------


ENVIRONMENT_TRAINING_KEYS = ("seed", "num_workers", "batch_size")  # NetsPresso keeps them in environment.yaml


def resolve_training(
    section: dict[str, Any] | None, overrides: dict[str, Any], *, environment: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Defaults under the user's section, per-name defaults under optimizer/scheduler/ema, the environment
    section's seed/num_workers/batch_size, then CLI overrides."""
    section = section or {}
    out = copy.deepcopy(TRAINING_DEFAULTS)
    for key, value in section.items():
        if key not in ("optimizer", "scheduler", "ema"):
            out[key] = value
    for key in ENVIRONMENT_TRAINING_KEYS:
        if key in (environment or {}):
            out[key] = environment[key]
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


def resolve_data(
    section: dict[str, Any] | None, *, task: str = "classification", augmentation: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The data section with its format decided.

    No section (or no ``path``): the built-in set of the task (digits; shapes for segmentation and detection).
    With a ``path``: classification reads CSV labels (``local``) or class folders (``image_folder``); segmentation
    and detection read NetsPresso's local layout (PNG masks, YOLO txt). Without an ``image_size`` the input size is
    the augmentation's final size, as NetsPresso Trainer takes it (it never reads ``data.image_size``).
    """
    builtin = {"classification": DIGITS_DATA, "pose_estimation": POSE_DATA}.get(task, SHAPES_DATA)
    out = copy.deepcopy(section) if section else {}
    side = augmentation_size(augmentation) if task != "pose_estimation" else None
    if side is not None and "image_size" not in out:
        out["image_size"] = side
    plan = evaluation_plan(augmentation) if task == "classification" else None
    if plan is not None:
        out[EVALUATION_KEY] = plan
    if not section:
        return {**builtin, **out}
    out.pop("task", None)
    if "format" not in out and out.get("metadata") is not None:  # only NetsPresso's Hugging Face form has metadata
        out["format"] = "huggingface"
    if out.get("format") == "huggingface" and "id_mapping" in (out.get("metadata") or {}):
        moved = out["metadata"].pop("id_mapping")  # where the peer's segmentation template writes it
        out.setdefault("id_mapping", moved)
    if "format" not in out:
        path = out.get("path") or {}
        train = path.get("train") or {}
        if not path:
            out["format"] = builtin["format"]
        elif task != "classification":
            out["format"] = "local"
        else:
            out["format"] = "local" if train.get("label") else "image_folder"
    if out["format"] in ("digits", "shapes", "stick_figures"):
        defaults = {"digits": DIGITS_DATA, "shapes": SHAPES_DATA, "stick_figures": POSE_DATA}[out["format"]]
        for key, value in defaults.items():
            out.setdefault(key, value)
    else:
        out.setdefault("image_size", 224)
        out.setdefault("mean", list(IMAGENET_MEAN))
        out.setdefault("std", list(IMAGENET_STD))
    return out


def huggingface_problems(section: dict[str, Any] | None, task: str) -> list[Problem]:
    """What ``format: huggingface`` cannot do, located in the data section: other tasks than NetsPresso's two,
    a missing ``metadata``, the local layout's ``path``; and ``metadata`` under another format."""
    if not isinstance(section, dict):
        return []
    metadata, kind = section.get("metadata"), section.get("format")
    if kind != "huggingface":
        if metadata is not None and kind is not None:
            return [("/metadata", f"is read with format: huggingface only (this data's format is {kind})")]
        if metadata is None:
            return []
    problems: list[Problem] = []
    where = "/format" if kind is not None else "/metadata"
    if task not in HUGGINGFACE_TASKS:
        problems.append(
            (
                where,
                f"huggingface datasets are read for {' and '.join(HUGGINGFACE_TASKS)} (as NetsPresso Trainer reads "
                f"them); not for {task}: use format local" + (" or coco" if task == "detection" else ""),
            )
        )
    if metadata is None:
        problems.append((where, "format huggingface needs metadata: {repo, subset, features: {image, label}}"))
    path = section.get("path") or {}
    if any(value not in (None, {}) and value != {"image": None, "label": None} for value in path.values()):
        problems.append(("/path", "is for the local layouts; format huggingface reads metadata.repo (leave path out)"))
    if metadata and "id_mapping" in metadata and section.get("id_mapping") is not None:
        problems.append(("/metadata/id_mapping", "id_mapping is given twice: keep data.id_mapping only"))
    if task == "segmentation" and section.get("id_mapping") is None and (metadata or {}).get("id_mapping") is None:
        problems.append((where, "segmentation needs id_mapping (class names by mask value), as NetsPresso's"))
    return problems


def augmentation_size(section: dict[str, Any] | None) -> int | None:
    """The square side an augmentation section ends at: ``img_size``, else the last sized training transform's
    (an integer ``resize``/``pad``/crop size is square); None when it names no size or ends off-square."""
    if not isinstance(section, dict):
        return None
    if isinstance(section.get("img_size"), int):
        return section["img_size"]
    for transform in reversed(section.get("train") or []):
        size = transform.get("base_size", transform.get("size")) if isinstance(transform, dict) else None
        if transform.get("name") not in (*SIZED_TRANSFORMS, "randomresize") or size is None:
            continue
        sides = [size] if isinstance(size, int) else list(size)
        return sides[0] if len(set(sides)) == 1 and isinstance(sides[0], int) else None
    return None


def evaluation_plan(section: dict[str, Any] | None) -> dict[str, list[int]] | None:
    """NetsPresso's classification evaluation at its own size: an ``inference`` list that resizes to [height, width]
    and/or centre-crops to a size, as ``{"resize": [h, w], "crop": [h, w]}``; None for any other list (its
    problems are :func:`resolve_augmentation`'s to report)."""
    if not isinstance(section, dict) or not isinstance(section.get("inference"), list):
        return None
    sized = [t for t in section["inference"] if isinstance(t, dict) and t.get("name") not in ("totensor", "normalize")]
    names = [t.get("name") for t in sized]
    if names not in (["resize"], ["centercrop"], ["resize", "centercrop"]):
        return None
    plan = {}
    for transform in sized:
        size = transform.get("size")
        if transform["name"] == "resize" and (not isinstance(size, list) or transform.get("resize_criteria")):
            return None  # an integer resize keeps each image's aspect: no fixed evaluation size
        if isinstance(size, int) or (isinstance(size, list) and len(size) in (1, 2)):
            sides = [size, size] if isinstance(size, int) else [size[0], size[-1]]
            if all(isinstance(side, int) and side > 0 for side in sides):
                plan["resize" if transform["name"] == "resize" else "crop"] = sides
                continue
        return None
    return plan


def resolve_environment(section: dict[str, Any] | None) -> dict[str, Any]:
    """The environment section with defaults filled (``gpus`` as written: :func:`gpu_list` reads it)."""
    return {**copy.deepcopy(ENVIRONMENT_DEFAULTS), **copy.deepcopy(section or {})}


def gpu_list(gpus: Any) -> list[int] | None:
    """NetsPresso's ``gpus``: an index or ``"0, 1, 2"``; None when unset or not a list of indices."""
    if gpus is None or isinstance(gpus, bool):
        return None
    if isinstance(gpus, int):
        return [gpus]
    parts = [part.strip() for part in str(gpus).split(",")]
    return [int(part) for part in parts] if all(part.isdigit() for part in parts) else None


def _gpu_problems(section: dict[str, Any] | None) -> list[Problem]:
    gpus = (section or {}).get("gpus")
    if isinstance(gpus, str) and gpu_list(gpus) is None:
        return [("/gpus", f"{gpus!r} is not a GPU index or a comma-separated list of them (e.g. '0, 1')")]
    return []


def resolve_logging(section: dict[str, Any] | None) -> tuple[dict[str, Any], list[Problem]]:
    """The logging section over npc's defaults, and what npc cannot do as asked (each a located refusal)."""
    section = section or {}
    out = copy.deepcopy(LOGGING_DEFAULTS)
    for key, value in section.items():
        if isinstance(value, dict):
            out[key] = {**out[key], **copy.deepcopy(value)}
        else:
            out[key] = copy.deepcopy(value)
    options = out["model_save_options"]
    if options["save_checkpoint_epoch"] is None:
        options["save_checkpoint_epoch"] = options["validation_epoch"]
    problems: list[Problem] = []
    if options["save_checkpoint_epoch"] % options["validation_epoch"]:
        problems.append(
            (
                "/model_save_options/save_checkpoint_epoch",
                f"is {options['save_checkpoint_epoch']}: must be a multiple of validation_epoch "
                f"({options['validation_epoch']}), as NetsPresso Trainer requires (checkpoints are saved on "
                "validated epochs)",
            )
        )
    if out["metrics"]["classwise_analysis"]:
        problems.append(("/metrics/classwise_analysis", "true is not supported yet by npc: set it to false"))
    if out["metrics"]["metric_names"]:
        problems.append(
            ("/metrics/metric_names", "choosing metrics is not supported yet by npc: use ~ (the task's defaults)")
        )
    return out, problems


def _schedule_problems(training: dict[str, Any]) -> list[Problem]:
    """Schedules NetsPresso's scheduler classes would divide by zero on."""
    scheduler = training.get("scheduler") or {}
    if scheduler.get("name") == "poly" and (scheduler.get("end_epoch") or training["epochs"]) == (
        scheduler.get("warmup_epochs") or 0
    ):
        return [("/scheduler/end_epoch", "poly needs end_epoch > warmup_epochs: it decays over the epochs between")]
    return []


def pose_input_size(spec: ModelSpec) -> list[int]:
    """(height, width) of a pose model's input: the rtmcc head's ``target_size`` (its compiled size needs it)."""
    head = spec.component("head")
    size = (head.params or {}).get("target_size") if head is not None else None
    if head is not None and spec.late is not None and spec.late.under(head.pointer):
        from ..compiler import compile_graph  # the value may read inferred ones: take it as the compiler built it

        size = compile_graph(spec).graph["components"]["head"].params.get("target_size")
    return [int(v) for v in size] if size else [256, 256]  # 256x256: rtmcc's default target_size


# --- augmentation ----------------------------------------------------------------------------------------------

AUGMENTED_TASKS = ("classification", "segmentation", "detection", "pose_estimation")
# torchvision's defaults (NetsPresso's transforms wrap torchvision's) for keys a transform leaves out; ``size``
# left out means the data's input size. Pixel values (fill, value) are in 0..255, as on NetsPresso's PIL images.
TRANSFORM_DEFAULTS: dict[str, dict[str, Any]] = {
    "randomresizedcrop": {"scale": [0.08, 1.0], "ratio": [0.75, 1.3333333333333333], "interpolation": "bilinear"},
    "randomcrop": {"fill": 0},
    "centercrop": {},
    "resize": {"interpolation": "bilinear", "max_size": None, "resize_criteria": None},
    "pad": {"fill": 0},
    "randomhorizontalflip": {"p": 0.5},
    "randomverticalflip": {"p": 0.5},
    "colorjitter": {"brightness": 0.0, "contrast": 0.0, "saturation": 0.0, "hue": 0.0, "p": 1.0},
    "randomerasing": {"p": 0.5, "scale": [0.02, 0.33], "ratio": [0.3, 3.3], "value": 0, "inplace": False},
    "mosaicdetection": {  # NetsPresso requires every key; these are its documented example (YOLOX's recipe)
        "mosaic_prob": 1.0,
        "affine_scale": [0.5, 1.5],
        "degrees": 10.0,
        "translate": 0.1,
        "shear": 2.0,
        "enable_mixup": True,
        "mixup_prob": 1.0,
        "mixup_scale": [0.5, 1.5],
        "fill": 114,
        "mosaic_off_duration": 10,
    },
    "mixing": {"mixup": None, "cutmix": None, "inplace": False},
    "hsvjitter": {"h_mag": 5, "s_mag": 30, "v_mag": 30},  # YOLOX's (the peer's COCO recipes)
    "randomresize": {"stride": 32, "random_range": 5, "interpolation": "bilinear"},  # base_size: the input size
    "randomzoomout": {"fill": 0, "side_range": [1.0, 4.0], "p": 0.5},  # torchvision's RandomZoomOut defaults
    "randomioucrop": {  # torchvision's RandomIoUCrop defaults; p (the peer's own key): always
        "min_scale": 0.3,
        "max_scale": 1.0,
        "min_aspect_ratio": 0.5,
        "max_aspect_ratio": 2.0,
        "p": 1.0,
        "sampler_options": None,  # None: [0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0], as the peer
        "trials": 40,
    },
    "randomresize2": {"random_range": [0.5, 1.5], "interpolation": "bilinear"},  # base_size: the input size
    "trivialaugmentwide": {"num_magnitude_bins": 31, "interpolation": "nearest", "fill": None},  # torchvision's
    "autoaugment": {"policy": "imagenet", "interpolation": "nearest", "fill": None},  # torchvision's
    "posetopdownaffine": {  # the peer's pose recipe; size ([width, height]): the input size
        "scale": [0.75, 1.25],
        "scale_prob": 1.0,
        "translate": 0.1,
        "translate_prob": 1.0,
        "rotation": 60,
        "rotation_prob": 1.0,
    },
    "totensor": {"pixel_range": 1.0},
    "normalize": {},  # mean/std left out: the data's own
}
SIZED_TRANSFORMS = ("randomresizedcrop", "randomcrop", "centercrop", "resize", "pad", "mosaicdetection")
TASK_TRANSFORMS = {  # the others: every task
    "mosaicdetection": ("detection",),
    "mixing": ("classification",),
    "randomioucrop": ("detection",),  # it keeps the boxes whose centres stay in the crop: it needs boxes
    "posetopdownaffine": ("pose_estimation",),
    "trivialaugmentwide": ("classification",),  # as the peer (its masks, boxes and keypoints would not follow)
    "autoaugment": ("classification",),
}

Problem = tuple[str, str]  # (JSON pointer below the section, message)
# [min, max] keys whose order is checked: a pair under one key, or (low key, high key) reported at the first
RANGE_KEYS: dict[str, dict[str, tuple[str, str] | None]] = {
    "randomzoomout": {"side_range": None},
    "randomresize2": {"random_range": None},
    "posetopdownaffine": {"scale": None},
    "randomioucrop": {
        "min_scale": ("min_scale", "max_scale"),
        "min_aspect_ratio": ("min_aspect_ratio", "max_aspect_ratio"),
    },
}


def resolve_augmentation(
    section: dict[str, Any] | None, data: dict[str, Any], *, task: str
) -> tuple[dict[str, Any] | None, list[Problem]]:
    """The section's ``train``/``inference`` lists with defaults filled and every ``size`` as ``[height, width]``.

    npc's data pipeline has already brought each image to the data's input size (``data.image_size`` square, or a
    pose model's ``data.input_size``), so the sizes are followed through each list, which must end at that size
    (NetsPresso's rule: the final size is ``augmentation.img_size``).
    """
    if not section:
        return None, []
    if task not in AUGMENTED_TASKS:
        return None, [("", f"npc augments {', '.join(AUGMENTED_TASKS)} batches; not {task}")]
    size, label = _input_size(data)
    problems: list[Problem] = []
    img_size = section.get("img_size")
    if img_size is not None and (img_size, img_size) != size:
        problems.append(
            (
                "/img_size",
                f"is {img_size}, but {label} is {_size_text(size)}: npc brings every image to "
                f"{label} before augmenting, so img_size must be that (square) size, or left out",
            )
        )
    out: dict[str, Any] = {}
    evaluated_apart = task == "classification" and evaluation_plan(section) is not None
    for phase in ("train", "inference"):
        transforms = [_with_defaults(t, size) for t in section.get(phase) or []]
        if phase == "inference" and evaluated_apart:
            problems += _evaluation_problems(transforms, evaluation_plan(section), size)
        else:
            problems += _follow_sizes(transforms, size, label, phase)
        problems += _misplaced_transforms(transforms, task, phase)
        out[phase] = transforms
    return out, problems


def _input_size(data: dict[str, Any]) -> tuple[tuple[int, int], str]:
    """(height, width) every image has when it reaches augmentation, and the data key that sets it."""
    if data.get("input_size"):  # pose: the rtmcc head's size, maybe not square
        return (int(data["input_size"][0]), int(data["input_size"][1])), "data.input_size"
    side = int(data["image_size"])
    return (side, side), "data.image_size"


def _size_text(size: tuple[int, int]) -> str:
    return f"{size[0]}" if size[0] == size[1] else f"{size[0]}x{size[1]}"


def _with_defaults(transform: dict[str, Any], size: tuple[int, int]) -> dict[str, Any]:
    name = transform["name"]
    out = {"name": name, **copy.deepcopy(TRANSFORM_DEFAULTS[name]), **copy.deepcopy(transform)}
    if name in ("randomresize", "randomresize2"):
        given = out.get("base_size", list(size))
        out["base_size"] = [given, given] if isinstance(given, int) else [given[0], given[-1]]
    if name == "posetopdownaffine":  # the peer's size is OpenCV's dsize: [width, height]
        given = out.get("size", [size[1], size[0]])
        out["size"] = [given, given] if isinstance(given, int) else [given[0], given[-1]]
    if name in SIZED_TRANSFORMS:
        given = out.get("size", list(size))
        if isinstance(given, list):
            out["size"] = [given[0], given[-1]]  # [side] means square
        elif name != "resize":  # resize keeps an int: its meaning depends on resize_criteria
            out["size"] = [given, given]
        else:
            out["size"] = given
    return out


def _follow_sizes(transforms: list[dict[str, Any]], start: tuple[int, int], label: str, phase: str) -> list[Problem]:
    """Track (height, width) through the list; fills in a resize's concrete size; problems where sizes break."""
    problems: list[Problem] = []
    height, width = start
    last = f"/{phase}"
    for index, transform in enumerate(transforms):
        name, size, here = transform["name"], transform.get("size"), f"/{phase}/{index}"
        if name == "randomresize":
            problems += _random_resize_problems(transform, (height, width), here)
            last, (height, width) = here + "/base_size", tuple(transform["base_size"])
            continue
        if name == "posetopdownaffine":
            problems += _pose_affine_problems(transform, (height, width), here, phase)
            continue
        if name not in SIZED_TRANSFORMS:
            continue
        last = here + "/size"
        if name == "resize" and isinstance(size, int):
            criteria = transform.get("resize_criteria")
            if criteria is None:
                problems.append((here + "/size", "an integer size needs resize_criteria 'short' or 'long'"))
                continue
            matched = min(height, width) if criteria == "short" else max(height, width)
            size = [round(height * size / matched), round(width * size / matched)]  # the matched side: exactly size
            transform["size"] = size
        if name == "centercrop" and (size[0] > height or size[1] > width):
            problems.append((here + "/size", f"{size} is larger than the image at this point ({height}x{width})"))
        if name == "mosaicdetection" and list(size) != [height, width]:
            problems.append(
                (
                    here + "/size",
                    f"{size}: npc mosaics whole batches, whose images are {height}x{width} at this point, so the "
                    f"mosaic's size must be [{height}, {width}] (images left unmosaicked keep that size)",
                )
            )
        before = (height, width)
        if name == "pad":
            height, width = max(height, size[0]), max(width, size[1])
        else:
            height, width = size
        if phase == "inference" and (height, width) != before:
            problems.append(
                (
                    here + "/size",
                    f"changes the size from {before[0]}x{before[1]} to {height}x{width}: npc evaluates each image "
                    f"as its loader makes it ({label} {start[0]}x{start[1]}), so an inference step may only "
                    "restate that size (classification may evaluate at another size: a resize to [height, width] "
                    "and/or a centercrop alone)",
                )
            )
    if (height, width) != tuple(start):
        problems.append(
            (
                last,
                f"the {phase} transforms end at {height}x{width}, but the model is fed {label} "
                f"{start[0]}x{start[1]}: the last size must be that (NetsPresso: the final size is "
                "augmentation.img_size)",
            )
        )
    return problems


def _evaluation_problems(
    transforms: list[dict[str, Any]], plan: dict[str, list[int]], start: tuple[int, int]
) -> list[Problem]:
    """A classification evaluation at its own size (NetsPresso's ImageNet recipes: resize, then centre-crop): the
    crop must fit the resized image."""
    resized = plan.get("resize", list(start))
    crop = plan.get("crop")
    if crop is None or (crop[0] <= resized[0] and crop[1] <= resized[1]):
        return []
    where = next(i for i, t in enumerate(transforms) if t["name"] == "centercrop")
    return [(f"/inference/{where}/size", f"{crop} is larger than the image at this point ({resized[0]}x{resized[1]})")]


def _random_resize_problems(transform: dict[str, Any], current: tuple[int, int], here: str) -> list[Problem]:
    """The smallest size must stay positive; base_size must be the size at this point (the range centres there)."""
    base, low = transform["base_size"], min(transform["base_size"]) - transform["stride"] * transform["random_range"]
    problems = []
    if low < 1:
        problems.append((here + "/random_range", f"base_size - stride * random_range is {low}: sizes must stay >= 1"))
    if tuple(base) != tuple(current):
        problems.append(
            (
                here + "/base_size",
                f"{list(base)}: the images are {current[0]}x{current[1]} at this point; randomresize varies the size "
                "around the size the model is fed, so base_size must be that",
            )
        )
    return problems


def _pose_affine_problems(transform: dict[str, Any], current: tuple[int, int], here: str, phase: str) -> list[Problem]:
    """npc's pose loader already makes the top-down crop (the box fitted into the input): ``size`` must be that
    input, and an inference step may only restate the crop (no random scale, shift or rotation)."""
    problems: list[Problem] = []
    if list(transform["size"]) != [current[1], current[0]]:
        problems.append(
            (
                here + "/size",
                f"{transform['size']}: the crops are {current[1]} wide and {current[0]} high here (data.input_size "
                f"{list(current)}), and posetopdownaffine's size is [width, height] (OpenCV's, as NetsPresso's), so "
                f"it must be [{current[1]}, {current[0]}]",
            )
        )
    jitter = [
        key
        for key, still, prob in (
            ("scale", [1, 1], "scale_prob"),
            ("translate", 0, "translate_prob"),
            ("rotation", 0, "rotation_prob"),
        )  # fmt: skip
        if transform[key] != still and transform[prob] > 0
    ]
    if phase == "inference" and jitter:
        problems.append(
            (
                here,
                f"random {', '.join(jitter)} in an inference step: npc evaluates each person's crop as its loader "
                "makes it (posetopdownaffine without jitter), so evaluation is never augmented; set "
                + " and ".join(f"{key}_prob: 0" for key in jitter),
            )
        )
    return problems


def _misplaced_transforms(transforms: list[dict[str, Any]], task: str, phase: str) -> list[Problem]:
    """Transforms made for one task used in another, a ``mixing`` that is not last or mixes nothing."""
    problems: list[Problem] = []
    for index, transform in enumerate(transforms):
        name, here = transform["name"], f"/{phase}/{index}"
        if task not in TASK_TRANSFORMS.get(name, (task,)):
            problems.append((here + "/name", f"{name} is for {' and '.join(TASK_TRANSFORMS[name])}; not {task}"))
        for key, pair in RANGE_KEYS.get(name, {}).items():
            low, high = (transform[pair[0]], transform[pair[1]]) if pair else transform[key]
            if low > high:
                shown = f"{pair[0]} {low} > {pair[1]} {high}" if pair else f"{transform[key]}"
                problems.append((f"{here}/{key}", f"{shown}: [min, max] with min <= max"))
        if name != "mixing":
            continue
        if index != len(transforms) - 1:
            problems.append((here, "mixing works on the finished batch: it must be the last transform (as NetsPresso)"))
        if not (transform.get("mixup") or transform.get("cutmix")):
            problems.append((here, "mixing needs mixup: [alpha, p] or cutmix: [alpha, p] (both are null)"))
    return problems


def _pose_input_size_problems(
    data: dict[str, Any], spec: ModelSpec, section: tuple[Any, Source, str] | None
) -> list[Diagnostic]:
    """A ``data.input_size`` other than the head's ``target_size`` would fail on the first forward pass: say so now."""
    wanted = pose_input_size(spec)
    given = data.get("input_size")
    if given is None or [int(v) for v in given] == wanted or section is None:
        return []
    message = f"is {list(given)}, but the rtmcc head's target_size is {wanted}: the compiled model accepts only that"
    return _located(section, [("/input_size", message)])


# --- validation ------------------------------------------------------------------------------------------------


@lru_cache(maxsize=5)
def _validator(name: str) -> Draft202012Validator:
    schemas = {
        "training": TRAINING_SCHEMA,
        "data": DATA_SCHEMA,
        "augmentation": AUGMENTATION_SCHEMA,
        "environment": ENVIRONMENT_SCHEMA,
        "logging": LOGGING_SCHEMA,
    }
    return StrictValidator(schemas[name])


def _check(validator: Draft202012Validator, value: Any, source: Source, base: str) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    seen: set[tuple[str, str]] = set()
    for error in validator.iter_errors(value):
        for pointer, message in explain(error, base):
            if (pointer, message) in seen:
                continue
            seen.add((pointer, message))
            line, col = source.position(pointer) or (None, None)
            out.append(Diagnostic(source.path, pointer, message, line, col, "schema"))
    return out
