"""Diagnostics: one record per problem, with its JSON pointer and file position, and the two reporters."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass

__all__ = ["Diagnostic", "format_json", "format_text"]


@dataclass(frozen=True)
class Diagnostic:
    file: str
    pointer: str  # RFC 6901 JSON pointer into the spec document ("" is the whole document)
    message: str
    line: int | None = None
    col: int | None = None
    code: str = "spec"  # "schema", "semantic", "syntax", "io"
    severity: str = "error"

    def location(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.col is not None:
                where += f":{self.col}"
        return where

    def __str__(self) -> str:
        # Syntax and I/O errors concern the text, not a value: they name a pointer only when one is known.
        located = self.pointer or self.code not in ("syntax", "io")
        pointer = f" {self.pointer or '/'}:" if located else ""
        return f"{self.location()}:{pointer} {self.message}"


def format_text(diagnostics: Iterable[Diagnostic]) -> str:
    return "\n".join(str(d) for d in diagnostics)


def format_json(diagnostics: Iterable[Diagnostic]) -> str:
    return json.dumps([asdict(d) for d in diagnostics], indent=2)
