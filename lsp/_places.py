"""What a JSON pointer in a spec names: a component, one of its params, a stage param, a loss or a loss param.

Hover, completion and go-to-definition all ask this of the pointer under the cursor; the registry then says
what the component is and what its params mean.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..compiler import registry

__all__ = ["Place", "family", "param_schema", "place_of"]

_COMPONENT = re.compile(r"/model/architecture/(backbone|neck|head|full)(?:/(.*))?")
_LOSS = re.compile(r"/model/losses/(\d+)(?:/(.*))?")


@dataclass(frozen=True)
class Place:
    kind: str  # backbone, neck, head, full or loss
    holder: str  # pointer of the component (or loss) node
    what: str  # "component" (its name or node), "param", "stage_param" or "other"
    key: str | None = None  # the param's name


def place_of(pointer: str) -> Place | None:
    match = _COMPONENT.fullmatch(pointer)
    if match:
        kind, rest = match.group(1), match.group(2)
        holder = f"/model/architecture/{kind}"
        return Place(kind, holder, *_component_part(rest, inline=kind == "full"))
    match = _LOSS.fullmatch(pointer)
    if match:
        holder, rest = f"/model/losses/{match.group(1)}", match.group(2)
        if rest is None or rest == "criterion":
            return Place("loss", holder, "component")
        key = rest.split("/")[0]
        return Place("loss", holder, "other" if key == "weight" else "param", key)
    return None


def _component_part(rest: str | None, *, inline: bool) -> tuple[str, str | None]:
    if rest is None or rest == "name":
        return "component", None
    parts = rest.split("/")
    if parts[0] == "params" and len(parts) > 1:
        return "param", parts[1]
    if parts[0] == "stage_params" and len(parts) > 2 and not parts[1].startswith("-"):
        return "stage_param", parts[2]
    if inline and parts[0] not in ("params", "stage_params"):
        return "param", parts[0]
    return "other", None


def family(place: Place, document: Any) -> type[registry.Component] | None:
    """The registered family the spec names at ``place.holder``, if it names a known one."""
    node = _node(document, place.holder)
    name = node.get("criterion" if place.kind == "loss" else "name") if isinstance(node, dict) else None
    if not isinstance(name, str):
        return None
    try:
        return registry.get(place.kind, name)
    except registry.UnknownComponentError:
        return None


def param_schema(cls: type[registry.Component], place: Place) -> dict[str, Any] | None:
    if place.what == "param":
        return cls.params.get(place.key or "")
    if place.what == "stage_param" and isinstance(cls.stage_params, dict):
        return cls.stage_params.get("properties", {}).get(place.key or "")
    return None


def _node(document: Any, pointer: str) -> Any:
    for token in pointer.split("/")[1:]:
        if isinstance(document, list) and token.isdigit() and int(token) < len(document):
            document = document[int(token)]
        elif isinstance(document, dict):
            document = document.get(token)
        else:
            return None
    return document
