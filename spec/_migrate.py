"""``npc migrate``: rewrite older NetsPresso Trainer model configs into the current form, saying what changed.

The peer's config format moved several times (read off its tagged releases, v0.0.x → v1.4.1):

- v0.0.x / v0.1.x: a flat ``checkpoint: PATH`` with ``fx_model_checkpoint``, ``resume_optimizer_checkpoint`` and
  (from v0.1.0) ``load_checkpoint_head`` beside it — the form ``../seed/model-fields.md`` documents;
- v0.2.0 – v1.0.x: ``checkpoint: {use_pretrained, load_head, path, fx_model_path, optimizer_path}``;
- v1.4.1: ``checkpoint: {use_pretrained, load_head, path, optimizer_path}``; npc keeps a torch.fx model in the
  top-level ``fx_model_checkpoint`` (the peer 1.4.1 infers it from a ``.pt`` path).

Early releases also used other names: ``norm_layer`` for ``norm_type``, the ``yolox_head`` / ``pafpn`` /
``retinanet_head`` families, and a ``label_smoothing_cross_entropy`` loss with ``smoothing``. Each rule below is
a small function over the YAML round-trip tree, so comments and key order survive; a JSON file is rewritten in
npc's canonical JSON layout (JSON has no comments to keep).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from ._renames import RENAMED_COMPONENTS, RENAMED_LOSSES, RENAMED_PARAMS
from ._source import pointer_join

__all__ = ["Change", "migrate_text"]

FLAT_CHECKPOINT_KEYS = ("load_checkpoint_head", "resume_optimizer_checkpoint")
# Decode/NMS settings that early detection heads took as params; today they live in ``postprocessor.params``.
POSTPROCESSOR_KEYS = ("topk_candidates", "score_thresh", "nms_thresh", "class_agnostic", "detections_per_image")


@dataclass(frozen=True)
class Change:
    pointer: str  # where the value sits in the migrated document
    message: str
    line: int | None = None  # line in the input file, when known


def migrate_text(text: str, path: str = "<string>") -> tuple[str, list[Change]]:
    """The migrated text (unchanged when nothing applies) and the list of changes, in document order."""
    is_json = path.lower().endswith(".json")
    yaml = _yaml(capitalised_booleans=_capitalised_booleans(text))
    document = yaml.load(text)
    model = document.get("model") if isinstance(document, dict) else None
    if not isinstance(model, dict):
        return text, []
    changes = sorted((change for rule in RULES for change in rule(model)), key=lambda change: change.line or 0)
    if not changes:
        return text, []
    if is_json:
        from .convert import dump_json  # canonical JSON layout, as `npc fmt --to json`

        return dump_json(json.loads(json.dumps(document))), changes
    out = io.StringIO()
    yaml.dump(document, out)
    return out.getvalue(), changes


def _yaml(*, capitalised_booleans: bool = False) -> YAML:
    yaml = YAML(typ="rt")
    yaml.representer.add_representer(type(None), _tilde)  # keep the peer's `~`, not an empty value
    if capitalised_booleans:  # the peer writes True/False; keep a file's own style to keep the diff small
        yaml.representer.add_representer(bool, _capitalised)
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap a user's long lines
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def _capitalised_booleans(text: str) -> bool:
    capitalised = len(re.findall(r":\s+(?:True|False)\b", text))
    return capitalised > len(re.findall(r":\s+(?:true|false)\b", text))


def _capitalised(representer: Any, value: bool) -> Any:
    return representer.represent_scalar("tag:yaml.org,2002:bool", "True" if value else "False")


def _tilde(representer: Any, _: None) -> Any:
    return representer.represent_scalar("tag:yaml.org,2002:null", "~")


def _line(mapping: Any, key: str) -> int | None:
    try:
        return mapping.lc.key(key)[0] + 1
    except (AttributeError, KeyError, TypeError):
        return None


def _rename_key(mapping: CommentedMap, old: str, new: str) -> None:
    """Rename in place, keeping the key's position and the comment attached to it."""
    position = list(mapping).index(old)
    comment = mapping.ca.items.pop(old, None) if hasattr(mapping, "ca") else None
    value = mapping.pop(old)
    mapping.insert(position, new, value)
    if comment is not None:
        mapping.ca.items[new] = comment


def _insert_after(mapping: CommentedMap, anchor: str, key: str, value: Any) -> None:
    keys = list(mapping)
    mapping.insert(keys.index(anchor) + 1 if anchor in keys else len(keys), key, value)


# --- rules: each yields the changes it made -------------------------------------------------------------------


def flat_checkpoint(model: CommentedMap) -> Iterator[Change]:
    """``checkpoint: PATH`` + ``load_checkpoint_head`` + ``resume_optimizer_checkpoint`` → the object form."""
    raw = model.get("checkpoint")
    if isinstance(raw, dict) or ("checkpoint" not in model and not any(k in model for k in FLAT_CHECKPOINT_KEYS)):
        return
    line = _line(model, "checkpoint") or _line(model, FLAT_CHECKPOINT_KEYS[0])
    checkpoint = CommentedMap()
    checkpoint["use_pretrained"] = raw is not None  # the flat form loaded the file whenever a path was given
    checkpoint["load_head"] = bool(model.get("load_checkpoint_head", True))
    checkpoint["path"] = raw
    checkpoint["optimizer_path"] = model.get("resume_optimizer_checkpoint")
    if "checkpoint" in model:
        model["checkpoint"] = checkpoint
    else:
        model.insert(list(model).index("task") + 1 if "task" in model else 0, "checkpoint", checkpoint)
    for key in FLAT_CHECKPOINT_KEYS:
        model.pop(key, None)
    yield Change(
        "/model/checkpoint",
        "flat checkpoint fields → checkpoint: {use_pretrained, load_head, path, optimizer_path}",
        line,
    )


def fx_model_path(model: CommentedMap) -> Iterator[Change]:
    """``checkpoint.fx_model_path`` (v0.2–v1.0) and a top-level ``fx_model_path`` → ``fx_model_checkpoint``."""
    checkpoint = model.get("checkpoint")
    for owner, where in ((checkpoint, "/model/checkpoint"), (model, "/model")):
        if isinstance(owner, dict) and "fx_model_path" in owner:
            line = _line(owner, "fx_model_path")
            value = owner.pop("fx_model_path")
            if value is not None or "fx_model_checkpoint" not in model:
                if "fx_model_checkpoint" in model and model["fx_model_checkpoint"] is not None:
                    continue  # both set: validation reports the conflict; do not guess
                model.pop("fx_model_checkpoint", None)
                _insert_after(model, "checkpoint", "fx_model_checkpoint", value)
            yield Change("/model/fx_model_checkpoint", f"{where}/fx_model_path → /model/fx_model_checkpoint", line)


def component_names(model: CommentedMap) -> Iterator[Change]:
    architecture = model.get("architecture")
    for kind in ("backbone", "neck", "head"):
        node = architecture.get(kind) if isinstance(architecture, dict) else None
        name = node.get("name") if isinstance(node, dict) else None
        if isinstance(name, str) and name in RENAMED_COMPONENTS:
            node["name"] = RENAMED_COMPONENTS[name]
            pointer = f"/model/architecture/{kind}/name"
            yield Change(pointer, f"{kind} {name!r} → {RENAMED_COMPONENTS[name]!r}", _line(node, "name"))


def param_names(model: CommentedMap) -> Iterator[Change]:
    architecture = model.get("architecture")
    for kind in ("backbone", "neck", "head", "full"):
        node = architecture.get(kind) if isinstance(architecture, dict) else None
        params = (node if kind == "full" else node.get("params")) if isinstance(node, dict) else None
        base = f"/model/architecture/{kind}" + ("" if kind == "full" else "/params")
        yield from _rename_params(params, RENAMED_PARAMS, base)


def _rename_params(params: Any, table: dict[str, str], base: str) -> Iterator[Change]:
    if not isinstance(params, dict):
        return
    for old, new in table.items():
        if old in params and new not in params:
            line = _line(params, old)
            _rename_key(params, old, new)
            yield Change(pointer_join(base, new), f"{old} → {new}", line)


# v0.0.x's resnet: torchvision-style names, and settings today's resnet fixes at these values.
RESNET_PARAMS = {"block": "block_type"}
RESNET_STAGE_PARAMS = {"plane": "channels", "layers": "num_blocks"}
RESNET_FIXED = {"groups": 1, "width_per_group": 64, "zero_init_residual": False, "expansion": None}


def early_resnet(model: CommentedMap) -> Iterator[Change]:
    """v0.0.x resnet params (``block``, ``plane``, ``layers``); settings at today's fixed values are dropped,
    other values are left for validation to report (npc cannot build them, and must not silently change them)."""
    architecture = model.get("architecture")
    backbone = architecture.get("backbone") if isinstance(architecture, dict) else None
    if not isinstance(backbone, dict) or backbone.get("name") != "resnet":
        return
    base = "/model/architecture/backbone"
    params = backbone.get("params")
    yield from _rename_params(params, RESNET_PARAMS, f"{base}/params")
    for key, fixed in RESNET_FIXED.items():
        if isinstance(params, dict) and key in params and params[key] == fixed:
            line = _line(params, key)
            params.pop(key)
            yield Change(f"{base}/params", f"dropped {key}: {fixed!r} (npc's resnet always builds it so)", line)
    stages = backbone.get("stage_params")
    for index, stage in enumerate(stages if isinstance(stages, list) else []):
        yield from _rename_params(stage, RESNET_STAGE_PARAMS, f"{base}/stage_params/{index}")


def loss_names(model: CommentedMap) -> Iterator[Change]:
    losses = model.get("losses")
    for index, loss in enumerate(losses if isinstance(losses, list) else []):
        criterion = loss.get("criterion") if isinstance(loss, dict) else None
        if criterion in RENAMED_LOSSES:
            new, params = RENAMED_LOSSES[criterion]
            line = _line(loss, "criterion")
            loss["criterion"] = new
            yield Change(f"/model/losses/{index}/criterion", f"loss {criterion!r} → {new!r}", line)
            yield from _rename_params(loss, params, f"/model/losses/{index}")


def postprocessor_params(model: CommentedMap) -> Iterator[Change]:
    """Decode/NMS settings under the detection head's params (v0.1.x) → ``postprocessor: {params: ...}``."""
    architecture = model.get("architecture")
    head = architecture.get("head") if isinstance(architecture, dict) else None
    params = head.get("params") if isinstance(head, dict) else None
    if model.get("task") != "detection" or not isinstance(params, dict):
        return
    moved = [key for key in POSTPROCESSOR_KEYS if key in params]
    if not moved:
        return
    line = _line(params, moved[0])
    postprocessor = model.get("postprocessor")
    if not isinstance(postprocessor, dict):
        postprocessor = CommentedMap()
        _insert_after(model, "architecture", "postprocessor", postprocessor)
    target = postprocessor.get("params")
    if not isinstance(target, dict):
        target = postprocessor["params"] = CommentedMap()
    for key in moved:
        comment = params.ca.items.pop(key, None)
        target.setdefault(key, params.pop(key))
        if comment is not None:
            target.ca.items[key] = comment
    yield Change("/model/postprocessor/params", f"head params {', '.join(moved)} → postprocessor.params", line)


RULES: tuple[Callable[[CommentedMap], Iterator[Change]], ...] = (
    flat_checkpoint,
    fx_model_path,
    component_names,
    param_names,
    early_resnet,
    loss_names,
    postprocessor_params,
)
