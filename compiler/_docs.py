"""``docs/models.md``, generated from the registry (``npc list --format markdown -o docs/models.md``)."""

from __future__ import annotations

import json

from . import _registry as registry

__all__ = ["models_markdown"]

HEADER = """# Components

Generated from the component registry by `npc list --format markdown -o docs/models.md`; do not edit by hand.
"Compiles" says whether `npc compile` can emit the family today; every family validates.
"""


def _value(value) -> str:
    return "`" + json.dumps(value) + "`"


def _param_rows(cls: type[registry.Component]) -> list[str]:
    rows = []
    for key, schema in cls.params.items():
        allowed = schema.get("enum")
        detail = f" One of {', '.join(_value(v) for v in allowed)}." if allowed else ""
        rows.append(f"| `{key}` | {_value(schema.get('default'))} | {schema.get('description', '')}{detail} |")
    return rows


def models_markdown() -> str:
    lines = [HEADER, "| kind | name | compiles | tasks | summary |", "|---|---|---|---|---|"]
    for cls in registry.list_components():
        compiles = "yes" if cls.template else "no"
        lines.append(
            f"| {cls.kind} | [`{cls.name}`](#{cls.kind}-{cls.name}) | {compiles} | "
            f"{', '.join(cls.tasks)} | {cls.summary()} |"
        )
    for cls in registry.list_components():
        lines += ["", f"## {cls.kind} `{cls.name}`", f'<a id="{cls.kind}-{cls.name}"></a>', "", cls.summary(), ""]
        if cls.params:
            lines += ["| param | default | meaning |", "|---|---|---|", *_param_rows(cls)]
        if cls.stage_params is not None:
            lines += [
                "",
                "Each entry of `stage_params` follows this schema:",
                "",
                "```json",
                json.dumps(cls.stage_params, indent=2),
                "```",
            ]
    return "\n".join(lines) + "\n"
