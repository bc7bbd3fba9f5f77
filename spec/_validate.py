"""Validate a loaded spec: JSON Schema errors, then the semantic rules a schema cannot express.

Every rule is a generator of ``(pointer, message)``; all are collected, located in the file and sorted by
position, so one run reports every problem.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator, validators

from ..compiler import _registry as registry
from ..schemas import build_schema
from ._diagnostics import Diagnostic
from ._explain import explain
from ._source import Source, pointer_join

__all__ = ["StrictValidator", "late_problems", "validate"]

Problem = tuple[str, str]  # (JSON pointer, message)


def _is_integer(checker: Any, instance: Any) -> bool:
    return isinstance(instance, int) and not isinstance(instance, bool)


# Draft 2020-12 counts 1.0 as an integer; the emitted code would pass it on as a float (to range(), a layer's
# width, ...). npc's validators take only true integers; `=64 * 0.5` must be written `=round(64 * 0.5)`.
StrictValidator = validators.extend(
    Draft202012Validator, type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer)
)


@lru_cache(maxsize=1)
def _validator() -> Draft202012Validator:
    return StrictValidator(build_schema())


def validate(source: Source) -> list[Diagnostic]:
    late = source.late.pointers if source.late is not None else []
    # A value that reads inferred ones is still its text here: the compiler checks it once resolved.
    schema_problems = [
        problem for problem in _without_echoes(list(_schema_problems(source.data))) if not _at_any(problem[0], late)
    ]
    broken = {pointer for pointer, _ in schema_problems} | set(late)
    semantic = list(_semantic_problems(source.data, broken)) if isinstance(source.data, dict) else []
    diagnostics = [_locate(source, pointer, message, "schema") for pointer, message in _unique(schema_problems)] + [
        _locate(source, pointer, message, "semantic") for pointer, message in _unique(semantic)
    ]
    if not diagnostics:  # only a spec that is otherwise valid can be put through the compiler's graph passes
        diagnostics = [_locate(source, pointer, message, "compile") for pointer, message in _graph_problems(source)]
    return sorted(diagnostics, key=lambda d: (d.line or 0, d.col or 0, d.pointer))


def _graph_problems(source: Source) -> Iterator[Problem]:
    """What channel/stride inference finds (e.g. a neck that needs three levels getting two), so that a spec
    `npc validate` accepts also compiles. Families that validate but do not compile yet are skipped."""
    from ..compiler import CompileError, compile_graph  # the passes only: no emission, no torch
    from ._model import normalise

    spec = normalise(source.data, source.path, source.late)
    stuck = [c for c in spec.components if registry.get(c.kind, c.name).template is None]
    if stuck and source.late is not None:  # nothing would infer the values these read
        yield (
            source.late.pointers[0],
            f"reads inferred values, but {stuck[0].kind} {stuck[0].name!r} cannot be compiled",
        )
        return
    if stuck:
        return
    try:
        compile_graph(spec)
    except CompileError as exc:
        yield exc.pointer, exc.message


def _at_any(pointer: str, roots: list[str]) -> bool:
    return any(pointer == root or pointer.startswith(root + "/") for root in roots)


def late_problems(document: dict, holder: str, resolved: list[str], pending: list[str]) -> list[Problem]:
    """Problems with the values just resolved under ``holder`` (a component's pointer): schema errors at them and
    the component's own rules, in a document where they are in place and ``pending`` values are not yet."""
    problems = [p for p in _without_echoes(list(_schema_problems(document))) if _at_any(p[0], resolved)]
    if problems:
        return problems
    model = document["model"]
    kind = holder.rsplit("/", 1)[-1]
    node = model["architecture"][kind]
    return list(_component_problems(kind, node, holder, model.get("task"), set(pending)))


def _without_echoes(problems: list[Problem]) -> list[Problem]:
    """Drop what only restates another problem: a second type error on one pointer, and a "missing required
    key" whose key is the did-you-mean of an unknown key beside it (the misspelling is the one to fix)."""
    suggested = {
        (pointer.rsplit("/", 1)[0], hint)
        for pointer, message in problems
        for hint in re.findall(r"^unknown key .*; did you mean '([^']+)'", message)
    }
    kept, typed = [], set()
    for pointer, message in problems:
        missing = re.findall(r"^missing required key '([^']+)'", message)
        if missing and (pointer, missing[0]) in suggested:
            continue
        if message.startswith("expected "):
            if pointer in typed:
                continue
            typed.add(pointer)
        kept.append((pointer, message))
    return kept


def _unique(problems: list[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))


def _locate(source: Source, pointer: str, message: str, code: str) -> Diagnostic:
    line, col = source.position(pointer) or (None, None)
    return Diagnostic(source.path, pointer, message, line, col, code)


# --- schema errors, rewritten into messages a user can act on ---------------------------------------------


def _schema_problems(document: Any) -> Iterator[Problem]:
    for error in _validator().iter_errors(document):
        yield from explain(error)


# --- semantic rules ----------------------------------------------------------------------------------------


def _semantic_problems(document: dict, broken: set[str]) -> Iterator[Problem]:
    model = document.get("model")
    if not isinstance(model, dict):
        return
    task = model.get("task") if "/model/task" not in broken else None  # a bad task is reported once, by the schema
    yield from _checkpoint_problems(model)
    architecture = model.get("architecture") if isinstance(model.get("architecture"), dict) else {}
    for kind in ("backbone", "neck", "head", "full"):
        node = architecture.get(kind)
        pointer = f"/model/architecture/{kind}"
        if isinstance(node, dict) and isinstance(node.get("name"), str) and node["name"] is not None:
            yield from _component_problems(kind, node, pointer, task, broken)
    yield from _architecture_problems(architecture, task)
    losses = model.get("losses")
    for index, loss in enumerate(losses if isinstance(losses, list) else []):  # a non-list is a schema error
        if isinstance(loss, dict) and isinstance(loss.get("criterion"), str):
            yield from _loss_problems(loss, f"/model/losses/{index}", task, broken)


def _checkpoint_problems(model: dict) -> Iterator[Problem]:
    checkpoint = model.get("checkpoint")
    if isinstance(checkpoint, dict) and checkpoint.get("path") and model.get("fx_model_checkpoint"):
        yield (
            "/model/fx_model_checkpoint",
            ("only one of checkpoint.path and fx_model_checkpoint may have a value; remove one of them"),
        )
    if isinstance(checkpoint, dict) and "load_checkpoint_head" in model:
        yield "/model/load_checkpoint_head", "use checkpoint.load_head with the object form of checkpoint"


def _lookup(kind: str, name: str) -> type[registry.Component] | None:
    try:
        return registry.get(kind, name)
    except registry.UnknownComponentError:
        return None


def _component_problems(kind: str, node: dict, pointer: str, task: Any, broken: set[str]) -> Iterator[Problem]:
    cls = _lookup(kind, node["name"])
    if cls is None:
        return
    if isinstance(task, str) and task not in cls.tasks:
        yield (
            pointer_join(pointer, "name"),
            (f"{kind} {cls.name!r} does not support task {task!r} (it supports: {', '.join(cls.tasks)})"),
        )
    if any(b == pointer or b.startswith(pointer + "/") for b in broken):
        return  # its own rules assume schema-valid params
    raw = {k: v for k, v in node.items() if k != "name"} if cls.inline_params else node.get("params")
    params = cls.resolve_params(raw)
    for issue in cls.check(params, node.get("stage_params"), task if isinstance(task, str) else ""):
        yield pointer + issue.pointer, issue.message


def _architecture_problems(architecture: dict, task: Any) -> Iterator[Problem]:
    full = architecture.get("full")
    has_full = isinstance(full, dict) and full.get("name") is not None
    if has_full:
        for kind in ("backbone", "neck", "head"):
            if architecture.get(kind) is not None:
                yield (
                    f"/model/architecture/{kind}",
                    (f"a full model is given in architecture.full; remove {kind} (or set full to ~)"),
                )
        return
    head = architecture.get("head")
    if isinstance(head, dict) and isinstance(head.get("name"), str):
        cls = _lookup("head", head["name"])
        if cls is not None and getattr(cls, "requires_neck", None) and architecture.get("neck") is None:
            yield (
                "/model/architecture/head/name",
                (f"head {cls.name!r} needs a neck ({cls.requires_neck}); add architecture.neck"),
            )


def _loss_problems(loss: dict, pointer: str, task: Any, broken: set[str]) -> Iterator[Problem]:
    cls = _lookup("loss", loss["criterion"])
    if cls is None:
        return
    if isinstance(task, str) and task not in cls.tasks:
        yield (
            pointer_join(pointer, "criterion"),
            f"loss {cls.name!r} does not apply to task {task!r} (it applies to: {', '.join(cls.tasks)})",
        )
    if any(b == pointer or b.startswith(pointer + "/") for b in broken):
        return  # its own rules assume schema-valid params
    params = cls.resolve_params({k: v for k, v in loss.items() if k not in ("criterion", "weight")})
    for issue in cls.check(params, None, task if isinstance(task, str) else ""):
        yield pointer + issue.pointer, issue.message
