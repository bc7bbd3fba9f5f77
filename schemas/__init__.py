"""The model-spec JSON Schema: built from the component registry; the committed file is for editors."""

from __future__ import annotations

import json
from importlib import resources

from ._build import SCHEMA_ID, build_schema, editor_schema

__all__ = ["SCHEMA_ID", "SCHEMA_FILE", "build_schema", "committed_schema", "editor_schema", "render_schema"]

SCHEMA_FILE = "model.schema.json"


def render_schema() -> str:
    """The schema as the committed file holds it (the editor form, which also accepts ``"=..."`` expressions):
    stable key order, two-space indent, final newline."""
    return json.dumps(editor_schema(), indent=2, ensure_ascii=False) + "\n"


def committed_schema() -> str:
    return resources.files(__package__).joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
