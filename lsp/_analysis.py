"""One editor buffer, checked: its text in, the diagnostics `npc validate` would print out, plus what hover,
completion and go-to-definition read (positions, the resolved document, the compiled graph).

Everything is derived from ``npc.spec.check_text`` (load → resolve expressions → validate, graph checks
included), so the editor and the CLI can never disagree. The compiled graph and the document as written are
computed only when a feature asks for them.
"""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path
from typing import Any

from ..compiler import CompileError, compile_graph
from ..compiler._plugins import PluginError
from ..spec import Diagnostic, LoadError, Source, check_text, normalise
from ..spec._load import MAX_SPEC_BYTES, load_document

__all__ = ["Analysis", "analyse", "form_of", "is_spec_text"]

SUFFIXES = {".json": "json", ".yaml": "yaml", ".yml": "yaml", ".npc": "npc"}
# A YAML or JSON document is a spec when it has a top-level `model` key; found in the text, so a buffer that does
# not parse yet still counts (YAML: `model:` at column 0; JSON: a `"model":` key anywhere, checked loosely).
_YAML_MODEL = re.compile(r"^(model|\"model\"|'model')\s*:", re.MULTILINE)
_JSON_MODEL = re.compile(r"\"model\"\s*:")


def form_of(path: str) -> str:
    return SUFFIXES.get(Path(path).suffix.lower(), "yaml")


def is_spec_text(text: str, path: str) -> bool:
    form = form_of(path)
    if form == "npc":
        return True
    return bool((_JSON_MODEL if form == "json" else _YAML_MODEL).search(text))


class Analysis:
    """The checked state of one version of a document."""

    def __init__(self, text: str, path: str, *, failure: str | None = None) -> None:
        self.text, self.path, self.form = text, path, form_of(path)
        self.lines = text.split("\n")
        self.is_spec = is_spec_text(text, path) and failure is None
        self.failure = failure  # why checking failed inside npc (a bug), shown as a diagnostic
        self.source: Source | None = None  # the document with expressions resolved (None: it did not load)
        self.diagnostics: list[Diagnostic] = []
        size = len(text.encode("utf-8", "surrogatepass"))
        if self.is_spec and size > MAX_SPEC_BYTES:  # what `npc validate` says of such a file, without reading it
            message = f"file is {size} bytes; specs are limited to {MAX_SPEC_BYTES} bytes"
            self.is_spec, self.diagnostics = False, [Diagnostic(path, "", message, None, None, "io")]
        if self.is_spec:
            try:
                self.source, self.diagnostics, _ = check_text(text, path)
            except PluginError as exc:  # an installed plugin is broken: `npc validate` says the same and stops
                self.diagnostics = [Diagnostic(path, "", f"npc: {exc}", 1, 1, "plugin")]

    @cached_property
    def written(self) -> Source | None:
        """The document as written: expressions still as their ``"=..."`` text, ``vars`` in place."""
        if not self.is_spec:
            return None
        try:
            return load_document(self.text, self.path)
        except LoadError:
            return None

    @cached_property
    def graph(self) -> Any:
        """The compiled component graph (channels and strides on its edges); None unless the spec is valid."""
        if self.source is None or self.diagnostics:
            return None
        try:
            return compile_graph(normalise(self.source.data, self.path, self.source.late))
        except (CompileError, KeyError, ValueError):  # validate() already reported why; nothing to show
            return None

    @cached_property
    def _positions(self) -> dict[str, tuple[int, int]]:
        found: dict[str, tuple[int, int]] = {}
        for source in (self.written, self.source):
            if source is not None:
                found.update(source.positions)
        return found

    def positions(self) -> dict[str, tuple[int, int]]:
        """pointer → (line, col), 1-based, of the best loaded form (``vars`` are only in the written one)."""
        return self._positions

    def pointer_at(self, line: int, col: int) -> str | None:
        """The deepest pointer whose key or value starts on ``line`` (0-based) at or before ``col``."""
        best: tuple[int, int, str] | None = None
        for pointer, (at_line, at_col) in self.positions().items():
            if at_line - 1 != line or at_col - 1 > col:
                continue
            rank = (at_col, pointer.count("/"), pointer)
            if best is None or rank > best:
                best = rank
        return best[2] if best else None


def analyse(text: str, path: str) -> Analysis:
    return Analysis(text, path)


def value_at(data: Any, pointer: str) -> Any:
    """The value at an RFC 6901 ``pointer`` in plain data; KeyError when it is not there."""
    for token in pointer.split("/")[1:] if pointer else []:
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(data, list):
            if not token.isdigit() or int(token) >= len(data):
                raise KeyError(pointer)
            data = data[int(token)]
        elif isinstance(data, dict) and token in data:
            data = data[token]
        else:
            raise KeyError(pointer)
    return data
