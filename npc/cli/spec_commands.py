"""The commands on specs, none of which needs torch: ``validate``, ``schema``, ``compile``, ``graph``, ``diff``,
``list`` and ``lsp`` (``list --zoo`` and the parameter counts of ``graph`` pictures use the runtime when present).
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Callable
from pathlib import Path

from .common import emit_output, positive_int, print_diagnostics
from .exits import ExitCode, exit_code_of

__all__ = ["register", "register_lsp"]


def register(sub) -> None:
    _register_validate(sub)
    _register_schema(sub)
    _register_compile(sub)
    _register_graph(sub)
    _register_diff(sub)
    _register_list(sub)


def _register_validate(sub) -> None:
    p = sub.add_parser("validate", help="check spec files and report every problem with its location")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(handler=_validate)


def _register_schema(sub) -> None:
    p = sub.add_parser("schema", help="print (or write) the model-spec JSON Schema")
    p.add_argument("-o", "--output", default="-", help="file to write ('-' for stdout)")
    p.set_defaults(handler=_schema)


def _register_compile(sub) -> None:
    p = sub.add_parser("compile", help="compile a spec into a standalone PyTorch module")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("target", nargs="?", metavar="MODEL_PY", help="with --check: the committed file to compare")
    p.add_argument("-o", "--output", default=None, help="file to write ('-' for stdout; default: <spec>.py)")
    p.add_argument("--num-classes", type=positive_int, default=None, help="bake a default into build_model()")
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


def _register_graph(sub) -> None:
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


def _register_diff(sub) -> None:
    p = sub.add_parser("diff", help="show how the emitted source changes between two specs")
    p.add_argument("old", metavar="A")
    p.add_argument("new", metavar="B")
    p.set_defaults(handler=_diff)


def _register_list(sub) -> None:
    p = sub.add_parser("list", help="list the registered components, or the zoo models (--zoo)")
    p.add_argument("--kind", choices=("backbone", "neck", "head", "full", "loss"), default=None)
    p.add_argument(
        "--zoo",
        action="store_true",
        help="the shipped zoo models: task, parts, parameters and GFLOPs at the default input (needs npc[runtime])",
    )
    p.add_argument(
        "--format",
        choices=("text", "json", "markdown"),
        default="text",
        help="markdown without --zoo: the full reference written to docs/models.md",
    )
    p.add_argument("-o", "--output", default="-")
    p.set_defaults(handler=_list)


def register_lsp(sub) -> None:
    p = sub.add_parser("lsp", help="language server for editors (LSP over stdio): diagnostics, hover, completion")
    p.set_defaults(handler=_lsp)


def _validate(args: argparse.Namespace) -> int:
    from ..spec import check_file

    all_diagnostics, worst = [], ExitCode.OK
    for file in args.files:
        _, diagnostics, problem = check_file(file)
        all_diagnostics += diagnostics
        worst = max(worst, exit_code_of(problem))
        if args.format == "text" and not diagnostics:
            print(f"{file}: ok")
    print_diagnostics(all_diagnostics, args.format)
    if args.format == "text" and all_diagnostics:
        print(f"{len(all_diagnostics)} problem(s) in {len(args.files)} file(s)", file=sys.stderr)
    return worst


def _schema(args: argparse.Namespace) -> int:
    from ..schemas import render_schema

    return emit_output(args.output, render_schema())


def _with_compiled(spec_path: str, action: Callable, *, num_classes: int | None = None, fuse: bool = False) -> int:
    """Load, validate and compile ``spec_path``, then run ``action(compiled)``; errors become diagnostics."""
    from ..compiler import CompileError, compile_spec, sha256_of
    from ..spec import Diagnostic, check_file, normalise

    source, diagnostics, problem = check_file(spec_path)
    if problem:
        print_diagnostics(diagnostics)
        return exit_code_of(problem)
    try:
        spec = normalise(source.data, spec_path, source.late)
        compiled = compile_spec(spec, num_classes=num_classes, spec_sha256=sha256_of(spec_path), fuse=fuse)
    except CompileError as exc:
        line, col = source.position(exc.pointer) or (None, None)
        print_diagnostics([Diagnostic(spec_path, exc.pointer, exc.message, line, col, "compile")])
        return ExitCode.INVALID
    return action(compiled)


def _compile(args: argparse.Namespace) -> int:
    if args.print_spec:
        return _print_spec(args.spec)

    def write(compiled) -> int:
        if args.check:
            return _check_generated(args, compiled.source)
        output = args.output or _default_module_path(args)
        code = emit_output(output, compiled.source)
        if code == ExitCode.OK and output != "-":
            print(f"wrote {output}", file=sys.stderr)
        if code == ExitCode.OK and args.provenance:
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
        return ExitCode.USAGE
    return ExitCode.OK


def _write_provenance(spec_path: str, graph, output: str) -> int:
    import json

    from ..compiler._provenance import provenance_map
    from ..spec import check_file

    source, _, _ = check_file(spec_path)  # for the lines; it just compiled, so it loads
    modules = provenance_map(graph, source.position if source else None)
    code = emit_output(output, json.dumps({"spec": spec_path, "modules": modules}, indent=2) + "\n")
    if code == ExitCode.OK and output != "-":
        print(f"wrote {output}", file=sys.stderr)
    return code


def _check_generated(args: argparse.Namespace, expected: str) -> int:
    target = args.target or args.output
    if not target:
        print("npc: error: --check needs the generated file: npc compile --check SPEC MODEL_PY", file=sys.stderr)
        return ExitCode.USAGE
    try:
        current = Path(target).read_text(encoding="utf-8")
    except OSError as exc:
        print(f"npc: cannot read {target}: {exc.strerror or exc}", file=sys.stderr)
        return ExitCode.USAGE
    if current == expected:
        print(f"{target}: up to date")
        return ExitCode.OK
    diff = difflib.unified_diff(current.splitlines(True), expected.splitlines(True), target, f"{args.spec} (compiled)")
    sys.stdout.writelines(diff)
    print(f"{target} is stale: run `npc compile {args.spec} -o {target}`", file=sys.stderr)
    return ExitCode.INVALID


PICTURE_SUFFIXES = (".svg", ".png", ".pdf", ".dot", ".gv", ".mmd")


def _graph(args: argparse.Namespace) -> int:
    from ..compiler import _views

    if args.format is None and args.output != "-" and Path(args.output).suffix.lower() in PICTURE_SUFFIXES:
        return _with_compiled(args.spec, lambda compiled: _draw(args, compiled.graph))
    render = {"dot": _views.to_dot, "mermaid": _views.to_mermaid, "json": _views.to_json}[args.format or "dot"]
    return _with_compiled(args.spec, lambda compiled: emit_output(args.output, render(compiled.graph)))


def _draw(args: argparse.Namespace, graph) -> int:
    from ..compiler._pictures import write_graph

    write_graph(graph, args.output, counts=None if args.no_params else _parameter_counts(graph))
    print(f"wrote {args.output}", file=sys.stderr)
    return ExitCode.OK


def _parameter_counts(graph, num_classes: int = 10) -> dict[str, int] | None:
    """Parameters per graph node, counted by the runtime; None without torch (pictures then omit the counts)."""
    try:
        from ..runtime.tools import parameter_counts
    except ImportError:
        return None
    return parameter_counts(graph, num_classes=num_classes)


def _diff(args: argparse.Namespace) -> int:
    sources: list[str] = []
    for spec in (args.old, args.new):
        code = _with_compiled(spec, lambda compiled: sources.append(compiled.source) or ExitCode.OK)
        if code:
            return code
    old = _strip_header(sources[0])
    new = _strip_header(sources[1])
    labels = [args.zoo_names.get(spec, spec) for spec in (args.old, args.new)]
    sys.stdout.writelines(difflib.unified_diff(old, new, *labels))
    if old == new:
        print("no difference in the emitted source", file=sys.stderr)
        return ExitCode.OK
    return ExitCode.INVALID


def _strip_header(source: str) -> list[str]:
    """The emitted lines without the provenance header (npc version, spec file, spec sha256): it differs between
    two spec files even when they compile to the same code."""
    lines = source.splitlines(True)
    body = next((i for i, line in enumerate(lines) if not line.startswith("#")), len(lines))
    return lines[body:]


def _lsp(args: argparse.Namespace) -> int:
    from ..lsp._server import serve  # pygls is the `lsp` extra: without it, the CLI says to install it

    return serve()


def _list(args: argparse.Namespace) -> int:
    import json

    from ..compiler import registry

    if args.zoo or args.format == "markdown":
        return _list_zoo(args)
    components = registry.list_components(args.kind)
    if args.format == "json":
        listed = [
            {"kind": c.kind, "name": c.name, "compiles": bool(c.template), "tasks": list(c.tasks), "from": c.origin}
            for c in components
        ]
        return emit_output(args.output, json.dumps(listed, indent=2) + "\n")
    rows = [("kind", "name", "compiles", "tasks", "from")]
    for cls in components:
        rows.append((cls.kind, cls.name, "yes" if cls.template else "no", ",".join(cls.tasks), cls.origin))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    table = "".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() + "\n" for row in rows)
    return emit_output(args.output, table)


def _list_zoo(args: argparse.Namespace) -> int:
    """The zoo table (or, with --format markdown and no --zoo, the whole docs/models.md): the figures come from
    building every zoo model, so this needs the runtime extra."""
    from ..compiler import _docs
    from ..runtime.tools.zoo_table import zoo_json, zoo_markdown, zoo_rows, zoo_table  # the runtime extra

    rows = zoo_rows()
    if not args.zoo:
        reference = _docs.models_markdown(zoo_table=zoo_markdown(rows), count=_parameter_counts)
        return emit_output(args.output, reference)
    render = {"text": zoo_table, "json": zoo_json, "markdown": zoo_markdown}[args.format]
    return emit_output(args.output, render(rows))
