"""``npc summary`` and ``npc export``: see and ship a compiled model.

Registering imports neither torch nor the tools; handlers import what they need when they run. User mistakes
print a message (or located spec diagnostics) and return 1 (invalid, or a failed verification) or 2 (a missing
file, a missing optional package, a bad command line); never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import UNUSABLE
from ..runtime.errors import RunError
from .common import positive_int
from .exits import ExitCode

__all__ = ["register"]


def register(subparsers) -> None:
    _register_summary(subparsers)
    _register_check_weights(subparsers)
    _register_export(subparsers)


def _register_summary(subparsers) -> None:
    p = subparsers.add_parser(
        "summary",
        help="per component and backbone stage: output shape, parameters, FLOPs",
        description="Build SPEC (or a compiled model.py) and run it once on a zero image: output shape, "
        "parameters, trainable parameters, FLOPs and MACs per graph node, and the totals.",
    )
    p.add_argument("spec", metavar="SPEC", help="model spec, a compiled model.py, or a run folder")
    p.add_argument(
        "--input-size",
        nargs=2,
        type=positive_int,
        metavar=("H", "W"),
        help="input image size (default: 224 classification, 512 segmentation, 640 detection, 256 pose)",
    )
    p.add_argument("--num-classes", type=positive_int, default=10, help="class count to build for (default: 10)")
    p.add_argument("--format", choices=("text", "json"), default="text", help="a table, or JSON")
    p.set_defaults(handler=_summary)


def _register_check_weights(subparsers) -> None:
    p = subparsers.add_parser(
        "check-weights",
        help="would WEIGHTS load into SPEC's model with strict=True? each mismatch located in the spec",
        description="Compare the tensor names and shapes of a weights file with the model compiled from SPEC "
        "(or a compiled model.py): missing, unexpected and shape-mismatched keys, each with the spec pointer of "
        "the component that owns it. Reads no tensor data. Exit 0 when strict loading would succeed, else 1.",
    )
    p.add_argument("spec", metavar="SPEC", help="model spec, or a compiled model.py")
    p.add_argument("weights", metavar="WEIGHTS", help=".safetensors, or a .pth/.pt state dict")
    p.add_argument("--num-classes", type=positive_int, help="default: inferred from the weights' head shapes")
    head = p.add_mutually_exclusive_group()
    head.add_argument("--no-head", action="store_true", help="leave head.* out (default: the spec's load_head)")
    head.add_argument("--head", action="store_true", help="compare head.* too, whatever the spec's load_head says")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(handler=_check_weights)


def _register_export(subparsers) -> None:
    p = subparsers.add_parser(
        "export",
        help="export a model with its weights to ONNX, torch.export or torch.fx, verified against eager",
        description="Build SPEC (or a compiled model.py, or an npc train run folder), load the weights strictly, "
        "export, load the result back and compare it with the eager model: on the first validation images of the "
        "run's data (or --data), else on a random input. Only a verified file is written (atomically).",
    )
    p.add_argument("spec", metavar="SPEC", help="model spec, a compiled model.py, or a run folder")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="file to write")
    p.add_argument("--weights", metavar="W", help=".safetensors or .pth state dict (run folder: best.safetensors)")
    p.add_argument(
        "--to",
        dest="file_format",
        choices=("onnx", "exported-program", "fx"),
        default=None,
        help="the file's form (as `npc fmt --to`); default: from OUT's suffix (.onnx, .pt2, .pt), else onnx",
    )
    p.add_argument(
        "--input-size",
        nargs=2,
        type=positive_int,
        metavar=("H", "W"),
        help="input image size (default: 224 classification, 512 segmentation, 640 detection)",
    )
    p.add_argument(
        "--num-classes",
        type=positive_int,
        help="default: what the weights record, else what their shapes imply (10 without --weights)",
    )
    p.add_argument("--opset", type=positive_int, default=None, help="ONNX opset (default: 17)")
    p.add_argument(
        "--dynamic-batch",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="leave the batch dimension free (default: yes)",
    )
    p.add_argument("--fuse", action="store_true", help="fold BatchNorm into the conv before it first")
    p.add_argument(
        "--exporter",
        choices=("torchscript", "dynamo"),
        default="torchscript",
        help="ONNX exporter: torch.onnx's TorchScript-based one (default) or the torch.export-based one "
        "(needs onnxscript)",
    )
    p.add_argument("--atol", type=float, default=1e-4, help="verification tolerance, absolute (default: 1e-4)")
    p.add_argument("--rtol", type=float, default=1e-4, help="verification tolerance, relative (default: 1e-4)")
    p.add_argument(
        "--quantize",
        choices=("int8",),
        help="int8: onnxruntime static QDQ quantisation (per-channel weights), calibrated on the training split, "
        "evaluated against fp32 on the validation split; ONNX only",
    )
    p.add_argument(
        "--calibration",
        type=positive_int,
        default=None,
        metavar="N",
        help="int8: calibration images from the training split (default: 256, or the whole split if smaller)",
    )
    p.add_argument(
        "--max-drop",
        type=_max_drop,
        default=1.0,
        metavar="POINTS",
        help="int8: refuse (exit 1, no file) when a metric drops by more than this many points (default: 1); "
        "'none' writes anyway",
    )
    p.add_argument(
        "--data",
        metavar="FILE",
        help="YAML/JSON with a data: section: its first validation images verify the export, and int8 calibrates "
        "and evaluates on it (default: a run folder's data; int8 also the spec's)",
    )
    p.add_argument("--format", choices=("text", "json"), default="text", help="the report: text or JSON")
    p.set_defaults(handler=_export)


def _max_drop(text: str) -> float | None:
    if text.lower() == "none":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of points or 'none', got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


# --- summary -----------------------------------------------------------------------------------------------------


def _summary(args: argparse.Namespace) -> int:
    from ..runtime.tools.summary import load_target, summarize_target

    target = load_target(args.spec)
    summary = summarize_target(target, args.input_size, args.num_classes)
    if args.format == "json":
        sys.stdout.write(summary.to_json())
        return ExitCode.OK
    _print_summary(summary)
    return ExitCode.OK


def _count(value: int) -> str:
    return f"{value:,}"


def _flops(value: int) -> str:
    for unit, size in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= size:
            return f"{value / size:.2f} {unit}"
    return str(value)


def _print_summary(summary) -> None:
    from rich.console import Console
    from rich.table import Table

    from ..runtime.tools.summary import format_shape

    console = Console()
    if not console.is_terminal:  # piped or captured: rich would assume 80 columns and squeeze the shapes
        console = Console(width=120)
    shape = "×".join(str(d) for d in summary.input)
    title = f"{summary.name} ({summary.task or 'model.py'}) · input {shape} · {summary.num_classes} classes"
    table = Table(title=title, title_justify="left", show_footer=True)
    table.add_column("node", footer="total")
    table.add_column("component")
    table.add_column("output shape")
    table.add_column("params", justify="right", footer=_count(summary.params))
    table.add_column("trainable", justify="right", footer=_count(summary.trainable))
    table.add_column("FLOPs", justify="right", footer=_flops(summary.flops))
    table.add_column("MACs", justify="right", footer=_flops(summary.macs))
    table.add_row("input", "", shape, "", "", "", "")
    for row in summary.rows:
        indent = "  " * row.depth
        table.add_row(
            indent + row.node,
            row.label,
            format_shape(row.output),
            _count(row.params),
            _count(row.trainable),
            _flops(row.flops),
            _flops(row.flops // 2),
            style="dim" if row.depth else None,
        )
    console.print(table)
    console.print(f"buffers: {_count(summary.buffers)} · ran on: {summary.ran_on}", highlight=False)
    for note in summary.notes:
        console.print(f"note: {note}", highlight=False)


# --- check-weights -----------------------------------------------------------------------------------------------


def _check_weights(args: argparse.Namespace) -> int:
    import json

    from ..runtime.tools.check_weights import check_shapes, read_shapes
    from ..runtime.tools.summary import load_target

    target = load_target(args.spec)
    shapes, metadata = read_shapes(args.weights)
    spec = target.spec
    load_head = not args.no_head and (args.head or spec is None or spec.checkpoint.load_head)
    recorded = metadata.get("num_classes")
    num_classes = args.num_classes or (int(recorded) if recorded else None)
    remap = dict(spec.checkpoint.remap_keys) if spec is not None else {}
    report = check_shapes(target, shapes, load_head=load_head, num_classes=num_classes, remap=remap)
    if args.format == "json":
        record = {
            "spec": args.spec,
            "weights": args.weights,
            "num_classes": report.num_classes,
            "strict_ok": report.strict_ok,
            "matched": report.matched,
            "skipped_head": report.skipped_head,
            "remapped": report.remapped,
            "problems": [
                {
                    "key": p.key,
                    "kind": p.kind,
                    "pointer": p.pointer,
                    "file_shape": p.file_shape,
                    "model_shape": p.model_shape,
                }
                for p in report.problems
            ],
        }
        print(json.dumps(record, indent=2))
        return ExitCode.OK if report.strict_ok else ExitCode.INVALID
    print(f"{args.weights} vs {args.spec} (num_classes={report.num_classes}): {report.matched} tensors match")
    if report.remapped:
        print(f"  {report.remapped} key(s) renamed by the spec's checkpoint.remap_keys")
    if report.skipped_head:
        print(f"  {report.skipped_head} head tensor(s) left out (load_head is false)")
    by_owner: dict[str, list] = {}
    for problem in report.problems:
        by_owner.setdefault(problem.pointer, []).append(problem)
    for pointer, problems in by_owner.items():
        print(f"{pointer or '(no component)'}:")
        for problem in problems:
            print(f"  {problem.describe()}")
    counts = report.counts()
    if report.strict_ok:
        print("strict=True loading would succeed")
        return ExitCode.OK
    summary = ", ".join(f"{n} {kind}" for kind, n in counts.items() if n)
    print(f"strict=True loading would fail: {summary}")
    return ExitCode.INVALID


# --- export ------------------------------------------------------------------------------------------------------


_SUFFIX_FORMATS = {".onnx": "onnx", ".pt2": "exported-program", ".pt": "fx"}


def _export(args: argparse.Namespace) -> int:
    from ..runtime.tools.export import DEFAULT_OPSET, ExportOptions, export_path

    path, weights = Path(args.spec), args.weights
    if path.is_dir() and weights is None:  # an npc train run folder: its model.py and best.safetensors
        weights = str(path / "best.safetensors")
    fmt = args.file_format or _SUFFIX_FORMATS.get(Path(args.output).suffix.lower(), "onnx")
    if args.opset is not None and fmt != "onnx":
        raise RunError("--opset applies to --to onnx only", UNUSABLE)
    if args.exporter != "torchscript" and fmt != "onnx":
        raise RunError("--exporter applies to --to onnx only", UNUSABLE)
    if not (args.atol >= 0 and args.rtol >= 0):
        raise RunError("--atol and --rtol must be >= 0", UNUSABLE)
    options = ExportOptions(
        format=fmt,
        input_size=tuple(args.input_size) if args.input_size else None,
        opset=args.opset or DEFAULT_OPSET,
        dynamic_batch=args.dynamic_batch,
        fuse=args.fuse,
        exporter=args.exporter,
        atol=args.atol,
        rtol=args.rtol,
    )
    if args.quantize:
        return _export_int8(args, path, options, weights)
    if args.calibration:
        raise RunError("--calibration: apply to --quantize int8 only", UNUSABLE)
    report = export_path(path, args.output, options, weights=weights, num_classes=args.num_classes, data=args.data)
    if args.format == "json":
        sys.stdout.write(report.to_json())
        return ExitCode.OK
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    batch = "dynamic batch" if report.dynamic_batch else "fixed batch"
    print(f"wrote {report.output} ({report.format}, {report.bytes:,} bytes, {batch}, {report.num_classes} classes)")
    print(
        f"verified with {report.verified_with} on {report.verified_on}: "
        f"max abs diff {report.max_abs_diff:.3g}, max rel diff {report.max_rel_diff:.3g} "
        f"(tolerance {report.atol:g} + {report.rtol:g}·max|eager|)"
    )
    for name, shape in report.outputs.items():
        print(f"  {name}: {'×'.join(map(str, shape))}")
    return ExitCode.OK


def _export_int8(args: argparse.Namespace, path: Path, options, weights: str | None) -> int:
    from ..runtime.tools.quantize import DEFAULT_CALIBRATION, QuantizeOptions, quantize_path

    if options.format != "onnx":
        raise RunError("--quantize int8 writes ONNX only (give an .onnx output or --to onnx)", UNUSABLE)
    if options.fuse:
        raise RunError("--quantize int8 folds BatchNorm itself; leave out --fuse", UNUSABLE)
    quantize = QuantizeOptions(
        calibration=args.calibration or DEFAULT_CALIBRATION, max_drop=args.max_drop, data=args.data
    )
    report = quantize_path(path, args.output, options, quantize, weights=weights, num_classes=args.num_classes)
    if args.format == "json":
        sys.stdout.write(report.to_json())
        return ExitCode.OK
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    print(
        f"wrote {report.output} (int8 QDQ ONNX, {report.bytes:,} bytes; fp32 {report.fp32_bytes:,}), calibrated on "
        f"{report.calibration_images} training image(s) of {report.data}"
    )
    print(f"fp32 file verified on {report.export_verified_on}: max abs diff {report.export_max_abs_diff:.3g}")
    print(f"validation ({report.evaluated_images} images)   fp32      int8      drop")
    for name in report.metrics:
        print(
            f"  {name:<28} {100 * report.fp32[name]:7.2f}%  {100 * (report.int8[name] or 0):7.2f}%  "
            f"{report.drop[name]:+.2f} points"
        )
    return ExitCode.OK
