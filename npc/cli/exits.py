"""How the ``npc`` command ends: one :class:`ExitCode`, and one place that turns an error into a message and a code.

Library code raises typed errors (:class:`npc.errors.NpcError` and its subclasses, each with a
:class:`~npc.errors.Problem`); commands return an :class:`ExitCode` for outcomes that are not errors (a stale
file under ``--check``, an invalid spec under ``npc validate``). Nothing else picks an exit code.
"""

from __future__ import annotations

import os
import sys
from enum import IntEnum

from ..errors import NpcError, Problem

__all__ = ["EXTRA_MODULES", "ExitCode", "clean_message", "exit_code_for", "exit_code_of", "extra_providing", "report"]


class ExitCode(IntEnum):
    OK = 0
    INVALID = 1  # the input was read but is wrong; or, under --check, a file would change
    USAGE = 2  # the input cannot be found or read, a bad command line, a missing extra
    INTERRUPTED = 130  # SIGINT / Ctrl-C: 128 + 2
    TERMINATED = 143  # SIGTERM: 128 + 15


EXIT_FOR_PROBLEM = {Problem.INVALID: ExitCode.INVALID, Problem.UNUSABLE: ExitCode.USAGE}

# Top-level modules of the optional extras (pyproject.toml), so a command run without its extra says what to install.
EXTRA_MODULES = {
    "runtime": {
        "torch", "safetensors", "torchmetrics", "tensorboard", "sklearn", "PIL", "numpy", "pycocotools", "scipy",
        "onnx", "onnxruntime", "kornia",
    },
    "lsp": {"pygls", "lsprotocol"},
    "hf": {"datasets"},  # data.format: huggingface
    "mlflow": {"mlflow"},  # logging.mlflow: true
}  # fmt: skip


def exit_code_of(problem: Problem | None) -> ExitCode:
    """The exit code of a check's outcome: OK when there is no problem."""
    return EXIT_FOR_PROBLEM[problem] if problem is not None else ExitCode.OK


def exit_code_for(error: BaseException) -> int:
    """The exit code of an error that ended a command (a stop signal: 128 + its number, as shells report it)."""
    signal_number = getattr(error, "signal", None)
    if isinstance(signal_number, int):
        return 128 + signal_number
    if isinstance(error, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    if isinstance(error, NpcError):
        return EXIT_FOR_PROBLEM[error.problem]
    if isinstance(error, ModuleNotFoundError) and extra_providing(error.name):
        return ExitCode.USAGE
    raise error  # not the user's to fix: an internal bug keeps its traceback


def extra_providing(module: str | None) -> str | None:
    top = (module or "").split(".")[0]
    return next((extra for extra, modules in EXTRA_MODULES.items() if top in modules), None)


def report(error: BaseException, command: str) -> int:
    """Print ``error`` for the user (diagnostics, or one line naming the command) and return its exit code."""
    code = exit_code_for(error)
    prefix = f"npc {command}{_rank()}" if command else "npc"
    diagnostics = getattr(error, "diagnostics", None)
    if diagnostics is not None:  # a spec or run-config problem: located diagnostics, one per line
        from ..spec import format_text

        print(format_text(diagnostics), file=sys.stderr)
    elif isinstance(error, ModuleNotFoundError):
        extra = extra_providing(error.name)
        print(
            f"{prefix}: needs the {extra} extra (no module named {error.name.split('.')[0]!r}): "
            f"pip install 'npc[{extra}]'",
            file=sys.stderr,
        )
    elif isinstance(error, KeyboardInterrupt):
        print(f"{prefix}: interrupted", file=sys.stderr)
    else:
        print(f"{prefix}: error: {clean_message(getattr(error, 'message', None) or str(error))}", file=sys.stderr)
    return code


def _rank() -> str:
    """`` [rank N]`` in the processes torchrun starts besides rank 0, whose messages repeat or add to rank 0's."""
    rank = os.environ.get("RANK", "0")
    return f" [rank {rank}]" if os.environ.get("WORLD_SIZE", "1") != "1" and rank != "0" else ""


def clean_message(message: str) -> str:
    """A DataError raised in a DataLoader worker comes back wrapped in the worker's traceback: keep the message."""
    if "Original Traceback" in message:
        last = [line for line in message.strip().splitlines() if line.strip()][-1]
        return last.split(": ", 1)[1] if last.split(": ", 1)[0].endswith("Error") else last
    return message
