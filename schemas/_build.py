"""Build the model-spec JSON Schema (draft 2020-12) from the component registry.

The committed ``schemas/model.schema.json`` is this function's output (``npc schema -o ...``); a test fails when
it is stale. Validation itself always uses the freshly built schema, so plugin components are covered too.
"""

from __future__ import annotations

from typing import Any

from ..compiler import _registry as registry
from ..compiler._postprocess import POSTPROCESSOR_PARAMS
from .run import AUGMENTATION_SCHEMA, DATA_SCHEMA, ENVIRONMENT_SCHEMA, LOGGING_SCHEMA, TRAINING_SCHEMA

__all__ = ["SCHEMA_ID", "build_schema"]

SCHEMA_ID = "urn:npc:schema:model:1"
DRAFT = "https://json-schema.org/draft/2020-12/schema"

NULLABLE_PATH = {"type": ["string", "null"]}

MODEL_FIELDS: dict[str, dict[str, Any]] = {
    "task": {
        "enum": list(registry.TASKS),
        "description": "What the model predicts: one label per image "
        "(classification), one label per pixel (segmentation), boxes (detection) or keypoints (pose).",
    },
    "name": {
        "type": "string",
        "minLength": 1,
        "description": "A nickname for the model; npc names the "
        "generated top-level class after it (sanitised to a Python identifier).",
    },
    "checkpoint": {
        "type": ["string", "object", "null"],
        "description": "Pretrained weights to start from. Either a path (the documented form) or an object "
        "{use_pretrained, load_head, path, optimizer_path} (the newer form). At most one of checkpoint and "
        "fx_model_checkpoint may name a file.",
        "properties": {
            "use_pretrained": {
                "type": "boolean",
                "description": "Load the weights in `path` before training.",
            },
            "load_head": {
                "type": "boolean",
                "description": "Also load the head's weights; false lets a "
                "checkpoint trained on another number of classes load.",
            },
            "path": {**NULLABLE_PATH, "description": "Path to a .safetensors or .pth state dict."},
            "optimizer_path": {
                **NULLABLE_PATH,
                "description": "Path to a training state to resume from (optimizer, scheduler, epoch).",
            },
            "remap_keys": {
                "type": ["object", "null"],
                "additionalProperties": {"type": "string"},
                "propertyNames": {"minLength": 1},
                "description": "npc extension: state_dict key prefixes to rename when weights load, old prefix "
                "→ new prefix (for weights saved before a rename). The compiled module applies them in "
                "load_state_dict; `npc check-weights` applies them too.",
            },
        },
        "additionalProperties": False,
    },
    "fx_model_checkpoint": {
        **NULLABLE_PATH,
        "description": "Path to a saved torch.fx GraphModule (e.g. a model "
        "compressed by NetsPresso) trained instead of building `architecture`.",
    },
    "fx_model_path": {
        **NULLABLE_PATH,
        "description": "Older name of fx_model_checkpoint (kept for old configs).",
    },
    "resume_optimizer_checkpoint": {
        **NULLABLE_PATH,
        "description": "Path to the optimizer and scheduler state of an interrupted run, to resume it.",
    },
    "load_checkpoint_head": {
        "type": "boolean",
        "description": "Documented older form of checkpoint.load_head: "
        "whether the head's weights are loaded from `checkpoint`.",
    },
    "freeze_backbone": {
        "type": "boolean",
        "description": "Train only what follows the backbone: backbone "
        "weights and its BatchNorm statistics stay fixed.",
    },
    "architecture": {"$ref": "#/$defs/architecture"},
    "postprocessor": {
        "type": ["object", "null"],
        "description": "How raw head outputs become predictions (decode and non-maximum suppression).",
        "properties": {
            "params": {
                "type": ["object", "null"],
                "properties": POSTPROCESSOR_PARAMS,
                "additionalProperties": False,
                "description": "Decode and NMS parameters.",
            }
        },
        "additionalProperties": False,
    },
    "losses": {
        "type": ["array", "null"],
        "items": {"$ref": "#/$defs/loss"},
        "description": "Losses the model learns from, summed with their weights.",
    },
}


def build_schema() -> dict[str, Any]:
    """The whole model-spec schema; deterministic (registry order is sorted)."""
    defs: dict[str, Any] = {
        "model": _model(),
        "architecture": _architecture(),
        "loss": _losses(),
    }
    for kind in ("backbone", "neck", "head"):
        defs[kind] = _component(kind)
    defs["full"] = _full()
    for cls in registry.list_components():
        if cls.kind != "loss" and not cls.inline_params:
            defs[_params_def(cls)] = _object(cls.params, f"Parameters of the {cls.name} {cls.kind}.")
        if cls.stage_params is not None:
            defs[_stages_def(cls)] = {
                "type": ["array", "null"],
                "description": f"One entry per stage of the {cls.name} backbone.",
                "items": cls.stage_params,
            }
    return {
        "$schema": DRAFT,
        "$id": SCHEMA_ID,
        "title": "npc model spec",
        "description": "A NetsPresso-Trainer-style model description compiled by npc into PyTorch source.",
        "type": "object",
        "properties": {
            "$schema": {"type": "string", "description": "Where an editor finds this schema."},
            "model": {"$ref": "#/$defs/model"},
            "training": _section(TRAINING_SCHEMA, "Training recipe for `npc train` (see docs/runtime.md)."),
            "data": _section(DATA_SCHEMA, "Where `npc train` reads its data (see docs/runtime.md)."),
            "augmentation": _section(
                AUGMENTATION_SCHEMA, "Training-time augmentation, NetsPresso transform names (see docs/runtime.md)."
            ),
            "environment": _section(
                ENVIRONMENT_SCHEMA, "Seed, workers, devices and batch size, as NetsPresso's environment.yaml."
            ),
            "logging": _section(LOGGING_SCHEMA, "Run folder, logs and what is saved, as NetsPresso's logging.yaml."),
            "vars": {
                "type": ["object", "null"],
                "description": 'Named values that "=..." formulas elsewhere in the file may use; resolved and '
                "removed before validation (see docs/language.md).",
            },
        },
        "required": ["model"],
        "additionalProperties": False,
        "$defs": defs,
    }


# The run sections a spec file may carry beside `model:` (what `npc train` reads from it or from its own files).
RUN_SECTIONS = ("training", "data", "augmentation", "environment", "logging")

EXPRESSION = {
    "type": "string",
    "pattern": "^=(?!=)",
    "description": 'An npc expression, resolved before validation: "=round(64 * width)", "=backbone.channels[-1]" '
    "(see docs/language.md).",
}
# Keys an editor needs as written: which component or loss a block is, and which sections exist.
_LITERAL_KEYS = frozenset({"name", "criterion", "$schema"})


def editor_schema() -> dict[str, Any]:
    """:func:`build_schema` as editors get it (the committed file): wherever a value goes, an ``"=..."``
    expression is accepted too, since editors see the file before npc resolves its expressions. npc itself
    validates resolved documents against the strict :func:`build_schema`."""
    schema = build_schema()
    defs = schema["$defs"]
    for name, definition in defs.items():
        defs[name] = _accepting_expressions(definition)
    for name in RUN_SECTIONS:  # the runtime sections, embedded whole
        schema["properties"][name] = _accepting_expressions(schema["properties"][name])
    defs["expression"] = EXPRESSION
    return schema


def _accepting_expressions(node: Any) -> Any:
    if isinstance(node, list):
        return [_accepting_expressions(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "properties" and isinstance(value, dict):
            out[key] = {
                name: sub if name in _LITERAL_KEYS else _or_expression(_accepting_expressions(sub))
                for name, sub in value.items()
            }
        elif key == "items" and isinstance(value, dict):
            out[key] = _or_expression(_accepting_expressions(value))
        elif key in ("if", "const", "enum", "default", "examples"):  # conditions and literal values stay as written
            out[key] = value
        else:
            out[key] = _accepting_expressions(value)
    return out


def _or_expression(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema``, or an expression; the description stays outside, where editors show it on hover."""
    inner = {key: value for key, value in schema.items() if key != "description"}
    wrapped = {"anyOf": [inner, {"$ref": "#/$defs/expression"}]}
    if "description" in schema:
        wrapped = {"description": schema["description"], **wrapped}
    return wrapped


def _section(schema: dict[str, Any], description: str) -> dict[str, Any]:
    """A runtime section's own schema embedded under a top-level key (null allowed: use the defaults)."""
    body = {key: value for key, value in schema.items() if key not in ("$schema", "title")}
    return {**body, "type": [body["type"], "null"], "description": description}


def _object(properties: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "type": ["object", "null"],
        "description": description,
        "properties": properties,
        "additionalProperties": False,
    }


def _params_def(cls: type[registry.Component]) -> str:
    return f"{cls.kind}.{cls.name}.params"


def _stages_def(cls: type[registry.Component]) -> str:
    return f"{cls.kind}.{cls.name}.stage_params"


def _model() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "The model: its task, architecture, losses and where its weights come from.",
        "properties": MODEL_FIELDS,
        "required": ["task", "name", "architecture"],
        "additionalProperties": False,
        # The field reference: only one of checkpoint / fx_model_checkpoint may have a value.
        "not": {
            "type": "object",
            "required": ["checkpoint", "fx_model_checkpoint"],
            "properties": {"checkpoint": {"type": "string"}, "fx_model_checkpoint": {"type": "string"}},
        },
    }


def _architecture() -> dict[str, Any]:
    full_given = {
        "required": ["full"],
        "properties": {"full": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}},
    }
    return {
        "type": "object",
        "description": "Either a full model (`full`) or a backbone, an optional neck and a head.",
        "properties": {
            "full": {"$ref": "#/$defs/full"},
            "backbone": {"$ref": "#/$defs/backbone"},
            "neck": {"$ref": "#/$defs/neck"},
            "head": {"$ref": "#/$defs/head"},
        },
        "additionalProperties": False,
        "if": full_given,
        "then": {},
        "else": {
            "required": ["backbone", "head"],
            "properties": {"backbone": {"type": "object"}, "head": {"type": "object"}},
        },
    }


def _names(kind: str) -> list[str]:
    return [cls.name for cls in registry.list_components(kind)]


def _component(kind: str) -> dict[str, Any]:
    components = registry.list_components(kind)
    properties: dict[str, Any] = {
        "name": {"enum": _names(kind), "description": f"Which {kind} family to build."},
        "params": {"type": ["object", "null"], "description": f"Parameters of the chosen {kind}."},
    }
    if kind == "backbone":
        properties["stage_params"] = {
            "type": ["array", "null"],
            "description": "Per-stage parameters of the chosen backbone.",
        }
    branches = []
    for cls in components:
        then: dict[str, Any] = {"properties": {"params": {"$ref": f"#/$defs/{_params_def(cls)}"}}}
        if kind == "backbone":
            stages = {"$ref": f"#/$defs/{_stages_def(cls)}"} if cls.stage_params is not None else {"type": "null"}
            then["properties"]["stage_params"] = stages
        branches.append({"if": {"properties": {"name": {"const": cls.name}}, "required": ["name"]}, "then": then})
    return {
        "type": ["object", "null"],
        "description": {
            "backbone": "Extracts features from the image, stage by stage.",
            "neck": "Fuses the backbone's multi-scale features.",
            "head": "Turns features into the task's outputs.",
        }[kind],
        "properties": properties,
        "required": ["name"],
        "additionalProperties": False,
        **({"allOf": branches} if branches else {}),  # draft 2020-12: allOf must not be empty
    }


def _full() -> dict[str, Any]:
    branches = []
    for cls in registry.list_components("full"):
        properties = {"name": {"const": cls.name}, **cls.params}
        branches.append(
            {
                "if": {"properties": {"name": {"const": cls.name}}, "required": ["name"]},
                "then": {"properties": properties, "additionalProperties": False},
            }
        )
    return {
        "type": ["object", "null"],
        "description": "A model built as one piece (e.g. pidnet); its parameters sit beside `name`. "
        "`~` or `{name: ~}` means the model is built from backbone/neck/head.",
        "properties": {"name": {"enum": [*_names("full"), None], "description": "Which full model to build."}},
        **({"allOf": branches} if branches else {}),  # draft 2020-12: allOf must not be empty
    }


def _losses() -> dict[str, Any]:
    branches = []
    for cls in registry.list_components("loss"):
        properties = {"criterion": {"const": cls.name}, "weight": {}, **cls.params}
        branches.append(
            {
                "if": {"properties": {"criterion": {"const": cls.name}}, "required": ["criterion"]},
                "then": {"properties": properties, "additionalProperties": False},
            }
        )
    return {
        "type": "object",
        "description": "One loss: `criterion` names it, `weight` scales it (null = 1.0); other keys are its "
        "parameters.",
        "properties": {
            "criterion": {"enum": _names("loss"), "description": "Which loss."},
            "weight": {
                "type": ["number", "null"],
                "minimum": 0,
                "description": "Multiplier of this loss in the total (null means 1.0).",
            },
        },
        "required": ["criterion"],
        **({"allOf": branches} if branches else {}),  # draft 2020-12: allOf must not be empty
    }
