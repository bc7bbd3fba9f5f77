"""What the command modules share: the parser class, argument types, writing an output, printing diagnostics."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from .._atomic import write_atomic
from .exits import ExitCode

__all__ = [
    "Parser",
    "emit_output",
    "non_negative_int",
    "positive_float",
    "positive_int",
    "print_diagnostics",
    "probability",
]


class Parser(argparse.ArgumentParser):
    """argparse exits 2 on usage errors too; this keeps its message short and names the (sub)command."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(ExitCode.USAGE)


# --- argument types ------------------------------------------------------------------------------------------


def positive_int(text: str) -> int:
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def positive_float(text: str) -> float:
    value = _number(text, float)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def probability(text: str) -> float:
    value = _number(text, float)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text}")
    return value


def _number(text: str, kind: type):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected {'an integer' if kind is int else 'a number'}, got {text!r}"
        ) from None


# --- output ----------------------------------------------------------------------------------------------------


def emit_output(output: str, text: str) -> int:
    """``text`` to stdout (``-``) or to a file, atomically; a file that cannot be written raises AtomicWriteError,
    which the CLI reports (the previous file, if any, is intact)."""
    if output == "-":
        sys.stdout.write(text)
    else:
        write_atomic(output, text)
    return ExitCode.OK


def print_diagnostics(diagnostics, fmt: str = "text") -> None:
    from ..spec import format_json, format_text

    if fmt == "json":
        print(format_json(diagnostics))
    elif diagnostics:
        print(format_text(diagnostics), file=sys.stderr)
