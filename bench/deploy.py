"""Deployment latency: npc's eager fp32 model, its fp32 ONNX export and its int8 ONNX export, side by side.

usage: python bench/deploy.py latency [--threads N] [--batch B] [--runs R] [ZOO_NAME ...]
       python bench/deploy.py zoo-int8 [--side S] [ZOO_NAME ...]

``latency``: each zoo config (default: a set over the families) is built with seeded random weights at its
default input size, exported by ``npc export``'s verified path, quantised with the same code as ``npc export
--quantize int8`` (calibrated on 8 seeded random images: latency does not depend on the ranges), and timed in this
process: torch eager and onnxruntime sessions at ``--threads`` intra-op threads, batch ``--batch``, the median of
``--runs`` calls after warm-up. Prints a Markdown table for docs/benchmarks.md.

``zoo-int8``: for every zoo config, whether the fp32 export quantises and the int8 file runs in onnxruntime, at a
small input (``--side``); a failure is reported with the first line of its error, which names the operator.
Prints a Markdown table for docs/deploy.md. Run on demand; not part of the test suite.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

DEFAULT = [
    "resnet18-classification",
    "resnet50-classification",
    "mobilenetv3-small-classification",
    "segformer-b0-segmentation",
    "pidnet-s-segmentation",
    "yolox-s-detection",
    "yolov9_tiny-detection",
    "rtmpose-pose_estimation",
]


def _median_ms(call, runs: int) -> float:
    for _ in range(3):  # warm-up: first calls allocate and pick kernels
        call()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def _export_pair(name: str, folder: Path, side: int | None):
    """(eager model, fp32 ONNX path, int8 ONNX path, input side) for zoo config ``name``, random seeded weights."""
    import torch

    from npc import zoo
    from npc.runtime.tools import ExportOptions, export_target
    from npc.runtime.tools.quantize import _quantize
    from npc.runtime.tools.summary import build_model, default_side, load_target

    target = load_target(zoo.path_of(name))
    side = side or default_side(target)
    fp32, int8 = folder / f"{name}.onnx", folder / f"{name}.int8.onnx"
    export_target(target, fp32, ExportOptions(input_size=(side, side)))
    generator = torch.Generator().manual_seed(0)
    _quantize(fp32, int8, [torch.randn(1, 3, side, side, generator=generator) for _ in range(8)])
    torch.manual_seed(0)
    model = build_model(target, 10).eval()
    return model, fp32, int8, side


def _session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def latency(names: list[str], threads: int, batch: int, runs: int) -> None:
    import torch

    torch.set_num_threads(threads)
    print("| config | input | eager fp32 ms | npc fp32 ONNX ms | npc int8 ONNX ms | int8 / fp32 ONNX | int8 / eager |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="npc-deploy-") as folder:
        for name in names:
            model, fp32, int8, side = _export_pair(name, Path(folder), None)
            x = torch.randn(batch, 3, side, side)
            with torch.no_grad():
                eager = _median_ms(lambda m=model, x=x: m(x), runs)
            feed = x.numpy()
            timings = []
            for path in (fp32, int8):
                session = _session(path, threads)
                inputs = {session.get_inputs()[0].name: feed}
                timings.append(_median_ms(lambda s=session, i=inputs: s.run(None, i), runs))
            onnx_fp32, onnx_int8 = timings
            print(
                f"| {name} | {batch}×3×{side}² | {eager:.1f} | {onnx_fp32:.1f} | {onnx_int8:.1f} | "
                f"{onnx_int8 / onnx_fp32:.2f} | {onnx_int8 / eager:.2f} |",
                flush=True,
            )


def zoo_int8(names: list[str], side: int) -> None:
    import numpy as np

    print("| config | int8 | note |")
    print("|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="npc-deploy-") as folder:
        for name in names:
            try:
                _, _, int8, used = _export_pair(name, Path(folder), side)
                session = _session(int8, 1)
                session.run(None, {session.get_inputs()[0].name: np.zeros((1, 3, used, used), np.float32)})
                status, note = "quantises, runs", ""
            except Exception as exc:  # noqa: BLE001 - a benchmark row, not a crash: report and go on
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                status, note = "refused", first[:160]
            print(f"| {name} | {status} | {note} |", flush=True)
            for path in Path(folder).iterdir():
                path.unlink()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("latency")
    p.add_argument("names", nargs="*", default=DEFAULT)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--runs", type=int, default=20)
    p = sub.add_parser("zoo-int8")
    p.add_argument("names", nargs="*")
    p.add_argument("--side", type=int, default=128)
    args = parser.parse_args(argv)
    if args.command == "latency":
        latency(args.names, args.threads, args.batch, args.runs)
    else:
        from npc import zoo

        zoo_int8(args.names or list(zoo.names()), args.side)
    return 0


if __name__ == "__main__":
    sys.exit(main())
