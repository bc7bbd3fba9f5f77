"""One model, one process: forward latency, training-step throughput and peak RSS, printed as one JSON line.

Runs under either Python: npc's (``--model-py``: a module compiled by ``npc compile``) or one where NetsPresso
Trainer is installed (``--peer-config``: built with its own ``netspresso_trainer.models.build_model``). It imports
nothing from npc, so the peer's venv needs only the peer. Both sides get the same input, thread count, batch sizes
and the same stand-in loss (the mean of every output tensor), so the figures compare the models, not the recipes.
Called by ``bench/model_speed.py``; run on demand, never in the test suite.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import statistics
import sys
import time
from typing import Any

import torch
from torch import nn


def build_npc(model_py: str, num_classes: int) -> nn.Module:
    spec = importlib.util.spec_from_file_location("bench_model", model_py)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_model(num_classes=num_classes)


def build_peer(config: str, num_classes: int) -> nn.Module:
    from netspresso_trainer.models import build_model  # only in the peer's venv
    from omegaconf import OmegaConf

    conf = OmegaConf.load(config).model
    conf.checkpoint.use_pretrained = False
    full = conf.architecture.get("full")
    conf.single_task_model = bool(full and full.get("name"))
    return build_model(conf, num_classes, torch.device("cpu"), distributed=False)


def tensors(value: Any) -> list[torch.Tensor]:
    """Every tensor in a model output (dicts, lists, the peer's output objects), in a stable order."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        return [t for key in sorted(value, key=str) for t in tensors(value[key])]
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in tensors(item)]
    return []


def median_ms(fn, repeat: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def forward_ms(model: nn.Module, size: list[int], batch: int, repeat: int) -> float:
    model.eval()
    x = torch.randn(batch, 3, *size)
    with torch.no_grad():
        return median_ms(lambda: model(x), repeat)


def train_images_per_s(model: nn.Module, size: list[int], batch: int, steps: int) -> float:
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    x = torch.randn(batch, 3, *size)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = sum(t.float().mean() for t in tensors(model(x)))
        loss.backward()
        optimizer.step()

    return batch / (median_ms(step, steps, warmup=1) / 1000)


def main() -> int:
    parser = argparse.ArgumentParser()
    side = parser.add_mutually_exclusive_group(required=True)
    side.add_argument("--model-py")
    side.add_argument("--peer-config")
    parser.add_argument("--size", type=int, nargs=2, required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--train-batch", type=int, default=8)
    parser.add_argument("--train-steps", type=int, default=3)
    parser.add_argument("--torch-compile", action="store_true", help="also time torch.compile(model) at batch 1")
    parser.add_argument("--forward-only", action="store_true", help="batch 1 forward latency only")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_npc(args.model_py, 10) if args.model_py else build_peer(args.peer_config, 10)
    result: dict[str, Any] = {"params": sum(p.numel() for p in model.parameters())}
    result["forward_ms_b1"] = forward_ms(model, args.size, 1, args.repeat)
    if args.forward_only:
        print(json.dumps(result))
        return 0
    result["forward_ms_b8"] = forward_ms(model, args.size, 8, max(3, args.repeat // 2))
    if args.torch_compile:
        try:
            compiled = torch.compile(model)
            result["compiled_forward_ms_b1"] = forward_ms(compiled, args.size, 1, args.repeat)
        except Exception as exc:  # report, do not fail the whole benchmark
            result["compiled_error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
    try:  # a training forward may need targets the stand-in loss does not give (the peer's RT-DETR asserts them)
        result["train_images_per_s"] = train_images_per_s(model, args.size, args.train_batch, args.train_steps)
    except Exception as exc:  # noqa: BLE001 - report it; the forward figures still stand
        result["train_error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}"
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
