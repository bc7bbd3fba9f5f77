"""The ``npc`` command: one parser built from the command modules, one error-to-exit-code map (:mod:`.exits`).

* :mod:`.spec_commands` — validate, schema, compile, graph, diff, list, lsp (no torch)
* :mod:`.run_commands` — train, evaluate, predict
* :mod:`.tool_commands` — summary, export, check-weights
* :mod:`.fmt_commands` — migrate, fmt

User mistakes print a message (or located diagnostics) and exit 1 or 2, never with a traceback; internal bugs keep
theirs. Registering the commands imports neither torch nor the runtime: each handler imports what it needs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..errors import NpcError
from . import fmt_commands, run_commands, spec_commands, tool_commands
from .common import Parser
from .exits import ExitCode, extra_providing, report

__all__ = ["ExitCode", "SPEC_ARGUMENTS", "main"]

# Arguments that name a model spec: a zoo name (`yolox-s-detection`) works in each, wherever a path does.
SPEC_ARGUMENTS = ("spec", "old", "new", "files", "model")

# The order `npc --help` lists them in.
COMMAND_MODULES = (spec_commands, run_commands, tool_commands, fmt_commands)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return ExitCode.USAGE
    command = next((word for word in (argv if argv is not None else sys.argv[1:]) if word[:1] != "-"), "")
    try:
        _resolve_zoo_names(args)
        return args.handler(args)
    except BrokenPipeError:  # `npc ... | head`: the reader has what it wanted
        return ExitCode.OK
    except (NpcError, KeyboardInterrupt) as exc:
        return report(exc, command)
    except ModuleNotFoundError as exc:
        if extra_providing(exc.name) is None:  # not an optional dependency: an internal bug, with its traceback
            raise
        return report(exc, command)


def _resolve_zoo_names(args: argparse.Namespace) -> None:
    """Replace each spec argument that names a zoo model (and is not an existing path) by the shipped spec's path;
    ``args.zoo_names`` maps those paths back to the names, so outputs are named after the model, not the file, and
    nothing is ever written into the installed package."""
    from .. import zoo

    args.zoo_names = {}

    def resolve(text):
        if not isinstance(text, str):
            return text
        path = zoo.resolve(text)
        if str(path) != text:
            args.zoo_names[str(path)] = text
        return str(path)

    for name in SPEC_ARGUMENTS:
        value = getattr(args, name, None)
        if isinstance(value, list):
            setattr(args, name, [resolve(item) for item in value])
        elif value is not None:
            setattr(args, name, resolve(value))


def _build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = Parser(prog="npc", description="Compile NetsPresso-style model specs into standalone PyTorch source.")
    parser.add_argument("--version", action="version", version=f"npc {__version__}")
    sub = parser.add_subparsers(metavar="COMMAND", parser_class=Parser)
    for module in COMMAND_MODULES:
        module.register(sub)
    spec_commands.register_lsp(sub)
    return parser
