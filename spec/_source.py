"""What every spec reader shares: :class:`Source` (the data and where each value sits), :class:`LoadError`, JSON
pointers, and the size limits a hostile file meets. The readers are ``_load`` (YAML, JSON) and ``_text_format``
(.npc); both build on this module, which imports neither.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._diagnostics import Diagnostic

__all__ = ["MAX_DEPTH", "MAX_NODES", "MAX_SPEC_BYTES", "LazyPositions", "LoadError", "Source", "pointer_join"]

# A spec is a handful of kilobytes; refusing much larger files keeps a hostile file from exhausting memory.
MAX_SPEC_BYTES = 4 * 1024 * 1024
# Aliases can make a tiny file expand exponentially ("billion laughs"); no real spec has this many values.
MAX_NODES = 200_000
# Nesting deeper than this is never a real spec and would hit Python's recursion limit in later walks.
MAX_DEPTH = 64


class LazyPositions(Mapping[str, tuple[int, int]]):
    """Positions found only when first asked for: a valid JSON spec never needs them, and finding them means a
    second, pure-Python YAML parse of the text (json itself reports no positions) that dominates large files."""

    def __init__(self, find: Callable[[], dict[str, tuple[int, int]]]) -> None:
        self._find, self._found = find, None

    def _positions(self) -> dict[str, tuple[int, int]]:
        if self._found is None:
            self._found = self._find()
        return self._found

    def __getitem__(self, pointer: str) -> tuple[int, int]:
        return self._positions()[pointer]

    def __iter__(self) -> Iterator[str]:
        return iter(self._positions())

    def __len__(self) -> int:
        return len(self._positions())


@dataclass(frozen=True)
class Source:
    """A loaded spec: the plain data, where it came from, and where each JSON pointer sits in the text."""

    data: Any
    path: str
    positions: Mapping[str, tuple[int, int]] = field(default_factory=dict)  # pointer -> (line, col), 1-based
    # Values that read what the compiler infers (``=backbone.channels[-1]``): a ``LateValues`` from
    # ``resolve_expressions``, resolved while the compiler walks the graph; None when there are none.
    late: Any = field(default=None, compare=False)

    def position(self, pointer: str) -> tuple[int, int] | None:
        """Position of ``pointer``, or of its nearest ancestor written in the file."""
        while True:
            if pointer in self.positions:
                return self.positions[pointer]
            if not pointer:
                return None
            pointer = pointer.rsplit("/", 1)[0]


class LoadError(Exception):
    """The file cannot be read or parsed; carries the position where known."""

    def __init__(
        self, path: str, message: str, line: int | None = None, col: int | None = None, pointer: str | None = None
    ) -> None:
        self.path, self.message, self.line, self.col, self.pointer = path, message, line, col, pointer
        super().__init__(f"{pointer}: {message}" if pointer else message)

    def diagnostic(self) -> Diagnostic:
        """The error as a diagnostic (exit code 2: the file could not be read as a spec at all)."""
        code = "io" if self.line is None and self.message.startswith("cannot read") else "syntax"
        return Diagnostic(self.path, self.pointer or "", self.message, self.line, self.col, code)


def pointer_join(pointer: str, key: str | int) -> str:
    """RFC 6901: append one reference token, escaping ``~`` and ``/``."""
    token = str(key).replace("~", "~0").replace("/", "~1")
    return f"{pointer}/{token}"
