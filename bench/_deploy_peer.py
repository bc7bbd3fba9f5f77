"""Deploy latency side by side, under NetsPresso Trainer's Python: the peer's eager model and ONNX file against npc's.

Runs in the peer's venv (``bench/deploy.py peer --peer-python PATH`` calls it) and imports nothing from npc: npc's
fp32 and int8 ONNX files were written beforehand by ``npc export``, and only onnxruntime runs them here.

1. The peer's model is built by its own ``build_model`` (``_speed_worker.build_peer``: the example config, random
   weights, ``--num-classes``), then ``deploy()`` (the RepVGG-style re-parameterisation its training pipeline runs
   before export; every peer ``TaskModel`` has it).
2. Its fp32 ONNX file is written by its own ``netspresso_trainer.utils.onnx.save_onnx`` with the opset of its
   default logging config, as ``pipelines/train.py``'s ``save_best`` does: under the peer venv's torch, whatever
   exporter ``torch.onnx.export`` defaults to there (recorded in the output).
3. For each thread count and batch: the peer's eager model (``torch.no_grad``) and one onnxruntime session per ONNX
   file (the same session options for every file) are timed in this one process, calls alternating round by round
   (even rounds in the listed order, odd rounds reversed), so the machine's background load falls on every path
   alike. Medians in ms, plus the 1/5/15-minute load averages at the start and end of each block.

Prints one JSON object on its last stdout line. Run on demand; never in the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _speed_worker import build_peer  # noqa: E402 - a sibling module, found through the line above

PEER_OPSET = 13  # logging.model_save_options.onnx_export_opset in the peer's default config/logging.yaml


def export_peer(model: torch.nn.Module, path: Path, size: int) -> dict:
    from netspresso_trainer.utils.onnx import save_onnx  # only in the peer's venv

    started = time.perf_counter()
    save_onnx(model, path, torch.randn(1, 3, size, size), PEER_OPSET)
    import onnx

    proto = onnx.load(str(path))
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    data = path.with_name(path.name + ".data")  # the torch.onnx exporter may write the weights beside the graph
    size = path.stat().st_size + (data.stat().st_size if data.exists() else 0)
    return {"seconds": round(time.perf_counter() - started, 1), "opset": opset, "bytes": size}


def session(path: str, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def timed_block(model, files: dict[str, str], size: int, batch: int, threads: int, runs: int, warmup: int) -> dict:
    """Median ms per path, calls alternating round by round."""
    torch.set_num_threads(threads)
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(batch))
    feed = x.numpy()
    calls = {}
    if model is not None:

        def eager(m=model, x=x):
            with torch.no_grad():
                m(x)

        calls["peer eager"] = eager
    for name, path in files.items():
        s = session(path, threads)
        inputs = {s.get_inputs()[0].name: feed}
        calls[name] = lambda s=s, i=inputs: s.run(None, i)
    errors = {}
    for name, call in list(calls.items()):
        try:
            for _ in range(max(warmup, 1)):
                call()
        except Exception as exc:  # noqa: BLE001 - e.g. a file that fixed the batch size it was traced at
            errors[name] = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:300]}"
            del calls[name]
    load_before = os.getloadavg()
    times: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    for round_index in range(runs):
        for name in names if round_index % 2 == 0 else reversed(names):
            started = time.perf_counter()
            calls[name]()
            times[name].append((time.perf_counter() - started) * 1000)
    return {
        "ms": {name: statistics.median(values) for name, values in times.items()},
        "runs": runs,
        "errors": errors,
        "load": [round(v, 2) for v in (*load_before, *os.getloadavg())],
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--peer-config", required=True)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--num-classes", type=int, required=True)
    parser.add_argument("--file", action="append", default=[], help="NAME=PATH of an ONNX file to time (npc's)")
    parser.add_argument("--peer-onnx", required=True, help="where to write the peer's ONNX file")
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    parser.add_argument("--batches", type=int, nargs="+", default=[1])
    parser.add_argument("--runs", type=int, nargs="+", default=[7], help="runs per batch (one value, or one each)")
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build_peer(args.peer_config, args.num_classes).eval()
    if hasattr(model, "deploy"):  # every TaskModel; a full model (PIDNet) has none, and the peer exports it as is
        model.deploy()
    result: dict = {"params": sum(p.numel() for p in model.parameters()), "torch": torch.__version__}
    result["deploy"] = hasattr(model, "deploy")
    try:
        result["peer_export"] = export_peer(model, Path(args.peer_onnx), args.size)
        files = {"peer onnx": args.peer_onnx}
    except Exception as exc:  # noqa: BLE001 - report it; the other paths still stand
        result["peer_export"] = {"error": f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:160]}"}
        files = {}
    files |= dict(item.split("=", 1) for item in args.file)
    runs = dict(zip(args.batches, args.runs * len(args.batches) if len(args.runs) == 1 else args.runs, strict=True))
    blocks = {}
    for threads in args.threads:
        for batch in args.batches:
            key = f"t{threads}_b{batch}"
            blocks[key] = timed_block(model, files, args.size, batch, threads, runs[batch], args.warmup)
            print(key, json.dumps(blocks[key]), file=sys.stderr, flush=True)
    result["blocks"] = blocks
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
