"""int8 accuracy cost on small-width zoo backbones trained here (issue #21): train, quantise, report the drop.

usage: python bench/int8_accuracy.py [--out DIR] [NAME ...]
       python bench/int8_accuracy.py diagnose RUN_DIR

The specs are ``bench/int8_accuracy/*.yaml`` (NAME is a file's stem): one zoo family per task, shrunk so each
trains in minutes on a 2-core CPU on the built-in data (digits, shapes, stick figures). For each, this runs

    npc train bench/int8_accuracy/NAME.yaml --out DIR/NAME --no-tensorboard       (OMP_NUM_THREADS=1)
    npc export DIR/NAME --quantize int8 --max-drop none -o DIR/NAME.int8.onnx --format json

and prints one Markdown row per metric for docs/deploy.md ("Measured accuracy cost"): the validation size, the
fp32 and int8 figures on the validation split, the drop in points, the file sizes and the training's wall time.
DIR defaults to runs/int8_accuracy (ignored by git). Run it from the repository root with the venv's python.

``diagnose``: quantises an already trained run again with one group of nodes at a time left in float (besides
npc's own: output layers, Softmax) and evaluates each file as ``npc export`` does, to see where a drop comes from.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPECS = Path(os.path.relpath(Path(__file__).with_name("int8_accuracy")))


def _npc(*args: str, capture: bool = False) -> subprocess.CompletedProcess:
    """``npc ARGS`` with the venv's python; its output goes to stderr (the table is stdout) unless captured."""
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}  # see docs/runtime.md
    command = [sys.executable, "-m", "npc", *args]
    print("$ npc " + " ".join(args), file=sys.stderr, flush=True)
    output = subprocess.PIPE if capture else sys.stderr
    return subprocess.run(command, env=env, check=True, stdout=output, text=True)


def measure(name: str, out: Path) -> list[str]:
    """Train NAME, quantise its best weights; Markdown rows for docs/deploy.md."""
    run = out / name
    started = time.perf_counter()
    _npc("train", str(SPECS / f"{name}.yaml"), "--out", str(run), "--no-tensorboard")
    minutes = (time.perf_counter() - started) / 60
    report = json.loads(
        _npc(
            "export",
            str(run),
            "--quantize",
            "int8",
            "--max-drop",
            "none",
            "-o",
            f"{run}.int8.onnx",
            "--format",
            "json",
            capture=True,
        ).stdout
    )
    sizes = f"{report['fp32_bytes'] / 1e3:,.0f} KB → {report['bytes'] / 1e3:,.0f} KB"
    rows = []
    for index, metric in enumerate(report["metrics"]):
        first = [f"{name} (trained in {minutes:.1f} min)", f"{report['evaluated_images']} images"]
        rows.append(
            "| "
            + " | ".join(
                (first if index == 0 else ["", ""])
                + [
                    f"{metric} {100 * report['fp32'][metric]:.2f}%",
                    f"{100 * report['int8'][metric]:.2f}%",
                    f"{report['drop'][metric]:.2f}",
                    sizes if index == 0 else "",
                ]
            )
            + " |"
        )
    rows += [f"<!-- {note} -->" for note in report.get("notes", [])]
    return rows


def diagnose(run: Path) -> None:
    """Per node group left in float: the int8 file's validation metrics, beside fp32 and npc's own int8 file."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from npc.runtime.tools._deploy_data import build_deploy_data, data_config
    from npc.runtime.tools.export import ExportOptions, export_target
    from npc.runtime.tools.quantize import (
        USES,
        _calibration_images,
        _float_only_nodes,
        _prepared,
        _quiet_root_logger,
        _Reader,
        _stamp_int8,
        evaluate_onnx,
    )
    from npc.runtime.tools.summary import load_target

    target = load_target(run)
    data = build_deploy_data(data_config(run, target, None, use="to calibrate int8 on"), ("train", "valid"), why=USES)
    images = _calibration_images(data, 256, 0)  # npc export's defaults: 256 images, seed 0
    with tempfile.TemporaryDirectory(prefix="npc-int8-diagnose-") as folder:
        fp32 = Path(folder) / "model.fp32.onnx"
        side = tuple(images[0].shape[-2:])
        export_target(target, fp32, ExportOptions(input_size=side), weights=run / "best.safetensors")
        prepared = _prepared(fp32)
        model = onnx.load(str(prepared))
        own = [name for name, _ in _float_only_nodes(model)]
        print(f"| left in float, besides npc's own ({len(own)} nodes) | nodes | " + " | ".join(_metrics(run)) + " |")
        print("|---|---:|" + "---:|" * len(_metrics(run)))
        print(_row("none: the fp32 file", "", evaluate_onnx(fp32, data, target, 32), run))
        for group, nodes in _groups(model).items():
            if not nodes and group != "nothing more (npc's int8 file)":
                continue
            int8 = Path(folder) / "model.int8.onnx"
            with _quiet_root_logger():
                quantize_static(  # npc export's settings (runtime/tools/quantize.py::_quantize)
                    str(prepared),
                    str(int8),
                    _Reader(model.graph.input[0].name, images),
                    quant_format=QuantFormat.QDQ,
                    per_channel=True,
                    activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax,
                    nodes_to_exclude=own + nodes,
                )
            _stamp_int8(int8, len(images), 0, [])
            print(_row(group, str(len(nodes)), evaluate_onnx(int8, data, target, 32), run), flush=True)


def _groups(model) -> dict[str, list[str]]:
    nodes = model.graph.node
    producers = {name: node for node in nodes for name in node.output}

    def silu(node) -> bool:  # Mul(x, Sigmoid(x)) and its Sigmoid
        if node.op_type == "Sigmoid":
            return any(n.op_type == "Mul" and node.input[0] in n.input and node.output[0] in n.input for n in nodes)
        gate = [producers.get(i) for i in node.input]
        return node.op_type == "Mul" and any(
            g is not None and g.op_type == "Sigmoid" and g.input[0] in node.input for g in gate
        )

    def grouped(node) -> bool:
        return node.op_type == "Conv" and next((a.i for a in node.attribute if a.name == "group"), 1) > 1

    def part(name: str) -> list[str]:
        return [n.name for n in nodes if f"/model/{name}/" in n.name]

    return {
        "nothing more (npc's int8 file)": [],
        "the backbone": part("backbone"),
        "the neck": part("neck"),
        "the head": part("head"),
        "the head's box branch (`reg_` modules)": [n.name for n in nodes if "/head/reg_" in n.name],
        "depthwise (grouped) convs": [n.name for n in nodes if grouped(n)],
        "SiLU (Mul(x, Sigmoid(x)))": [n.name for n in nodes if silu(n)],
        "Concat, Resize, MaxPool, Slice": [
            n.name for n in nodes if n.op_type in {"Concat", "Resize", "MaxPool", "Slice"}
        ],
    }


def _metrics(run: Path) -> list[str]:
    from npc.runtime.engine import METRICS
    from npc.spec.run_config import load_run_config

    return list(METRICS[load_run_config(run / "resolved.yaml").spec.task])


def _row(group: str, count: str, metrics: dict, run: Path) -> str:
    figures = [f"{100 * metrics[m]:.2f}%" if metrics.get(m) is not None else "-" for m in _metrics(run)]
    return f"| {group} | {count} | " + " | ".join(figures) + " |"


def main() -> int:
    if sys.argv[1:2] == ["diagnose"]:
        parser = argparse.ArgumentParser(description="int8 drop per node group left in float")
        parser.add_argument("run", type=Path)
        diagnose(parser.parse_args(sys.argv[2:]).run)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/int8_accuracy"))
    parser.add_argument("names", nargs="*", default=sorted(p.stem for p in SPECS.glob("*.yaml")))
    args = parser.parse_args()
    print("| run | validation | fp32 | int8 | drop (points) | file size fp32 → int8 |")
    print("|---|---|---|---|---|---|")
    for name in args.names:
        print("\n".join(measure(name, args.out)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
