"""``npc list --zoo``: one row per zoo model, its parts and its size, counted by the code behind ``npc summary``.

Nothing here is typed in: each row compiles the shipped spec, builds the model on the ``meta`` device and runs it
once at its default input (:func:`npc.compiler.default_input_size`), exactly as ``npc summary NAME`` does.
``docs/models.md`` opens with this table (``npc list --format markdown -o docs/models.md``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from ... import zoo
from .summary import DEFAULT_NUM_CLASSES, load_target, summarize_target

__all__ = ["ZooRow", "zoo_json", "zoo_markdown", "zoo_rows", "zoo_table"]


@dataclass(frozen=True)
class ZooRow:
    name: str
    task: str
    backbone: str  # the family of a `full` model for one that has no backbone/neck/head
    neck: str
    head: str
    input: int  # side of the square input the figures are for
    params: int
    trainable: int
    buffers: int
    gflops: float  # FlopCounterMode's count: 2 per multiply-add, convolutions/matmuls/attention only

    @property
    def parts(self) -> str:
        return " / ".join(part for part in (self.backbone, self.neck, self.head) if part)


def zoo_rows(names: tuple[str, ...] | None = None) -> list[ZooRow]:
    return [_row(name) for name in names or zoo.names()]


def _row(name: str) -> ZooRow:
    target = load_target(zoo.path_of(name))
    summary = summarize_target(target, None, DEFAULT_NUM_CLASSES)
    family = {component.kind: component.name for component in target.spec.components}
    return ZooRow(
        name=name,
        task=summary.task,
        backbone=family.get("backbone") or family.get("full", ""),
        neck=family.get("neck", ""),
        head=family.get("head", ""),
        input=summary.input[-1],
        params=summary.params,
        trainable=summary.trainable,
        buffers=summary.buffers,
        gflops=round(summary.flops / 1e9, 2),
    )


def zoo_table(rows: list[ZooRow]) -> str:
    header = ("name", "task", "backbone / neck / head", "input", "params", "GFLOPs")
    cells = [header] + [(r.name, r.task, r.parts, str(r.input), f"{r.params:,}", f"{r.gflops:.2f}") for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    right = {3, 4, 5}  # numbers line up on the right

    def line(row) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))

    return "\n".join(line(row).rstrip() for row in cells) + "\n"


def zoo_json(rows: list[ZooRow]) -> str:
    return json.dumps([asdict(row) for row in rows], indent=2) + "\n"


def zoo_markdown(rows: list[ZooRow]) -> str:
    lines = [
        "| name | task | backbone / neck / head | input | parameters | GFLOPs |",
        "|---|---|---|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| `{r.name}` | {r.task} | {r.parts} | {r.input}² | {r.params:,} | {r.gflops:.2f} |")
    return "\n".join(lines) + "\n"
