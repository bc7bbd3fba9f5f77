"""Compile-speed benchmark: median in-process compile time per spec, and cold `npc compile` wall time.

usage: python bench/compile_speed.py [--repeat N] [SPEC ...]   (default: every spec in examples/)
       python bench/compile_speed.py --scaling 10 100 1000     (synthetic specs with that many backbone blocks)
Prints a Markdown table for docs/benchmarks.md. Run on demand; not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from npc.compiler import compile_spec
from npc.spec import load_spec

REPO = Path(__file__).resolve().parents[1]


def in_process_ms(spec: Path, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        compile_spec(load_spec(spec))
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def cold_process_ms(spec: Path, repeat: int) -> tuple[float, bool]:
    times, torch_imported = [], False
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeat):
            start = time.perf_counter()
            result = subprocess.run(
                [sys.executable, "-X", "importtime", "-m", "npc", "compile", str(spec), "-o", f"{tmp}/m.py"],
                capture_output=True,
                text=True,
                check=True,
            )
            times.append((time.perf_counter() - start) * 1000)
            torch_imported |= any(line.rstrip().endswith("| torch") for line in result.stderr.splitlines())
    return statistics.median(times), torch_imported


def synthetic_spec(blocks: int, folder: Path) -> Path:
    """A MobileNetV4 whose single stage lists ``blocks`` rows: every row is a graph-visible block whose settings
    travel into the emitted source, so the work per block is the compiler's, not a loop in the template."""
    rows = [["conv", 16, 3, 2]] + [["uir", 16, 32, False, None, True, 3, 1]] * (blocks - 1)
    spec = {
        "model": {
            "task": "classification",
            "name": f"synthetic_{blocks}",
            "architecture": {
                "backbone": {"name": "mobilenetv4", "params": {}, "stage_params": [rows]},
                "head": {"name": "fc", "params": {"num_layers": 1}},
            },
            "losses": [{"criterion": "cross_entropy"}],
        }
    }
    path = folder / f"synthetic-{blocks}.json"
    path.write_text(json.dumps(spec))
    return path


def scaling(sizes: list[int], repeat: int) -> None:
    print("| backbone blocks | in-process compile, median ms | ms per block | emitted lines |")
    print("|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for blocks in sizes:
            spec = synthetic_spec(blocks, Path(tmp))
            warm = in_process_ms(spec, repeat)
            lines = compile_spec(load_spec(spec)).source.count("\n")
            print(f"| {blocks} | {warm:.1f} | {warm / blocks:.3f} | {lines} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("specs", nargs="*", type=Path)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--scaling", type=int, nargs="+", metavar="BLOCKS", help="synthetic specs of these sizes")
    args = parser.parse_args()
    if args.scaling:
        scaling(args.scaling, args.repeat)
        return
    specs = args.specs or sorted(p for p in (REPO / "examples").iterdir() if p.suffix in (".yaml", ".json"))
    print(
        f"Machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}, "
        f"repeat={args.repeat}\n"
    )
    print("| spec | in-process compile, median ms | cold `npc compile`, median ms | torch imported |")
    print("|---|---:|---:|---|")
    for spec in specs:
        warm = in_process_ms(spec, args.repeat)
        cold, torch_imported = cold_process_ms(spec, max(3, args.repeat // 2))
        print(f"| {spec.name} | {warm:.1f} | {cold:.0f} | {'yes' if torch_imported else 'no'} |")


if __name__ == "__main__":
    main()
