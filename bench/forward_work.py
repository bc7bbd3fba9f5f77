"""How much work one forward does, counted rather than timed: npc's compiled model against NetsPresso Trainer's.

usage: /work/peer-venv/bin/python bench/forward_work.py MODEL_PY CONFIG [MODEL_PY CONFIG ...]

MODEL_PY is what ``npc compile CONFIG`` wrote. Run it under a Python where netspresso-trainer is installed. For
each pair it prints one Markdown row: nn.Module calls, Python function calls (cProfile) and aten op calls
(torch.profiler) in one batch-1 eval forward. Counts do not depend on the machine's load, so they settle whether a
latency gap is Python-side overhead in the emitted code (the counts differ) or something outside the model (they
match; see ``_speed_worker.py`` on page faults). Run on demand; not part of the test suite.
"""

from __future__ import annotations

import cProfile
import pstats
import sys
from pathlib import Path

import torch
from torch import nn
from torch.nn.modules.module import register_module_forward_pre_hook

sys.path.insert(0, str(Path(__file__).parent))
from _speed_worker import build_npc, build_peer  # noqa: E402 - a sibling script, not a package

SIZES = {"classification": 224, "segmentation": 512, "detection": 640, "pose_estimation": 256}


def module_calls(model: nn.Module, x: torch.Tensor) -> int:
    calls = 0

    def count(module: nn.Module, inputs: tuple) -> None:
        nonlocal calls
        calls += 1

    handle = register_module_forward_pre_hook(count)
    try:
        model(x)
    finally:
        handle.remove()
    return calls


def python_calls(model: nn.Module, x: torch.Tensor) -> int:
    profiler = cProfile.Profile()
    profiler.runcall(model, x)
    return pstats.Stats(profiler).total_calls


def aten_calls(model: nn.Module, x: torch.Tensor) -> int:
    with torch.profiler.profile() as profile:
        model(x)
    return sum(event.count for event in profile.key_averages() if event.key.startswith("aten::"))


def counts(model: nn.Module, size: int) -> tuple[int, int, int]:
    x = torch.randn(1, 3, size, size)
    model.eval()
    with torch.no_grad():
        model(x)  # the first call sets up lazily; count a steady-state forward
        return module_calls(model, x), python_calls(model, x), aten_calls(model, x)


def main() -> int:
    pairs = sys.argv[1:]
    if not pairs or len(pairs) % 2:
        sys.exit(__doc__.splitlines()[2])
    torch.set_num_threads(1)
    print("| config | module calls npc / peer | Python function calls npc / peer | aten op calls npc / peer |")
    print("|---|---:|---:|---:|")
    for model_py, config in zip(pairs[::2], pairs[1::2]):
        stem = Path(config).stem
        size = 256 if "mobilevit" in stem else SIZES[next(task for task in SIZES if stem.endswith(task))]
        ours, theirs = counts(build_npc(model_py, 10), size), counts(build_peer(config, 10), size)
        cells = " | ".join(f"{a:,} / {b:,}" for a, b in zip(ours, theirs))
        print(f"| {stem} | {cells} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
