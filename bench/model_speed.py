"""Compiled models against NetsPresso Trainer's, side by side in one run: forward latency, training throughput, RSS.

usage: python bench/model_speed.py [--peer-python PATH] [--threads N] [--torch-compile] [CONFIG ...]

Each CONFIG (default: the issue's set of peer example configs) is compiled with ``npc compile`` and measured by
``bench/_speed_worker.py`` in a fresh process of this Python; with ``--peer-python`` (a venv holding
``netspresso-trainer``, e.g. ``pip install torch==2.14.1 torchvision==0.29.1 netspresso-trainer``), the same
config is built by the peer's own model factory. Forward latency is then timed with both models in one process of
that Python, calls interleaved (see the worker's docstring: two processes measure their heaps as much as the
models); training throughput and peak RSS still come from one fresh process per side. Every worker runs with
fixed malloc thresholds (``STEADY_MALLOC``), so page faults per forward depend on the ops, not the heap layout.
Prints a Markdown table for docs/benchmarks.md: medians, and npc/peer ratios (forward: lower is better,
throughput: higher is better). Run on demand; not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PEER_CONFIGS = REPO.parent / "shared" / "peer" / "configs" / "model"
WORKER = Path(__file__).with_name("_speed_worker.py")
DEFAULT = [
    "resnet/resnet18-classification.yaml",
    "resnet/resnet50-classification.yaml",
    "segformer/segformer-b0-segmentation.yaml",
    "pidnet/pidnet-s-segmentation.yaml",
    "yolox/yolox-s-detection.yaml",
    "rtdetr/rtdetr-res18-detection.yaml",
]
# glibc's malloc hands freed memory back to the kernel once enough is free at the top of the heap, with thresholds
# it adapts as the process runs. Whether a forward's activation buffers are handed back, and page-faulted in again
# by the next forward (1-2 ms for a small model at batch 1), then depends on where they landed on the heap, that is
# on what the process imported and allocated before: not on the model. Fixed thresholds make it depend on buffer
# sizes only, which are the same on both sides (same ops). 32 MiB is the largest mmap threshold glibc accepts.
STEADY_MALLOC = {"MALLOC_TRIM_THRESHOLD_": str(1 << 30), "MALLOC_MMAP_THRESHOLD_": str(32 << 20)}
# The input sizes NetsPresso Trainer's examples use (and ../shared/peer/results.json records).
SIZES = {"classification": 224, "segmentation": 512, "detection": 640, "pose_estimation": 256}


def input_size(config: Path) -> int:
    if "mobilevit" in config.stem:
        return 256
    task = next(task for task in SIZES if config.stem.endswith(task))
    return SIZES[task]


def run_worker(python: str, worker_args: list[str], size: int, args: argparse.Namespace) -> dict:
    command = [python, str(WORKER), *worker_args, "--size", str(size), str(size), "--threads", str(args.threads)]
    command += ["--repeat", str(args.repeat)]
    if args.forward_only:
        command.append("--forward-only")
    env = os.environ | STEADY_MALLOC
    result = subprocess.run(command, capture_output=True, text=True, timeout=3600, env=env)
    if result.returncode != 0:
        return {"error": (result.stderr.strip().splitlines() or ["?"])[-1][:160]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure_side_by_side(model_py: Path, config: Path, size: int, args: argparse.Namespace) -> tuple[dict, dict]:
    """npc's and the peer's figures: forward latency and training throughput from one paired process (timed
    alternately), peak RSS and torch.compile from one fresh process per side."""
    paired = run_worker(args.peer_python, ["--model-py", str(model_py), "--peer-config", str(config)], size, args)
    if "error" in paired:
        return paired, {}
    ours, theirs = paired["npc"], paired["peer"]
    if not args.forward_only:  # peak RSS (and torch.compile) need a process per side; throughput stays the paired one
        compile_flag = ["--torch-compile"] if args.torch_compile else []
        alone = run_worker(args.peer_python, ["--model-py", str(model_py), "--skip-forward", *compile_flag], size, args)
        ours |= {key: value for key, value in alone.items() if key not in ours}
        alone = run_worker(args.peer_python, ["--peer-config", str(config), "--skip-forward"], size, args)
        theirs |= {key: value for key, value in alone.items() if key not in theirs}
    return ours, theirs


def measure_npc_only(model_py: Path, size: int, args: argparse.Namespace) -> dict:
    compile_flag = ["--torch-compile"] if args.torch_compile else []
    return run_worker(sys.executable, ["--model-py", str(model_py), *compile_flag], size, args)


def compile_config(config: Path, folder: Path) -> Path | None:
    out = folder / f"{config.stem.replace('-', '_')}.py"
    npc = [sys.executable, "-m", "npc", "compile", str(config), "-o", str(out)]
    return out if subprocess.run(npc, capture_output=True).returncode == 0 else None


def ratio(ours: float | None, theirs: float | None) -> str:
    """npc / peer."""
    return f"{ours / theirs:.2f}" if ours and theirs else "–"


def fmt(value: float | None, digits: int = 1) -> str:
    return f"{value:,.{digits}f}" if isinstance(value, (int, float)) else "–"


def _forward_table(rows: list, args: argparse.Namespace) -> None:
    print(f"Batch 1 eager forward, {args.threads} torch thread(s), median of {args.repeat}; npc / peer.\n")
    print("| config | input | params | fwd b1 ms npc / peer | ratio | page faults per forward npc / peer |")
    print("|---|---:|---:|---:|---:|---:|")
    for stem, size, ours, theirs in rows:
        if "error" in ours:
            print(f"| {stem} | {size}² | {ours['error']} | | | |")
            continue
        peer = theirs.get("forward_ms_b1")
        faults = (
            f"{fmt(ours.get('minor_faults_per_forward_b1'), 0)} / {fmt(theirs.get('minor_faults_per_forward_b1'), 0)}"
        )
        timing = f"{fmt(ours['forward_ms_b1'])} / {fmt(peer)}"
        print(f"| {stem} | {size}² | {ours['params']:,} | {timing} | {ratio(ours['forward_ms_b1'], peer)} | {faults} |")


def _pair(ours: dict, theirs: dict, key: str) -> str:
    theirs_value = theirs.get(key) if key in theirs else None
    shown = fmt(theirs_value) if theirs_value is not None else ("fails" if "train_error" in theirs else "–")
    return f"{fmt(ours[key])} / {shown} ({ratio(ours[key], theirs_value)})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="*", type=Path)
    parser.add_argument("--peer-python", help="Python of a venv where netspresso-trainer is installed")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--torch-compile", action="store_true", help="also time torch.compile of npc's model")
    parser.add_argument("--forward-only", action="store_true", help="batch 1 forward latency only (every config)")
    parser.add_argument("--all", action="store_true", help="every peer example config instead of the default six")
    args = parser.parse_args()
    configs = args.configs or (
        sorted(PEER_CONFIGS.glob("*/*.yaml")) if args.all else [PEER_CONFIGS / name for name in DEFAULT]
    )

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for config in configs:
            size = input_size(config)
            model_py = compile_config(config, Path(tmp))
            if model_py is None:
                ours, theirs = {"error": "does not compile"}, {}
            elif args.peer_python:
                # The emitted model imports only torch, so it runs under the peer's Python too: same torch build,
                # and the ratio compares the models, not two torch releases.
                ours, theirs = measure_side_by_side(model_py, config, size, args)
            else:
                ours, theirs = measure_npc_only(model_py, size, args), {}
            rows.append((config.stem, size, ours, theirs))
            print(f"{config.stem}: npc {ours} peer {theirs}", file=sys.stderr)

    if args.forward_only:
        _forward_table(rows, args)
        return 0
    print(
        f"Machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}, "
        f"{args.threads} torch threads, CPU; both sides measured with "
        f"{'the peer venv' if args.peer_python else 'this'} Python's torch.\n"
    )
    print(
        "| model | input | params npc / peer | fwd b1 ms npc / peer (ratio) | fwd b8 ms npc / peer (ratio) "
        "| train img/s npc / peer (ratio) | peak RSS MiB npc / peer |"
        + (" torch.compile b1 ms |" if args.torch_compile else "")
    )
    print("|---|---:|---:|---:|---:|---:|---:|" + ("---:|" if args.torch_compile else ""))
    for stem, size, ours, theirs in rows:
        if "error" in ours:
            print(f"| {stem} | {size}² | {ours['error']} | | | | |" + (" |" if args.torch_compile else ""))
            continue
        cells = [
            f"{ours['params']:,} / {fmt(theirs.get('params'), 0)}",
            _pair(ours, theirs, "forward_ms_b1"),
            _pair(ours, theirs, "forward_ms_b8"),
            _pair(ours, theirs, "train_images_per_s") if "train_images_per_s" in ours else "–",
            f"{fmt(ours['peak_rss_mib'], 0)} / {fmt(theirs.get('peak_rss_mib'), 0)}",
        ]
        if args.torch_compile:
            cells.append(fmt(ours.get("compiled_forward_ms_b1")) if "compiled_error" not in ours else "fails")
        print(f"| {stem} | {size}² | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
