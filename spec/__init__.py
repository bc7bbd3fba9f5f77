"""Spec loading and validation: a JSON/YAML file in, a normalised :class:`ModelSpec` or located diagnostics out.

load (positions, duplicate keys, anchors) → validate (JSON Schema from the registry, then semantic rules) →
normalise (one internal form for both checkpoint styles). Never imports torch.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import INVALID, UNUSABLE, NpcError, Problem
from ._diagnostics import Diagnostic, format_json, format_text
from ._expressions import resolve_expressions
from ._load import load_document, load_file, load_text
from ._model import Checkpoint, ComponentSpec, LossSpec, ModelSpec, normalise
from ._source import LoadError, Source
from ._validate import validate

__all__ = [
    "Checkpoint",
    "ComponentSpec",
    "Diagnostic",
    "LoadError",
    "LossSpec",
    "ModelSpec",
    "Source",
    "SpecError",
    "check_file",
    "check_text",
    "format_json",
    "format_text",
    "load_file",
    "load_spec",
    "load_text",
    "normalise",
    "resolve_expressions",
    "validate",
]


class SpecError(NpcError):
    """A spec that cannot be used; ``diagnostics`` say where and why. ``problem`` is INVALID (it loads but breaks a
    rule) or UNUSABLE (it cannot be read or parsed)."""

    def __init__(self, diagnostics: list[Diagnostic], problem: Problem) -> None:
        self.diagnostics = diagnostics
        super().__init__(format_text(diagnostics), problem)


Checked = tuple[Source | None, list[Diagnostic], Problem | None]


def check_file(path: str | Path) -> Checked:
    """Load and validate one file: (source, diagnostics, problem); the problem is None for a valid spec, UNUSABLE
    for one that cannot be read or parsed (no source then), INVALID for one that breaks a rule."""
    try:
        source = load_file(path)
    except LoadError as exc:
        return None, [exc.diagnostic()], UNUSABLE
    return _checked(source)


def check_text(text: str, path: str) -> Checked:
    """:func:`check_file` for text that is not on disk (an editor's buffer); ``path``'s suffix names the form."""
    try:
        source = load_document(text, path)
    except LoadError as exc:
        return None, [exc.diagnostic()], UNUSABLE
    return _checked(source)


def _checked(source: Source) -> Checked:
    source, diagnostics = resolve_expressions(source)  # `vars` and "=..." formulas, before the schema sees values
    if not diagnostics:
        diagnostics = validate(source)
    return source, diagnostics, INVALID if diagnostics else None


def load_spec(path: str | Path) -> ModelSpec:
    """The normalised spec of a valid file; raises :class:`SpecError` with every diagnostic otherwise."""
    source, diagnostics, problem = check_file(path)
    if problem:
        raise SpecError(diagnostics, problem)
    return normalise(source.data, source.path, source.late)
