"""Spec loading and validation: a JSON/YAML file in, a normalised :class:`ModelSpec` or located diagnostics out.

load (positions, duplicate keys, anchors) → validate (JSON Schema from the registry, then semantic rules) →
normalise (one internal form for both checkpoint styles). Never imports torch.
"""

from __future__ import annotations

from pathlib import Path

from ._diagnostics import Diagnostic, format_json, format_text
from ._expressions import resolve_expressions
from ._load import LoadError, Source, load_document, load_file, load_text
from ._model import Checkpoint, ComponentSpec, LossSpec, ModelSpec, normalise
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


class SpecError(Exception):
    """A spec that cannot be used; ``diagnostics`` say where and why, ``exit_code`` is 1 (invalid) or 2 (unreadable)."""

    def __init__(self, diagnostics: list[Diagnostic], exit_code: int) -> None:
        self.diagnostics, self.exit_code = diagnostics, exit_code
        super().__init__(format_text(diagnostics))


def check_file(path: str | Path) -> tuple[Source | None, list[Diagnostic], int]:
    """Load and validate one file: (source, diagnostics, exit code 0/1/2)."""
    try:
        source = load_file(path)
    except LoadError as exc:
        return None, [exc.diagnostic()], 2
    return _checked(source)


def check_text(text: str, path: str) -> tuple[Source | None, list[Diagnostic], int]:
    """:func:`check_file` for text that is not on disk (an editor's buffer); ``path``'s suffix names the form."""
    try:
        source = load_document(text, path)
    except LoadError as exc:
        return None, [exc.diagnostic()], 2
    return _checked(source)


def _checked(source: Source) -> tuple[Source, list[Diagnostic], int]:
    source, diagnostics = resolve_expressions(source)  # `vars` and "=..." formulas, before the schema sees values
    if not diagnostics:
        diagnostics = validate(source)
    return source, diagnostics, 1 if diagnostics else 0


def load_spec(path: str | Path) -> ModelSpec:
    """The normalised spec of a valid file; raises :class:`SpecError` with every diagnostic otherwise."""
    source, diagnostics, exit_code = check_file(path)
    if exit_code:
        raise SpecError(diagnostics, exit_code)
    return normalise(source.data, source.path, source.late)
