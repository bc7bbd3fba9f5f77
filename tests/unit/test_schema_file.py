"""The committed JSON Schema is valid draft 2020-12, in sync with the registry, and documents every field."""

import json
import re
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from npc.compiler import registry
from npc.schemas import build_schema, render_schema

REPO = Path(__file__).resolve().parents[2]
SCHEMA_PATH = REPO / "schemas" / "model.schema.json"
# The documented model fields, copied from the field reference (shared/seed/model-fields.md) into the repository.
DOCUMENTED_FIELDS = REPO / "tests" / "data" / "model_fields.txt"
FIELD_REFERENCE = REPO.parent / "shared" / "seed" / "model-fields.md"  # an extra check where it is beside the repo
FIELD_ROW = r"^\| `([a-z_.]+)` \|"


def documented_fields() -> set[str]:
    lines = DOCUMENTED_FIELDS.read_text().splitlines()
    return {line for line in lines if line and not line.startswith("#")}


def test_schema_is_valid_draft_2020_12():
    Draft202012Validator.check_schema(build_schema())
    assert build_schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_committed_schema_is_in_sync_with_the_registry():
    assert SCHEMA_PATH.read_text(encoding="utf-8") == render_schema(), (
        "schemas/model.schema.json is stale: run `npc schema -o schemas/model.schema.json`"
    )


def test_every_documented_field_has_a_description():
    schema = build_schema()
    model = schema["$defs"]["model"]["properties"]
    documented = documented_fields()
    assert len(documented) > 10
    for field in sorted(documented):
        parts = field.split(".")
        if parts[0] == "architecture" and len(parts) == 2:
            node = schema["$defs"][parts[1]] if parts[1] in schema["$defs"] else None
        elif len(parts) == 1:
            node = model.get(parts[0])
            if node and "$ref" in node:
                node = schema["$defs"][node["$ref"].rsplit("/", 1)[-1]]
        else:
            node = schema["$defs"][parts[1]]["properties"].get(parts[2])
        assert node is not None, f"{field} is documented but missing from the schema"
        assert node.get("description"), f"{field} has no description"


def test_every_component_param_is_described():
    missing = []
    for cls in registry.list_components():
        for key, fragment in cls.params.items():
            if not fragment.get("description"):
                missing.append(f"{cls.kind} {cls.name}: {key}")
        if not cls.summary():
            missing.append(f"{cls.kind} {cls.name}: class docstring")
    assert not missing, missing


def test_editor_sees_per_component_params():
    """An editor offers `block_type` only under a resnet backbone: the params are selected by name."""
    schema = json.loads(render_schema())
    branches = schema["$defs"]["backbone"]["allOf"]
    names = [b["if"]["properties"]["name"]["const"] for b in branches]
    assert names == sorted(names) and names


@pytest.mark.skipif(
    not FIELD_REFERENCE.is_file(), reason=f"the field reference is not beside the repository ({FIELD_REFERENCE})"
)
def test_documented_fields_list_matches_the_field_reference():
    assert documented_fields() == set(re.findall(FIELD_ROW, FIELD_REFERENCE.read_text(), flags=re.MULTILINE))
