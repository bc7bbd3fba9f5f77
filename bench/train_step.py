"""One training step of compiled models, alone: forward, a stand-in loss (the mean of every output), backward and a
fused AdamW step, at one thread. It needs only torch, so the same ``model.py`` files can be timed under another
Python (the peer's venv, for a same-model comparison of two torch builds).

    .venv/bin/npc compile zoo/resnet18-classification.yaml -o /tmp/resnet18.py
    .venv/bin/python bench/train_step.py /tmp/resnet18.py:64:10:32 --modes fp32 channels_last bf16 bf16+channels_last
    /work/peer-venv/bin/python bench/train_step.py /tmp/resnet18.py:64:10:32

Each argument is ``MODEL_PY:SIDE:CLASSES:BATCH``; prints the median step time over ``--steps`` (after 2 warm-up
steps). Results: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from pathlib import Path

import torch


def outputs(value) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in outputs(v)]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in outputs(v)]
    return []


def step_seconds(path: Path, side: int, classes: int, batch: int, mode: str, steps: int) -> float:
    spec = importlib.util.spec_from_file_location(path.stem.replace("-", "_"), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.manual_seed(0)
    model = module.build_model(classes).train()
    images = torch.randn(batch, 3, side, side)
    if "channels_last" in mode:
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    times = []
    for _ in range(steps + 2):
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled="bf16" in mode):
            out = model(images)
        loss = sum(o.float().mean() for o in outputs(out))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - started)
    return statistics.median(times[2:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", metavar="MODEL_PY:SIDE:CLASSES:BATCH")
    parser.add_argument(
        "--modes", nargs="+", default=["fp32"], choices=["fp32", "channels_last", "bf16", "bf16+channels_last"]
    )
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for entry in args.models:
        path, side, classes, batch = entry.rsplit(":", 3)
        for mode in args.modes:
            seconds = step_seconds(Path(path), int(side), int(classes), int(batch), mode, args.steps)
            print(f"torch {torch.__version__}  {Path(path).stem}  {mode}: {1000 * seconds:.0f} ms/step", flush=True)


if __name__ == "__main__":
    main()
