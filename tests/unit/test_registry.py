"""The registry's contract, and the conventions every registered family must follow."""

from pathlib import Path

import pytest

from npc.compiler import _docs, registry
from npc.schemas import build_schema

REPO = Path(__file__).resolve().parents[2]


def test_a_second_family_under_a_taken_name_is_refused():
    existing = registry.list_components("backbone")[0]

    class Clash(registry.Component):
        """A clashing family."""

        kind = "backbone"
        name = existing.name
        origin = "some-plugin"

    with pytest.raises(ValueError, match="registered twice.*some-plugin"):
        registry.register(Clash)


def test_unknown_name_lists_the_closest_match():
    with pytest.raises(registry.UnknownComponentError) as info:
        registry.get("backbone", "resnet5")
    assert "did you mean 'resnet'" in str(info.value)


def test_conventions_hold_for_every_family():
    """Collect every broken convention, then assert once (as torchvision's extended model tests do)."""
    schema_defs = build_schema()["$defs"]
    problems = []
    for cls in registry.list_components():
        where = f"{cls.kind} {cls.name}"
        if not cls.summary():
            problems.append(f"{where}: no docstring")
        if cls.kind in ("backbone", "neck", "head") and f"{cls.kind}.{cls.name}.params" not in schema_defs:
            problems.append(f"{where}: no schema entry")
        if not set(cls.tasks) <= set(registry.TASKS):
            problems.append(f"{where}: unknown tasks {cls.tasks}")
        if cls.template and not (REPO / "compiler" / "templates" / cls.template).exists():
            problems.append(f"{where}: template {cls.template} missing")
        for key, fragment in cls.params.items():
            if "default" not in fragment and cls.kind != "loss":
                problems.append(f"{where}: param {key} has no default")
    assert not problems, "\n".join(problems)


def test_docs_models_md_is_generated_from_the_registry():
    text = (REPO / "docs" / "models.md").read_text()
    zoo_table = _docs.zoo_table_of(text)  # measured by the runtime: tests/unit/test_zoo.py checks it
    assert zoo_table.count("\n| `") == 48
    from npc.runtime.tools import parameter_counts

    assert text == _docs.models_markdown(zoo_table=zoo_table, count=parameter_counts), (
        "docs/models.md is stale: run `npc list --format markdown -o docs/models.md`"
    )
