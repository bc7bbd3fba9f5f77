"""The ``npc`` command. Exit codes: 0 success, 1 invalid spec (or stale/different output), 2 usage error or
unreadable/malformed file. User mistakes print diagnostics, never a traceback; internal bugs still do.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from ._atomic import AtomicWriteError, write_atomic

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 on usage errors too; keep its message short
        self.print_usage(sys.stderr)
        print(f"npc: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


# Arguments that name a model spec: a zoo name (`yolox-s-detection`) works in each, wherever a path does.
SPEC_ARGUMENTS = ("spec", "old", "new", "files", "model")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_USAGE
    from .zoo import ZooError

    try:
        _resolve_zoo_names(args)
    except ZooError as exc:
        print(f"npc: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from .compiler._plugins import PluginError

    try:
        return args.handler(args)
    except PluginError as exc:  # an installed plugin is broken: name it; its author can act on this
        print(f"npc: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return EXIT_OK
    except KeyboardInterrupt:
        print("npc: interrupted", file=sys.stderr)
        return 130
    except ModuleNotFoundError as exc:
        extra = _extra_providing(exc.name)
        if extra is None:  # not an optional dependency: an internal bug, which keeps its traceback
            raise
        command = next((word for word in (argv if argv is not None else sys.argv[1:]) if word[:1] != "-"), "")
        print(
            f"npc {command}: needs the {extra} extra (no module named {exc.name.split('.')[0]!r}): "
            f"pip install 'npc[{extra}]'",
            file=sys.stderr,
        )
        return EXIT_USAGE


# Top-level modules of the optional extras (pyproject.toml), so a command run without its extra says what to install.
EXTRA_MODULES = {
    "runtime": {
        "torch", "safetensors", "torchmetrics", "tensorboard", "sklearn", "PIL", "numpy", "pycocotools", "scipy",
        "onnx", "onnxruntime", "kornia",
    },
    "lsp": {"pygls", "lsprotocol"},
}  # fmt: skip


def _extra_providing(module: str | None) -> str | None:
    top = (module or "").split(".")[0]
    return next((extra for extra, modules in EXTRA_MODULES.items() if top in modules), None)


def _resolve_zoo_names(args: argparse.Namespace) -> None:
    """Replace each spec argument that names a zoo model (and is not an existing path) by the shipped spec's path;
    ``args.zoo_names`` maps those paths back to the names, so outputs are named after the model, not the file, and
    nothing is ever written into the installed package."""
    from . import zoo

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
    from . import __version__

    parser = _Parser(prog="npc", description="Compile NetsPresso-style model specs into standalone PyTorch source.")
    parser.add_argument("--version", action="version", version=f"npc {__version__}")
    sub = parser.add_subparsers(metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("validate", help="check spec files and report every problem with its location")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(handler=_validate)

    p = sub.add_parser("schema", help="print (or write) the model-spec JSON Schema")
    p.add_argument("-o", "--output", default="-", help="file to write ('-' for stdout)")
    p.set_defaults(handler=_schema)

    p = sub.add_parser("compile", help="compile a spec into a standalone PyTorch module")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("target", nargs="?", metavar="MODEL_PY", help="with --check: the committed file to compare")
    p.add_argument("-o", "--output", default=None, help="file to write ('-' for stdout; default: <spec>.py)")
    p.add_argument("--num-classes", type=_positive_int, default=None, help="bake a default into build_model()")
    p.add_argument("--check", action="store_true", help="exit 1 if MODEL_PY differs from what SPEC compiles to")
    p.add_argument(
        "--fuse",
        action="store_true",
        help="also emit model.fuse(): BatchNorm folded into the convs, for inference (call after loading weights)",
    )
    p.add_argument(
        "--provenance",
        metavar="MAP_JSON",
        help="also write a map from module path (state_dict prefix) to spec pointer, line and template",
    )
    p.add_argument(
        "--print-spec", action="store_true", help="print SPEC's text instead (a zoo model's spec, to copy and edit)"
    )
    p.set_defaults(handler=_compile)

    p = sub.add_parser("graph", help="print the component graph, or draw it: -o graph.svg|png|pdf|dot|mmd")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--format", choices=("dot", "mermaid", "json"), default=None, help="text form (default: dot)")
    p.add_argument(
        "-o",
        "--output",
        default="-",
        help="file to write; .svg/.png/.pdf (needs Graphviz), .dot/.gv, .mmd: an annotated picture (see docs/tools.md)",
    )
    p.add_argument("--no-params", action="store_true", help="pictures: no parameter counts (does not import torch)")
    p.set_defaults(handler=_graph)

    p = sub.add_parser("diff", help="show how the emitted source changes between two specs")
    p.add_argument("old", metavar="A")
    p.add_argument("new", metavar="B")
    p.set_defaults(handler=_diff)

    p = sub.add_parser("list", help="list the registered components, or the zoo models (--zoo)")
    p.add_argument("--kind", choices=("backbone", "neck", "head", "full", "loss"), default=None)
    p.add_argument(
        "--zoo",
        action="store_true",
        help="the shipped zoo models: task, parts, parameters and GFLOPs at the default input (needs npc[runtime])",
    )
    p.add_argument(
        "--format",
        choices=("table", "json", "markdown"),
        default="table",
        help="markdown without --zoo: the full reference written to docs/models.md",
    )
    p.add_argument("-o", "--output", default="-")
    p.set_defaults(handler=_list)

    from .runtime import commands as runtime_commands  # train / evaluate / predict (torch imported lazily)

    runtime_commands.register(sub)
    p = sub.add_parser("migrate", help="rewrite older NetsPresso model configs into the current form")
    p.add_argument("files", nargs="+", metavar="FILE")
    where = p.add_mutually_exclusive_group()
    where.add_argument("-i", "--in-place", action="store_true", help="rewrite each file (default: print to stdout)")
    where.add_argument("--check", action="store_true", help="exit 1 if a file would change; write nothing")
    p.set_defaults(handler=_migrate)

    from .spec import _fmt_command  # npc fmt: canonical layout and conversion between .npc, YAML and JSON

    _fmt_command.register(sub)
    p = sub.add_parser("lsp", help="language server for editors (LSP over stdio): diagnostics, hover, completion")
    p.set_defaults(handler=_lsp)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


# --- output -------------------------------------------------------------------------------------------------


def _emit_output(output: str, text: str) -> int:
    if output == "-":
        sys.stdout.write(text)
        return EXIT_OK
    try:
        write_atomic(output, text)
    except AtomicWriteError as exc:
        print(f"npc: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def _print_diagnostics(diagnostics, fmt: str = "text") -> None:
    from .spec import format_json, format_text

    if fmt == "json":
        print(format_json(diagnostics))
    elif diagnostics:
        print(format_text(diagnostics), file=sys.stderr)


# --- commands -------------------------------------------------------------------------------------------------


def _validate(args: argparse.Namespace) -> int:
    from .spec import check_file

    all_diagnostics, worst = [], EXIT_OK
    for file in args.files:
        _, diagnostics, code = check_file(file)
        all_diagnostics += diagnostics
        worst = max(worst, code)
        if args.format == "text" and not diagnostics:
            print(f"{file}: ok")
    _print_diagnostics(all_diagnostics, args.format)
    if args.format == "text" and all_diagnostics:
        print(f"{len(all_diagnostics)} problem(s) in {len(args.files)} file(s)", file=sys.stderr)
    return worst


def _schema(args: argparse.Namespace) -> int:
    from .schemas import render_schema

    return _emit_output(args.output, render_schema())


def _with_compiled(spec_path: str, action: Callable, *, num_classes: int | None = None, fuse: bool = False) -> int:
    """Load, validate and compile ``spec_path``, then run ``action(compiled)``; errors become diagnostics."""
    from .compiler import CompileError, compile_spec, sha256_of
    from .spec import Diagnostic, check_file, normalise

    source, diagnostics, code = check_file(spec_path)
    if code:
        _print_diagnostics(diagnostics)
        return code
    try:
        spec = normalise(source.data, spec_path, source.late)
        compiled = compile_spec(spec, num_classes=num_classes, spec_sha256=sha256_of(spec_path), fuse=fuse)
    except CompileError as exc:
        line, col = source.position(exc.pointer) or (None, None)
        _print_diagnostics([Diagnostic(spec_path, exc.pointer, exc.message, line, col, "compile")])
        return EXIT_INVALID
    return action(compiled)


def _compile(args: argparse.Namespace) -> int:
    if args.print_spec:
        return _print_spec(args.spec)

    def write(compiled) -> int:
        if args.check:
            return _check_generated(args, compiled.source)
        output = args.output or _default_module_path(args)
        code = _emit_output(output, compiled.source)
        if code == EXIT_OK and output != "-":
            print(f"wrote {output}", file=sys.stderr)
        if code == EXIT_OK and args.provenance:
            code = _write_provenance(args.spec, compiled.graph, args.provenance)
        return code

    return _with_compiled(args.spec, write, num_classes=args.num_classes, fuse=args.fuse)


def _default_module_path(args: argparse.Namespace) -> str:
    """``<spec>.py`` beside the spec; for a zoo model, ``<name>.py`` in the current folder."""
    name = args.zoo_names.get(args.spec)
    return f"{name}.py" if name else str(Path(args.spec).with_suffix(".py"))


def _print_spec(spec_path: str) -> int:
    try:
        sys.stdout.write(Path(spec_path).read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError) as exc:
        print(f"{spec_path}: cannot read file: {getattr(exc, 'strerror', None) or exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def _write_provenance(spec_path: str, graph, output: str) -> int:
    import json

    from .compiler._provenance import provenance_map
    from .spec import check_file

    source, _, _ = check_file(spec_path)  # for the lines; it just compiled, so it loads
    modules = provenance_map(graph, source.position if source else None)
    code = _emit_output(output, json.dumps({"spec": spec_path, "modules": modules}, indent=2) + "\n")
    if code == EXIT_OK and output != "-":
        print(f"wrote {output}", file=sys.stderr)
    return code


def _check_generated(args: argparse.Namespace, expected: str) -> int:
    target = args.target or args.output
    if not target:
        print("npc: error: --check needs the generated file: npc compile --check SPEC MODEL_PY", file=sys.stderr)
        return EXIT_USAGE
    try:
        current = Path(target).read_text(encoding="utf-8")
    except OSError as exc:
        print(f"npc: cannot read {target}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    if current == expected:
        print(f"{target}: up to date")
        return EXIT_OK
    diff = difflib.unified_diff(current.splitlines(True), expected.splitlines(True), target, f"{args.spec} (compiled)")
    sys.stdout.writelines(diff)
    print(f"{target} is stale: run `npc compile {args.spec} -o {target}`", file=sys.stderr)
    return EXIT_INVALID


PICTURE_SUFFIXES = (".svg", ".png", ".pdf", ".dot", ".gv", ".mmd")


def _graph(args: argparse.Namespace) -> int:
    from .compiler import _views

    if args.format is None and args.output != "-" and Path(args.output).suffix.lower() in PICTURE_SUFFIXES:
        return _with_compiled(args.spec, lambda compiled: _draw(args, compiled.graph))
    render = {"dot": _views.to_dot, "mermaid": _views.to_mermaid, "json": _views.to_json}[args.format or "dot"]
    return _with_compiled(args.spec, lambda compiled: _emit_output(args.output, render(compiled.graph)))


def _draw(args: argparse.Namespace, graph) -> int:
    from .compiler._pictures import PictureError, write_graph

    try:
        write_graph(graph, args.output, counts=None if args.no_params else _parameter_counts(graph))
    except PictureError as exc:
        print(f"npc graph: error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    print(f"wrote {args.output}", file=sys.stderr)
    return EXIT_OK


def _parameter_counts(graph, num_classes: int = 10) -> dict[str, int] | None:
    """Parameters per graph node, counted by the runtime; None without torch (pictures then omit the counts)."""
    try:
        from .runtime._summary import parameter_counts
    except ImportError:
        return None
    return parameter_counts(graph, num_classes=num_classes)


def _migrate(args: argparse.Namespace) -> int:
    from ruamel.yaml.error import YAMLError

    from .spec._migrate import migrate_text

    if not args.in_place and not args.check and len(args.files) > 1:
        print("npc migrate: several files need --in-place (or --check)", file=sys.stderr)
        return EXIT_USAGE
    worst = EXIT_OK
    for file in args.files:
        try:
            text = Path(file).read_text(encoding="utf-8-sig")
            migrated, changes = migrate_text(text, file)
        except (OSError, UnicodeDecodeError) as exc:
            print(f"{file}: cannot read file: {getattr(exc, 'strerror', None) or exc}", file=sys.stderr)
            worst = EXIT_USAGE
            continue
        except YAMLError as exc:
            print(f"{file}: invalid YAML: {str(exc).splitlines()[0]} (run npc validate {file})", file=sys.stderr)
            worst = EXIT_USAGE
            continue
        for change in changes:
            where = f"{file}:{change.line}" if change.line else file
            print(f"{where}: {change.pointer}: {change.message}", file=sys.stderr)
        if not changes:
            print(f"{file}: already current", file=sys.stderr)
        if args.check:
            worst = max(worst, EXIT_INVALID if changes else EXIT_OK)
        elif args.in_place and file in args.zoo_names:
            print(f"{args.zoo_names[file]}: a zoo model is part of npc; to change it: npc migrate NAME > my.yaml")
            worst = EXIT_USAGE
        elif args.in_place and changes:
            try:
                write_atomic(file, migrated)
            except AtomicWriteError as exc:
                print(f"npc: {exc}", file=sys.stderr)
                worst = EXIT_USAGE
        else:
            sys.stdout.write(migrated)
    return worst


def _diff(args: argparse.Namespace) -> int:
    sources: list[str] = []
    for spec in (args.old, args.new):
        code = _with_compiled(spec, lambda compiled: sources.append(compiled.source) or EXIT_OK)
        if code:
            return code
    old = _strip_header(sources[0])
    new = _strip_header(sources[1])
    labels = [args.zoo_names.get(spec, spec) for spec in (args.old, args.new)]
    sys.stdout.writelines(difflib.unified_diff(old, new, *labels))
    if old == new:
        print("no difference in the emitted source", file=sys.stderr)
        return EXIT_OK
    return EXIT_INVALID


def _strip_header(source: str) -> list[str]:
    """The emitted lines without the provenance header (npc version, spec file, spec sha256): it differs between
    two spec files even when they compile to the same code."""
    lines = source.splitlines(True)
    body = next((i for i, line in enumerate(lines) if not line.startswith("#")), len(lines))
    return lines[body:]


def _lsp(args: argparse.Namespace) -> int:
    try:
        from .lsp._server import serve  # pygls is the `lsp` extra: import it only for this command
    except ImportError as exc:
        missing = (exc.name or "pygls").split(".")[0]
        print(f"npc lsp: needs the lsp extra ({missing} is missing): pip install 'npc[lsp]'", file=sys.stderr)
        return EXIT_USAGE
    return serve()


def _list(args: argparse.Namespace) -> int:
    import json

    from .compiler import registry

    if args.zoo or args.format == "markdown":
        return _list_zoo(args)
    components = registry.list_components(args.kind)
    if args.format == "json":
        listed = [
            {"kind": c.kind, "name": c.name, "compiles": bool(c.template), "tasks": list(c.tasks), "from": c.origin}
            for c in components
        ]
        return _emit_output(args.output, json.dumps(listed, indent=2) + "\n")
    rows = [("kind", "name", "compiles", "tasks", "from")]
    for cls in components:
        rows.append((cls.kind, cls.name, "yes" if cls.template else "no", ",".join(cls.tasks), cls.origin))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    table = "".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() + "\n" for row in rows)
    return _emit_output(args.output, table)


def _list_zoo(args: argparse.Namespace) -> int:
    """The zoo table (or, with --format markdown and no --zoo, the whole docs/models.md): the figures come from
    building every zoo model, so this needs the runtime extra."""
    try:
        from .runtime._zoo_table import zoo_json, zoo_markdown, zoo_rows, zoo_table
    except ImportError as exc:
        print(
            f"npc list: {exc}: measuring the zoo needs the runtime extra: pip install 'npc[runtime]'", file=sys.stderr
        )
        return EXIT_USAGE
    from .compiler import _docs

    rows = zoo_rows()
    if not args.zoo:
        reference = _docs.models_markdown(zoo_table=zoo_markdown(rows), count=_parameter_counts)
        return _emit_output(args.output, reference)
    render = {"table": zoo_table, "json": zoo_json, "markdown": zoo_markdown}[args.format]
    return _emit_output(args.output, render(rows))
