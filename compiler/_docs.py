"""``docs/models.md``, generated from the registry (``npc list --format markdown -o docs/models.md``).

Every family section lists its parameters with their defaults, its tasks and the example specs in ``examples/``
(YAML and JSON) that use it, each with its parameter count at ``num_classes=10`` and the input size it is meant
for. The counts come from building the compiled model on torch's ``meta`` device (see
:func:`._pictures.parameter_counts`), so torch is imported only while the examples are counted, never when the
compiler is imported; without torch, or where the examples folder is not beside the package (an installed
wheel), the counts or the example lists are left out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from . import _registry as registry

__all__ = ["EXAMPLES_DIR", "Example", "example_specs", "models_markdown"]

HEADER = """# Components

Generated from the component registry by `npc list --format markdown -o docs/models.md`; do not edit by hand.
"Compiles" says whether `npc compile` can emit the family today; every family validates.
Each family lists the example specs in [`examples/`](../examples) that use it, with the parameter count of the
compiled model at `num_classes=10` and the input size the example is meant for.
"""

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"
COUNT_NUM_CLASSES = 10
# The input sizes NetsPresso Trainer's examples are measured at, used unless a spec's data section says otherwise.
TASK_INPUT_SIZE = {"classification": 224, "segmentation": 512, "detection": 640, "pose_estimation": 256}
# Families that need another size: MobileViT unfolds its stride-32 map into 2x2 patches, so 224 (7x7) does not work.
FAMILY_INPUT_SIZE = {("backbone", "mobilevit"): 256}


@dataclass(frozen=True)
class Example:
    """One example spec: which families it uses and what its compiled model weighs."""

    file: str  # name inside examples/
    name: str  # model.name
    task: str
    families: tuple[tuple[str, str], ...]  # (kind, name) of every component and loss the spec names
    input_size: int  # square input side the example is meant for
    params: int | None  # at num_classes=10; None without torch or when the family does not compile yet


def example_specs(directory: Path = EXAMPLES_DIR) -> list[Example]:
    """The valid YAML/JSON specs in ``directory``, by file name (invalid ones are the example tests' business)."""
    from ..spec import check_file, normalise  # the compiler never imports the spec package at module level

    examples = []
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.json")]):
        source, _, exit_code = check_file(path)
        if exit_code:
            continue
        spec = normalise(source.data, source.path, source.late)
        families = tuple(
            [(c.kind, c.name) for c in spec.components] + [("loss", loss.criterion) for loss in spec.losses]
        )
        examples.append(
            Example(
                file=path.name,
                name=spec.name,
                task=spec.task,
                families=families,
                input_size=_input_size(source.data, spec.task, families),
                params=_parameter_count(spec),
            )
        )
    return examples


def _input_size(document: dict, task: str, families: tuple[tuple[str, str], ...]) -> int:
    """The data section's image size (a spec with a training section but no data trains on npc's digits), else
    the size its families need, else the task's usual size."""
    if "data" in document or "training" in document:
        from ..runtime._config import resolve_data  # torch-free: resolves the data section as `npc train` does

        return int(resolve_data(document.get("data"))["image_size"])
    sizes = [FAMILY_INPUT_SIZE[f] for f in families if f in FAMILY_INPUT_SIZE]
    return max(sizes, default=TASK_INPUT_SIZE[task])


def _parameter_count(spec) -> int | None:
    """None while a family of the spec does not compile yet, or without torch."""
    from . import CompileError, compile_graph
    from ._pictures import parameter_counts

    if not all(registry.get(c.kind, c.name).template for c in spec.components):
        return None
    try:
        graph = compile_graph(spec)
    except (CompileError, registry.BuildError):
        return None
    counts = parameter_counts(graph, num_classes=COUNT_NUM_CLASSES)
    return counts["total"] if counts else None


def _value(value) -> str:
    return "`" + json.dumps(value) + "`"


def _param_rows(cls: type[registry.Component]) -> list[str]:
    rows = []
    for key, schema in cls.params.items():
        allowed = schema.get("enum")
        detail = f" One of {', '.join(_value(v) for v in allowed)}." if allowed else ""
        rows.append(f"| `{key}` | {_value(schema.get('default'))} | {schema.get('description', '')}{detail} |")
    return rows


def _example_rows(cls: type[registry.Component], examples: list[Example]) -> list[str]:
    using = [e for e in examples if (cls.kind, cls.name) in e.families]
    if not using:
        return []
    rows = [
        "",
        f"Examples (parameters at `num_classes={COUNT_NUM_CLASSES}`):",
        "",
        "| example | model | task | input | parameters |",
        "|---|---|---|---|---|",
    ]
    for e in using:
        params = f"{e.params:,}" if e.params is not None else "n/a"
        rows.append(
            f"| [`{e.file}`](../examples/{e.file}) | `{e.name}` | {e.task} | {e.input_size}×{e.input_size} | {params} |"
        )
    return rows


def models_markdown(*, examples_dir: Path = EXAMPLES_DIR) -> str:
    examples = example_specs(examples_dir) if examples_dir.is_dir() else []
    lines = [HEADER, "| kind | name | compiles | tasks | summary |", "|---|---|---|---|---|"]
    for cls in registry.list_components():
        compiles = "yes" if cls.template else "no"
        lines.append(
            f"| {cls.kind} | [`{cls.name}`](#{cls.kind}-{cls.name}) | {compiles} | "
            f"{', '.join(cls.tasks)} | {cls.summary()} |"
        )
    for cls in registry.list_components():
        lines += ["", f"## {cls.kind} `{cls.name}`", f'<a id="{cls.kind}-{cls.name}"></a>', "", cls.summary(), ""]
        compiles = "" if cls.kind == "loss" else f" Compiles: {'yes' if cls.template else 'no (validates only)'}."
        lines += [f"Tasks: {', '.join(cls.tasks)}.{compiles}", ""]
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
        lines += _example_rows(cls, examples)
    return "\n".join(lines) + "\n"
