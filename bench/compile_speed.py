"""Compile-speed benchmark: median in-process compile time per spec, and cold `npc compile` wall time.

usage: python bench/compile_speed.py [--repeat N] [SPEC ...]   (default: every spec in examples/)
Prints a Markdown table for docs/benchmarks.md. Run on demand; not part of the test suite.
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("specs", nargs="*", type=Path)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
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
