"""``npc fmt``: canonical formatting of a spec, and lossless conversion between its JSON, YAML and .npc forms.

    npc fmt FILE...                       rewrite each file in its canonical layout (in place)
    npc fmt FILE --to json|yaml|npc       convert; written to stdout unless -o OUT
    npc fmt FILE... --check               exit 1 if a file (or OUT) is not what fmt would write

Every conversion keeps the document: loading the output gives the same data, key order included. Comments
survive .npc → .npc and YAML → YAML (ruamel's round trip), and YAML → .npc carries them along; JSON has none,
and .npc/JSON → YAML and anything → JSON drop them. YAML anchors are expanded outside YAML → YAML. fmt never
evaluates expressions: ``"=..."`` strings and ``vars`` are copied as they are.

Exit codes: 0 done (or, with --check, nothing to change), 1 --check found a file to reformat, 2 usage error or a
file that cannot be read or parsed.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

from .._atomic import AtomicWriteError, write_atomic
from ..spec import LoadError
from ..spec.convert import FORMATS, convert, form_of
from .exits import ExitCode, report

__all__ = ["register"]


def register(subparsers) -> None:
    p = subparsers.add_parser("migrate", help="rewrite older NetsPresso model configs into the current form")
    p.add_argument("files", nargs="+", metavar="FILE")
    where = p.add_mutually_exclusive_group()
    where.add_argument("-i", "--in-place", action="store_true", help="rewrite each file (default: print to stdout)")
    where.add_argument("--check", action="store_true", help="exit 1 if a file would change; write nothing")
    p.set_defaults(handler=_migrate)

    p = subparsers.add_parser(
        "fmt",
        help="format a spec canonically, or convert it between JSON, YAML and .npc",
        description="Rewrite spec files in their canonical layout, or convert one to another form (--to). "
        "The document never changes: the output loads to the same data, key order included.",
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--to", choices=FORMATS, help="convert to this form (default: the file's own form)")
    p.add_argument("-o", "--output", help="file to write ('-' for stdout); default: in place, or stdout with --to")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file would change")
    p.set_defaults(handler=_fmt)


# ---- the command ----------------------------------------------------------------------------------------


def _fmt(args: argparse.Namespace) -> int:
    if args.output and len(args.files) > 1:
        print("npc: error: -o/--output takes one FILE", file=sys.stderr)
        return ExitCode.USAGE
    if args.check and args.to and not args.output and any(form_of(f) != args.to for f in args.files):
        print("npc: error: --check with --to compares with a file: give it with -o OUT", file=sys.stderr)
        return ExitCode.USAGE
    worst = ExitCode.OK
    for file in args.files:
        worst = max(worst, _fmt_one(file, args))
    return worst


def _fmt_one(file: str, args: argparse.Namespace) -> int:
    source_form = form_of(file)
    target_form = args.to or source_form
    try:
        text = Path(file).read_text(encoding="utf-8-sig")
        output = convert(text, file, target_form)
    except OSError as exc:
        print(f"npc: cannot read {file}: {exc.strerror or exc}", file=sys.stderr)
        return ExitCode.USAGE
    except UnicodeDecodeError as exc:
        print(f"{file}: not UTF-8 text (byte {exc.start})", file=sys.stderr)
        return ExitCode.USAGE
    except LoadError as exc:
        print(exc.diagnostic(), file=sys.stderr)
        return ExitCode.USAGE
    except ValueError as exc:  # a document the target form cannot hold (a .npc file needs a top-level mapping)
        print(f"{file}: cannot write as {target_form}: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    in_place = target_form == source_form and file not in getattr(args, "zoo_names", {})  # never into the package
    destination = args.output or (file if in_place else "-")
    if args.check:
        return _check(file, destination, text, output)
    if destination == "-":
        sys.stdout.write(output)
        return ExitCode.OK
    current = text if destination == file else _read_or_none(destination)
    if current != output:
        try:
            write_atomic(destination, output)
        except AtomicWriteError as exc:  # reported here: the other files still get formatted
            return report(exc, "fmt")
        print(f"{'reformatted' if destination == file else 'wrote'} {destination}", file=sys.stderr)
    return ExitCode.OK


def _check(file: str, destination: str, text: str, output: str) -> int:
    current = text if destination in (file, "-") else _read_or_none(destination)
    if current == output:
        return ExitCode.OK
    shown = destination if destination != "-" else file
    sys.stdout.writelines(difflib.unified_diff((current or "").splitlines(True), output.splitlines(True), shown, shown))
    print(f"would reformat {shown}", file=sys.stderr)
    return ExitCode.INVALID


def _read_or_none(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError:
        return None


# ---- conversion -----------------------------------------------------------------------------------------


def _migrate(args: argparse.Namespace) -> int:
    from ruamel.yaml.error import YAMLError

    from ..spec._migrate import migrate_text

    if not args.in_place and not args.check and len(args.files) > 1:
        print("npc migrate: several files need --in-place (or --check)", file=sys.stderr)
        return ExitCode.USAGE
    worst = ExitCode.OK
    for file in args.files:
        try:
            text = Path(file).read_text(encoding="utf-8-sig")
            migrated, changes = migrate_text(text, file)
        except (OSError, UnicodeDecodeError) as exc:
            print(f"{file}: cannot read file: {getattr(exc, 'strerror', None) or exc}", file=sys.stderr)
            worst = ExitCode.USAGE
            continue
        except YAMLError as exc:
            print(f"{file}: invalid YAML: {str(exc).splitlines()[0]} (run npc validate {file})", file=sys.stderr)
            worst = ExitCode.USAGE
            continue
        for change in changes:
            where = f"{file}:{change.line}" if change.line else file
            print(f"{where}: {change.pointer}: {change.message}", file=sys.stderr)
        if not changes:
            print(f"{file}: already current", file=sys.stderr)
        if args.check:
            worst = max(worst, ExitCode.INVALID if changes else ExitCode.OK)
        elif args.in_place and file in args.zoo_names:
            print(f"{args.zoo_names[file]}: a zoo model is part of npc; to change it: npc migrate NAME > my.yaml")
            worst = ExitCode.USAGE
        elif args.in_place and changes:
            try:
                write_atomic(file, migrated)
            except AtomicWriteError as exc:  # reported here: the other files still get migrated
                worst = max(worst, report(exc, "migrate"))
        else:
            sys.stdout.write(migrated)
    return worst
