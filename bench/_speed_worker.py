"""A model's forward latency, training throughput and peak RSS (or two models' latency side by side), as JSON.

Runs under either Python: npc's (``--model-py``: a module compiled by ``npc compile``) or one where NetsPresso
Trainer is installed (``--peer-config``: built with its own ``netspresso_trainer.models.build_model``). It imports
nothing from npc, so the peer's venv needs only the peer. Both sides get the same input, thread count, batch sizes
and the same stand-in loss (the mean of every output tensor), so the figures compare the models, not the recipes.

Given both ``--model-py`` and ``--peer-config`` (under the peer's Python), it times forward latency only, with both
models in this one process and their calls interleaved round by round. Timed in two processes, a small model's
batch-1 latency depends on the process as much as on the model: glibc's malloc hands freed activation memory back
to the kernel or keeps it depending on what else is on the heap (the peer's imports fill it), and memory handed
back costs a page fault per 4 KiB page on the next forward, 1-2 ms for mobilenetv3-small. One process, one heap and
alternating order give both models the same allocator state, thread pool and background load (and
``model_speed.py`` fixes malloc's thresholds, so that even in one process a buffer is handed back or kept by its
size, not by where it landed). Each result records the median minor page faults per forward, so an allocator
effect shows up as a number, not as noise.

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


def minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def median_ms(fn, repeat: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def interleaved_forward(models: dict[str, nn.Module], size: list[int], batch: int, repeat: int) -> dict[str, dict]:
    """Median forward ms and minor page faults per forward of each model, in alternating order round by round."""
    x = torch.randn(batch, 3, *size)
    times: dict[str, list[float]] = {name: [] for name in models}
    faults: dict[str, list[int]] = {name: [] for name in models}
    names = list(models)
    with torch.no_grad():
        for model in models.values():
            model.eval()
            for _ in range(3):  # the first calls pay for lazy kernel set-up and allocator growth
                model(x)
        for round_index in range(repeat):
            for name in names if round_index % 2 == 0 else reversed(names):
                faults_before, start = minor_faults(), time.perf_counter()
                models[name](x)
                times[name].append((time.perf_counter() - start) * 1000)
                faults[name].append(minor_faults() - faults_before)
    return {name: {"ms": statistics.median(times[name]), "faults": statistics.median(faults[name])} for name in models}


def forward_figures(model: nn.Module, size: list[int], batch: int, repeat: int) -> dict:
    return interleaved_forward({"model": model}, size, batch, repeat)["model"]


def paired_main(args: argparse.Namespace) -> int:
    torch.manual_seed(0)
    models = {"npc": build_npc(args.model_py, 10)}
    torch.manual_seed(0)
    models["peer"] = build_peer(args.peer_config, 10)
    result = {name: {"params": sum(p.numel() for p in model.parameters())} for name, model in models.items()}
    batches = [1] if args.forward_only else [1, 8]
    for batch in batches:
        repeat = args.repeat if batch == 1 else max(3, args.repeat // 2)
        for name, figures in interleaved_forward(models, args.size, batch, repeat).items():
            result[name][f"forward_ms_b{batch}"] = figures["ms"]
            result[name][f"minor_faults_per_forward_b{batch}"] = figures["faults"]
    if not args.forward_only:
        steps = max(args.train_steps, 5)  # interleaved, the same steps cost the two models the same machine noise
        for name, figures in interleaved_train(models, args.size, args.train_batch, steps).items():
            result[name] |= figures
    print(json.dumps(result))
    return 0


def interleaved_train(models: dict[str, nn.Module], size: list[int], batch: int, steps: int) -> dict[str, dict]:
    """Median training throughput (images/s) of each model, steps alternating round by round, or its error."""
    x = torch.randn(batch, 3, *size)
    step_fns, out = {}, {}
    for name, model in models.items():
        model.train()
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
        step_fns[name] = _train_step(model, optimizer, x)
        try:
            step_fns[name]()  # warm-up; a model whose training forward needs targets fails here (the peer's RT-DETR)
        except Exception as exc:  # noqa: BLE001 - report it; the other side's figures still stand
            out[name] = {"train_error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}"}
            del step_fns[name]
    times: dict[str, list[float]] = {name: [] for name in step_fns}
    names = list(step_fns)
    for round_index in range(steps):
        for name in names if round_index % 2 == 0 else reversed(names):
            start = time.perf_counter()
            step_fns[name]()
            times[name].append(time.perf_counter() - start)
    for name in names:
        out[name] = {"train_images_per_s": batch / statistics.median(times[name])}
    return out


def _train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor):
    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = sum(t.float().mean() for t in tensors(model(x)))
        loss.backward()
        optimizer.step()

    return step


def train_images_per_s(model: nn.Module, size: list[int], batch: int, steps: int) -> float:
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    step = _train_step(model, optimizer, torch.randn(batch, 3, *size))
    return batch / (median_ms(step, steps, warmup=1) / 1000)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-py", help="a module compiled by npc compile")
    parser.add_argument("--peer-config", help="a NetsPresso Trainer model config; with --model-py: paired forward")
    parser.add_argument("--size", type=int, nargs=2, required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--train-batch", type=int, default=8)
    parser.add_argument("--train-steps", type=int, default=3)
    parser.add_argument("--torch-compile", action="store_true", help="also time torch.compile(model) at batch 1")
    parser.add_argument("--forward-only", action="store_true", help="batch 1 forward latency only")
    parser.add_argument("--skip-forward", action="store_true", help="no forward timing (taken from a paired run)")
    args = parser.parse_args()
    if not (args.model_py or args.peer_config):
        parser.error("give --model-py, --peer-config, or both (paired forward timing)")

    torch.set_num_threads(args.threads)
    if args.model_py and args.peer_config:
        return paired_main(args)
    torch.manual_seed(0)
    model = build_npc(args.model_py, 10) if args.model_py else build_peer(args.peer_config, 10)
    result: dict[str, Any] = {"params": sum(p.numel() for p in model.parameters())}
    if not args.skip_forward:
        figures = forward_figures(model, args.size, 1, args.repeat)
        result["forward_ms_b1"], result["minor_faults_per_forward_b1"] = figures["ms"], figures["faults"]
        if args.forward_only:
            print(json.dumps(result))
            return 0
        result["forward_ms_b8"] = forward_figures(model, args.size, 8, max(3, args.repeat // 2))["ms"]
    if args.torch_compile:
        try:
            compiled = torch.compile(model)
            result["compiled_forward_ms_b1"] = forward_figures(compiled, args.size, 1, args.repeat)["ms"]
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
