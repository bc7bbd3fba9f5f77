"""One training run of npc or NetsPresso Trainer, instrumented: run by ``bench/train_e2e.py`` under either tool's
Python (it needs only torch and the tool itself).

usage: python _train_e2e_child.py --tool npc|peer --report OUT.json [--phases] [--cprofile OUT.prof]
       [--preload FILE.py] -- ARGS...

ARGS are the tool's own command-line arguments (``npc train --model ...`` / ``netspresso-train --model ...``
without the program name). Always recorded (cheap; the timed runs use only these): the time of the first
``torch.autograd.backward`` (start-up, measured from ``E2E_T0``, the parent's clock when it started this process),
the number of backward calls (= optimiser steps), and the start and end of each epoch's training loop, validation
and saving, from wrappers around each tool's own epoch functions. With ``--phases`` the run is also split into
phases by exclusive wall time (the innermost phase running gets the time): data (waiting in the DataLoader's
``__next__``), loader start (``iter(loader)``: worker processes start here), augmentation (npc's batch
augmentation; the peer's runs inside ``data``, in its workers), forward (top-level ``nn.Module`` calls), loss,
backward, optimiser, zero_grad, postprocess (decode + NMS), metric, saving (``torch.save``, safetensors, ONNX
export), and what is left inside each epoch's training / validation / saving regions (per-step Python overhead).
The hooks cost a few microseconds per module call, so ``--phases`` runs are not the timed ones.
"""

from __future__ import annotations

import atexit
import json
import os
import resource
import sys
import time
from collections import defaultdict

T0 = float(os.environ.get("E2E_T0", time.time()))
REPORT: dict = {"events": [], "backward_calls": 0, "first_backward": None, "phases": None}
PHASES: dict[str, float] = defaultdict(float)
COUNTS: dict[str, int] = defaultdict(int)
STACK: list[list] = []  # [phase, mark]
CONTEXT = ["setup"]  # setup | train | valid | save | end
OPAQUE = {"augment", "loss", "postprocess", "metric", "save", "onnx"}  # module calls inside these are theirs
TIMING = False


def now() -> float:
    return time.perf_counter()


PERF0 = now()
WALL0 = time.time()


def stamp() -> float:
    """Seconds since the parent started this process."""
    return WALL0 - T0 + (now() - PERF0)


def tree_cpu() -> float:
    """CPU seconds of this process's descendants: the reaped ones (rusage) plus the live ones (/proc)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    total, todo, tick = usage.ru_utime + usage.ru_stime, [os.getpid()], os.sysconf("SC_CLK_TCK")
    while todo:
        pid = todo.pop()
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as handle:
                    children = [int(c) for c in handle.read().split()]
                todo += children
                for child in children:
                    with open(f"/proc/{child}/stat") as handle:
                        fields = handle.read().rsplit(")", 1)[1].split()
                    total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return total


def event(name: str, **extra) -> None:
    """A moment of the run: wall time since start, this process's CPU time and its descendants' (workers)."""
    REPORT["events"].append({"name": name, "t": stamp(), "cpu": time.process_time(), "kids": tree_cpu(), **extra})


def enter(phase: str) -> None:
    t = now()
    if STACK:
        top = STACK[-1]
        PHASES[top[0]] += t - top[1]
    else:
        PHASES[f"{CONTEXT[-1]}:other"] += t - enter.last_free
    STACK.append([f"{CONTEXT[-1]}:{phase}", t])
    COUNTS[f"{CONTEXT[-1]}:{phase}"] += 1


def leave() -> None:
    t = now()
    top = STACK.pop()
    PHASES[top[0]] += t - top[1]
    if STACK:
        STACK[-1][1] = t
    else:
        enter.last_free = t


enter.last_free = now()


def timed(phase: str, fn):
    def wrapper(*args, **kwargs):
        if not TIMING:
            return fn(*args, **kwargs)
        enter(phase)
        try:
            return fn(*args, **kwargs)
        finally:
            leave()

    wrapper.__wrapped__ = fn
    return wrapper


def _close_open_time() -> None:
    """Book the time since the last mark to the innermost open phase, or to the context's "other"."""
    t = now()
    if not STACK:
        PHASES[f"{CONTEXT[-1]}:other"] += t - enter.last_free
        enter.last_free = t
    else:
        PHASES[STACK[-1][0]] += t - STACK[-1][1]
        STACK[-1][1] = t


def region(context: str, fn, name: str):
    """A tool function that makes up one region of an epoch (training loop, validation, saving)."""

    def wrapper(*args, **kwargs):
        if TIMING:  # close the time spent outside phases under the old context
            _close_open_time()
        CONTEXT.append(context)
        event(f"{name}:start")
        try:
            return fn(*args, **kwargs)
        finally:
            event(f"{name}:end")
            if TIMING:
                _close_open_time()
            CONTEXT.pop()

    wrapper.__wrapped__ = fn
    return wrapper


class Timed:
    """A callable object whose calls count as ``phase``; everything else passes through."""

    def __init__(self, inner, phase: str) -> None:
        object.__setattr__(self, "_inner", inner)
        object.__setattr__(self, "_phase", phase)

    def __call__(self, *args, **kwargs):
        if not TIMING:
            return self._inner(*args, **kwargs)
        enter(self._phase)
        try:
            return self._inner(*args, **kwargs)
        finally:
            leave()

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def __setattr__(self, name, value):
        setattr(self._inner, name, value)


def install_common(phases: bool) -> None:
    import torch
    import torch.utils.data.dataloader as dl

    global TIMING
    TIMING = phases
    original_backward = torch.autograd.backward

    def backward(*args, **kwargs):
        REPORT["backward_calls"] += 1
        if REPORT["first_backward"] is None:
            REPORT["first_backward"] = stamp()
        if not TIMING:
            return original_backward(*args, **kwargs)
        enter("backward")
        try:
            return original_backward(*args, **kwargs)
        finally:
            leave()

    torch.autograd.backward = backward
    if not phases:
        return
    dl._BaseDataLoaderIter.__next__ = timed("data", dl._BaseDataLoaderIter.__next__)
    dl.DataLoader.__iter__ = timed("loader_start", dl.DataLoader.__iter__)
    torch.optim.Optimizer.zero_grad = timed("zero_grad", torch.optim.Optimizer.zero_grad)
    from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

    register_optimizer_step_pre_hook(lambda *a: enter("optimizer"))
    register_optimizer_step_post_hook(lambda *a: leave())
    torch.save = timed("save", torch.save)
    torch.onnx.export = timed("onnx", torch.onnx.export)
    torch.nn.utils.clip_grad_norm_ = timed("clip_grad", torch.nn.utils.clip_grad_norm_)
    try:
        import safetensors.torch as st

        st.save_file = timed("save", st.save_file)
    except ImportError:
        pass
    from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

    pushed: list[bool] = []  # per module call in flight: whether it opened a phase (only the outermost does)
    opened = [0]

    def pre(module, args):
        top = STACK[-1][0].split(":", 1)[1] if STACK else None
        push = not opened[0] and top not in OPAQUE
        if push:
            enter("loss" if "loss" in type(module).__name__.lower() else "forward")
            opened[0] += 1
        pushed.append(push)

    def post(module, args, output):
        if pushed and pushed.pop():
            opened[0] -= 1
            leave()

    register_module_forward_pre_hook(pre)
    register_module_forward_hook(post)


def npc_modules():
    """npc's trainer, augmentation and metrics modules: the restructured runtime (engine/, data/) or the flat one."""
    try:
        from npc.runtime.data import augment
        from npc.runtime.engine import metrics, trainer
    except ImportError:
        from npc.runtime import _augment as augment
        from npc.runtime import _metrics as metrics
        from npc.runtime import _train as trainer
    return trainer, augment, metrics


def install_npc() -> None:
    trainer, augment, metrics = npc_modules()
    trainer._train_one_epoch = region("train", trainer._train_one_epoch, "train")
    trainer.evaluate = region("valid", trainer.evaluate, "valid")
    trainer._save_epoch = region("save", trainer._save_epoch, "save")
    if not TIMING:
        return
    augment.Augmentation.__call__ = timed("augment", augment.Augmentation.__call__)
    original_loss = trainer.build_loss

    def build_loss(*args, **kwargs):
        loss, notes = original_loss(*args, **kwargs)
        loss.__class__.__call__ = timed("loss", loss.__class__.__call__)  # an nn.Module: keep .to() and friends
        return loss, notes

    trainer.build_loss = build_loss
    original_post = trainer.detection_postprocessor

    def detection_postprocessor(*args, **kwargs):
        post, notes = original_post(*args, **kwargs)
        return (Timed(post, "postprocess") if post is not None else None), notes

    trainer.detection_postprocessor = detection_postprocessor
    metrics._update = timed("metric", metrics._update)
    if hasattr(metrics, "coco_map"):
        metrics.coco_map = timed("metric", metrics.coco_map)


def install_peer() -> None:
    from netspresso_trainer.pipelines import train as pipeline

    cls = pipeline.TrainingPipeline
    cls.train_one_epoch = region("train", cls.train_one_epoch, "train")
    cls.validate = region("valid", cls.validate, "valid")
    for name in ("save_checkpoint", "save_summary", "save_best", "log_end_epoch"):
        setattr(cls, name, region("save", getattr(cls, name), "save"))
    if not TIMING:
        return
    from netspresso_trainer.dataloaders.augmentation.custom import image_proc as transforms
    from netspresso_trainer.losses.builder import LossFactory
    from netspresso_trainer.metrics.base import MetricFactory
    from netspresso_trainer.pipelines.task_processors.base import BaseTaskProcessor

    transforms.Compose.__call__ = timed("augment", transforms.Compose.__call__)
    LossFactory.calc = timed("loss", LossFactory.calc)
    LossFactory.__call__ = timed("loss", LossFactory.__call__)
    for name in ("update", "result"):
        if hasattr(MetricFactory, name):
            setattr(MetricFactory, name, timed("metric", getattr(MetricFactory, name)))
    original_init = BaseTaskProcessor.__init__

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        if getattr(self, "postprocessor", None) is not None:
            self.postprocessor = Timed(self.postprocessor, "postprocess")

    BaseTaskProcessor.__init__ = init


def write_report(path: str) -> None:
    event("exit")
    self_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    REPORT["peak_rss_mib"] = self_rss
    REPORT["children_peak_rss_mib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if TIMING:
        REPORT["phases"] = dict(PHASES)
        REPORT["phase_counts"] = dict(COUNTS)
    import torch

    REPORT["torch"] = torch.__version__
    REPORT["threads"] = torch.get_num_threads()
    with open(path, "w") as handle:
        json.dump(REPORT, handle)


def main() -> int:
    argv = sys.argv[1:]
    split = argv.index("--")
    own, tool_args = argv[:split], argv[split + 1 :]
    tool = own[own.index("--tool") + 1]
    report = own[own.index("--report") + 1]
    phases = "--phases" in own
    profile = own[own.index("--cprofile") + 1] if "--cprofile" in own else None
    event("harness")
    install_common(phases)
    if tool == "npc":
        install_npc()
        from npc.cli import main as tool_main

        def run() -> int:
            return tool_main(tool_args) or 0
    else:
        install_peer()
        from netspresso_trainer.trainer_main import train_cli

        def run() -> int:
            sys.argv = ["netspresso-train", *tool_args]
            train_cli()
            return 0

    if "--preload" in own:  # candidate-fix experiments: monkeypatches applied before the run
        import runpy

        runpy.run_path(own[own.index("--preload") + 1], run_name="preload")
    event("imported")
    atexit.register(write_report, report)
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        try:
            return profiler.runcall(run)
        finally:
            profiler.dump_stats(profile)
    return run()


if __name__ == "__main__":
    sys.exit(main())
