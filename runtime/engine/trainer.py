"""``npc train``: compile → import → build → (load, freeze) → train/validate per epoch, in one process on one
device, or under ``torchrun`` in WORLD_SIZE processes with DistributedDataParallel (see ``_distributed``).

Each epoch ends with, in this order: ``best.safetensors`` (when the epoch beats the best so far by NetsPresso's
``best_model_criterion``: the validation loss by default, or the task's metric), ``last.safetensors``,
``metrics.csv``, ``training_state.pt`` — each written atomically, so a crash at any point leaves a run folder that
resumes from the last saved state. ``training_state.pt`` is also written mid-epoch, with the position within the
epoch, by ``training.checkpoint_every`` and when SIGTERM/SIGINT stop the run after its current step (see
``_faults``). With a fixed seed on CPU, a resumed run ends with the same weights as an uninterrupted one: shuffling
draws from a generator re-seeded from (seed, epoch), a resumed epoch skips the batches already trained, and the
global RNG states are saved and restored.

Under torchrun every process builds the same model from the same seed (DDP broadcasts rank 0's weights anyway),
shuffles with the same (seed, epoch) permutation and trains on its ``rank::world_size`` share of each global batch
(DistributedSampler); DDP averages the gradients. Only rank 0 prints, evaluates (the whole valid split, so metrics
equal a single-process run's) and writes the run folder; the other processes wait for its metrics.
"""

from __future__ import annotations

import copy
import datetime
import io
import math
import os
import random
import shlex
import signal
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

from ... import __version__
from ...spec.run_config import RunConfig
from ..checkpoint import (
    BackgroundWriter,
    atomic_write_text,
    capture_rng,
    load_training_state,
    restore_rng,
    save_training_state,
    weights_snapshot,
    write_weights,
)
from ..data import (
    Augmentation,
    AugmentingCollate,
    DataBundle,
    Dropped,
    DroppingCollate,
    ResumingSampler,
    SkipUnreadable,
    StepBatches,
    Stepped,
    build_augmentation,
    build_data,
    cached,
    write_bad_samples,
)
from ..errors import UNUSABLE, CheckpointError, RunError
from ..losses import build_loss
from .distributed import Distributed, all_gather, all_sum, any_rank, broadcast, per_rank_batch, start, stop, wait
from .faults import (
    CheckpointClock,
    StopSignals,
    check_run_folder,
    claim_run_folder,
    ignore_stop_signals,
    nonfinite_message,
)
from .load_model import (
    apply_checkpoint,
    build,
    check_output,
    freeze_backbone,
    head_name,
    import_model,
    keep_frozen_eval,
    model_source,
    takes_training_targets,
    training_targets_feeder,
    unused_in_training,
)
from .metrics import LABELS, METRICS, PRIMARY, evaluate, to_device
from .optim import ModelEMA, build_optimizer, build_scheduler
from .precision import build_precision, to_float32
from .report import Reporter, SilentReporter
from .tracking import MlflowLog

__all__ = ["Interrupted", "TrainOptions", "TrainResult", "resolve_device", "train"]

STATE_FORMAT = "npc-training-state"
ANCHOR_LAYOUT_SIZE = 512  # the input size anchor_decoupled_head lays its anchors out for (as NetsPresso does)


class Interrupted(RunError):
    """Stopped by a signal (or Ctrl-C); ``signal`` is its number (the CLI exits with 128 + it: 130, 143)."""

    def __init__(self, message: str, signal: int = signal.SIGINT) -> None:
        super().__init__(message)
        self.signal = signal


@dataclass
class TrainOptions:
    out_dir: Path
    device: str | None = None  # "cpu", "cuda", or None: cuda when available
    model_py: Path | None = None  # an already compiled model.py instead of compiling the spec
    resume: Path | None = None  # training_state.pt (or its run folder); else the spec's checkpoint.optimizer_path
    stop_after: int | None = None  # stop after this many epochs in total, as if interrupted (tests)
    tensorboard: bool = True
    trust_pickle: bool = False  # the user vouches for the spec's fx_model_checkpoint (a pickle: it runs code)
    command: str = ""  # the command line, recorded in resolved.yaml


@dataclass
class TrainResult:
    run_dir: Path
    epochs_done: int
    best_epoch: int | None
    best_metric: float | None  # of the task's primary metric, ``metric``
    last: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    metric: str = "top1"

    @property
    def best_top1(self) -> float | None:
        return self.best_metric if self.metric == "top1" else None


def resolve_device(name: str | None) -> torch.device:
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RunError("--device cuda: no CUDA device is available (this torch build or machine has none)", UNUSABLE)
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def train(config: RunConfig, options: TrainOptions, console: Console | None = None) -> TrainResult:
    """Train in this process; under torchrun (WORLD_SIZE > 1) as one rank of a DDP group that this call joins."""
    place, device = start(resolve_device(options.device))
    try:
        with ExitStack() as held:
            if place.is_main:  # before any work: a folder that cannot be written would waste it
                check_run_folder(Path(options.out_dir))
            stops = held.enter_context(StopSignals())
            result = _train(config, options, console or Console(), place, device, stops, held)
        wait(place)  # no process leaves (and tears the group down) while another still needs it
        return result
    finally:
        stop(place)


def _train(
    config: RunConfig,
    options: TrainOptions,
    console: Console,
    place: Distributed,
    device: torch.device,
    stops: StopSignals,
    held: ExitStack,
) -> TrainResult:
    """Set up (data, model, optimisation, what a resumed state restores), then the epoch loop, then the summary."""
    started = time.perf_counter()
    if not place.is_main:
        console = Console(file=io.StringIO())  # rank 0 speaks for the group
    parts = _prepare_data(config, place, device)
    module = _import_model(config, options, parts, place, device, held)
    resume_path = options.resume or (
        Path(config.spec.checkpoint.optimizer_path) if config.spec.checkpoint.optimizer_path else None
    )
    state = load_training_state(resume_path) if resume_path else None
    net, frozen = _build_model(config, options, module, parts, state, place, device)
    postprocessor, post_notes = detection_postprocessor(module, config.spec.task)
    parts.notes += post_notes
    try:
        optimizer = build_optimizer(net, config.training["optimizer"], fused=config.training["fused_optimizer"])
    except ValueError as exc:
        raise RunError(f"{config.spec_path}: {exc} (is everything frozen?)") from None
    scheduler = build_scheduler(optimizer, config.training, config.training["epochs"])
    ema = ModelEMA(net, config.training["ema"]) if config.training.get("ema") else None
    best = _restore(config, state, resume_path, net, optimizer, scheduler, ema, parts) if state else _Best()
    batch_size = per_rank_batch(config.training["batch_size"], place)
    _announce(console, config, net, parts, place, device, batch_size, Path(options.out_dir))
    loaders = _loaders(config, parts.data, place, device, batch_size, parts.augment)
    run = _Run(
        config=config,
        place=place,
        device=device,
        run_dir=Path(options.out_dir),
        console=console,
        reporter=_reporter(config, options, console, place, best.start_epoch),
        data=parts.data,
        head=parts.head,
        model=_distributed(net, place, device, parts.data) if place.enabled else net,
        net=net,  # the model itself: EMA, evaluation and the saved weights use it, never the DDP wrapper
        optimizer=optimizer,
        scheduler=scheduler,
        ema=ema,
        precision=parts.precision,
        loss_fn=parts.loss_fn,
        augment=None if loaders.augmenting else parts.augment,
        feed_targets=training_targets_feeder(net),  # RT-DETR's denoising queries are made from the ground truth
        frozen=frozen,
        postprocessor=postprocessor,
        train_loader=loaders.train,
        valid_loader=loaders.valid,
        batches=loaders.batches,
        generator=loaders.generator,
        steps_per_epoch=loaders.steps_per_epoch,
        stops=stops,
        clock=CheckpointClock(config.training.get("checkpoint_every")),
        writer=held.enter_context(BackgroundWriter()),  # left (its writes finished) however the run ends
        metadata=_weights_metadata(config, parts.data),
        resume_hint=_resume_hint(config, options, Path(options.out_dir)),
        best_metric=best.metric,
        best_epoch=best.epoch,
        best_value=best.value,
        last_good=f"{resume_path} (where this run resumed)" if state is not None else "none (nothing saved yet)",
    )
    progress = _resumed_progress(run, state, resume_path, best.start_epoch)
    _loop_reporting(run, progress, options.stop_after)
    return _finish(run, progress, time.perf_counter() - started)


@dataclass
class _Parts:
    """What the data and the spec give before the model exists; ``notes`` collects what the run tells the user."""

    data: DataBundle
    head: str
    loss_fn: nn.Module
    augment: Any
    precision: Any
    notes: list[str]


@dataclass
class _Best:
    """Where a run starts and the best epoch so far (a resumed state carries them)."""

    start_epoch: int = 0
    metric: float | None = None
    epoch: int | None = None
    value: float | None = None


@dataclass
class _Loaders:
    train: DataLoader
    valid: DataLoader
    batches: StepBatches
    generator: torch.Generator
    steps_per_epoch: int
    augmenting: bool  # the training loader augments (the loop must not augment again)


def _prepare_data(config: RunConfig, place: Distributed, device: torch.device) -> _Parts:
    """The data (checked, cached if asked), the loss of the spec's head, augmentation and precision."""
    training, task = config.training, config.spec.task
    seed_everything(training["seed"])
    data = build_data(config.data, ("train", "valid"), task=task)
    if config.environment.get("cache_data"):  # NetsPresso's environment.cache_data
        data = cached(data)
    head = head_name(config)
    loss_fn, loss_notes = build_loss(config.spec.losses, config.spec_source, task=task, head=head)
    augment = build_augmentation(
        config.augmentation,
        task=task,
        preprocess=data.preprocess,
        seed=training["seed"],
        rank=place.rank,
        epochs=training["epochs"],
        num_classes=data.num_classes,
        keypoint_swap=data.keypoint_swap,
    )
    precision = build_precision(training.get("mixed_precision"), device)
    notes = data.notes + loss_notes
    notes += [f"{augment.note} ({_augmented_where(config, data, device)})"] if augment is not None else []
    notes += [precision.note] if precision.note else []
    if head == "anchor_decoupled_head" and data.preprocess.image_size != ANCHOR_LAYOUT_SIZE:
        notes.append(
            f"anchor_decoupled_head lays its anchors out for {ANCHOR_LAYOUT_SIZE}x{ANCHOR_LAYOUT_SIZE} inputs (as "
            f"NetsPresso Trainer does); at image_size {data.preprocess.image_size} they do not cover the image"
        )
    return _Parts(data, head, loss_fn, augment, precision, notes)


def _import_model(
    config: RunConfig,
    options: TrainOptions,
    parts: _Parts,
    place: Distributed,
    device: torch.device,
    held: ExitStack,
) -> Any:
    """Claim the run folder (rank 0, once the data has checked), write resolved.yaml, bad_samples.json and
    model.py into it, and import the model source from there."""
    run_dir = Path(options.out_dir)
    source = model_source(config, options.model_py)
    with ExitStack() as scratch:
        if place.is_main:  # one run per folder (rank 0 holds it for the group)
            lock = claim_run_folder(run_dir)
            held.callback(lock.release)
            parts.notes += lock.notes
            model_py = run_dir / "model.py"
            atomic_write_text(run_dir / "resolved.yaml", _resolved_yaml(config, parts.data, options, device, place))
            write_bad_samples(run_dir / "bad_samples.json", parts.data.bad_samples)  # what on_bad_sample skipped
        else:  # only rank 0 writes the run folder; the others import the same source from a private copy
            model_py = Path(scratch.enter_context(tempfile.TemporaryDirectory(prefix="npc-rank-"))) / "model.py"
        atomic_write_text(model_py, source)
        return import_model(model_py)


def _build_model(
    config: RunConfig,
    options: TrainOptions,
    module: Any,
    parts: _Parts,
    state: dict[str, Any] | None,
    place: Distributed,
    device: torch.device,
) -> tuple[nn.Module, bool]:
    """The model at its initial weights (seeded), or the spec's checkpoint when not resuming; frozen as asked,
    SyncBatchNorm where it applies, on the device. Returns it and whether the backbone is frozen."""
    torch.manual_seed(config.training["seed"])  # the initial weights depend on the seed only
    model = build(module, parts.data.num_classes, Path(options.out_dir) / "model.py")
    if state is None:
        _, checkpoint_notes = apply_checkpoint(model, config.spec.checkpoint, trust_pickle=options.trust_pickle)
        parts.notes += checkpoint_notes
    frozen = False
    if config.spec.freeze_backbone:
        frozen = freeze_backbone(model)
        if not frozen:
            parts.notes.append("freeze_backbone is ignored: the model has no separate backbone (a 'full' model)")
    if config.training.get("sync_bn") and place.enabled:
        if device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        else:
            parts.notes.append(
                "training.sync_bn is ignored on CPU (SyncBatchNorm runs on GPUs only): each process "
                "normalises over its own share of the batch"
            )
    model.to(device)
    if config.training.get("channels_last"):  # the convs pick NHWC kernels from the weights' format; inputs follow
        _to_channels_last(model)
        parts.notes.append("training.channels_last: the model's weights and activations in NHWC memory format")
    parts.loss_fn.to(device)
    return model, frozen


def _to_channels_last(model: nn.Module) -> None:
    """Every 4-D parameter in NHWC memory format. Not ``model.to(memory_format=...)``: that refuses a model with any
    5-D weight (YOLOv9's head has a Conv3d), and has no format that suits both."""
    for parameter in model.parameters():
        if parameter.dim() == 4:
            parameter.data = parameter.data.contiguous(memory_format=torch.channels_last)


def _restore(
    config: RunConfig,
    state: dict[str, Any],
    resume_path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    ema: ModelEMA | None,
    parts: _Parts,
) -> _Best:
    """Weights, optimiser, scheduler, EMA and scaler from a training state; where the run starts and its best."""
    progress = _Progress(state["epoch"], **state.get("progress", {}))
    parts.notes.append(f"resuming from {resume_path} ({progress.where()})")
    start_epoch, best_metric, best_epoch = _resume(
        state, resume_path, model, optimizer, scheduler, ema, parts.data, parts.precision.scaler
    )
    epochs = config.training["epochs"]
    if state.get("epochs") not in (None, epochs):
        parts.notes.append(
            f"training.epochs is {epochs} (was {state['epochs']}): the learning-rate schedule follows {epochs}"
        )
    if state.get("criterion", "metric") != best_criterion(config):  # its best was chosen another way
        parts.notes.append(f"best.safetensors is chosen anew by best_model_criterion {best_criterion(config)}")
        return _Best(start_epoch)
    value = state.get("best_value") if best_epoch is not None else None
    return _Best(start_epoch, best_metric, best_epoch, value)


def _announce(
    console: Console,
    config: RunConfig,
    model: nn.Module,
    parts: _Parts,
    place: Distributed,
    device: torch.device,
    batch_size: int,
    run_dir: Path,
) -> None:
    where = str(device)
    if place.enabled:
        backend = "nccl" if device.type == "cuda" else "gloo"
        where = f"{place.world_size} processes ({backend}, {batch_size} images each per step)"
    console.print(
        f"npc train: {config.spec.name} ({sum(p.numel() for p in model.parameters()):,} parameters, "
        f"{sum(p.numel() for p in model.parameters() if p.requires_grad):,} trainable) on {where}; "
        f"data: {parts.data.description}; run folder: {run_dir}",
        highlight=False,
        soft_wrap=True,
    )
    for note in parts.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)


def _loaders(
    config: RunConfig,
    data: DataBundle,
    place: Distributed,
    device: torch.device,
    batch_size: int,
    augment: Augmentation | None,
) -> _Loaders:
    """The training loader (resumable, step-tagged batches; under DDP, this rank's share) and the validation loader.

    On a CPU the training loader also augments (``AugmentingCollate``): in its workers, the augmentation of the next
    batches overlaps the model's step instead of delaying it (``data.batches``).
    """
    workers = _num_workers(config, data)
    # Workers live as long as the run (as NetsPresso Trainer's): starting 2 x num_workers processes per epoch, each
    # a fork of a process holding the model, cost a detection run a third of its epoch time (docs/benchmarks.md).
    persistent = workers > 0
    generator = torch.Generator()
    train_set, valid_set = data.splits["train"], data.splits["valid"]
    if place.enabled:  # the same (seed, epoch) permutation as one process; this rank takes every world_size-th index
        seed = config.training["seed"] * 100_003
        order = DistributedSampler(train_set, place.world_size, place.rank, shuffle=True, seed=seed)
    else:
        order = RandomSampler(train_set, generator=generator)
    share = len(order)  # this process's samples per epoch
    # as NetsPresso: the last partial batch is dropped (a split smaller than one batch keeps it, or none would train)
    drop_last = share >= batch_size
    skip_unreadable = data.bad_samples is not None and data.bad_samples.policy == "skip"
    batches = StepBatches(ResumingSampler(order), batch_size, drop_last)
    augmenting = augment is not None and _augments_in_loader(device)
    train = DataLoader(
        Stepped(SkipUnreadable(train_set) if skip_unreadable else train_set),  # a broken file leaves its batch
        batch_sampler=batches,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        collate_fn=AugmentingCollate(data.collate, augment) if augmenting else DroppingCollate(data.collate),
        worker_init_fn=ignore_stop_signals if workers else None,
        persistent_workers=persistent,
    )
    valid = DataLoader(
        SkipUnreadable(valid_set) if skip_unreadable else valid_set,  # under skip, a broken file leaves its batch
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=DroppingCollate(data.collate),
        worker_init_fn=ignore_stop_signals if workers else None,
        persistent_workers=persistent,
    )
    return _Loaders(train, valid, batches, generator, len(batches), augmenting)  # steps: a whole epoch's batches


def _num_workers(config: RunConfig, data: DataBundle) -> int:
    workers = config.training.get("num_workers")
    if workers is None:
        workers = 0 if data.in_memory else min(4, os.cpu_count() or 1)
    return workers


def _augments_in_loader(device: torch.device) -> bool:
    """Augment where the batch is made (the DataLoader) rather than on the device: on CPUs, where the main process
    is busy with the model; a GPU runs kornia far faster than a CPU worker's one thread."""
    return device.type == "cpu"


def _augmented_where(config: RunConfig, data: DataBundle, device: torch.device) -> str:
    if not _augments_in_loader(device):
        return f"on the {device.type} device"
    workers = _num_workers(config, data)
    return f"in the {workers} DataLoader worker(s)" if workers else "as each batch is loaded"


def _distributed(net: nn.Module, place: Distributed, device: torch.device, data: DataBundle) -> nn.Module:
    """``net`` wrapped for DDP. DDP must not wait for gradients that never come (find_unused_parameters costs a
    graph walk, so only then): RT-DETR's denoising embedding takes no part in a step whose batch has no boxes, on
    one rank only; and some peer architectures keep parameters a training forward never reaches (EfficientFormer's
    final norm under a detection neck)."""
    sample_size = tuple(data.splits["valid"][0][0].shape[-2:])
    unused = takes_training_targets(net) or bool(unused_in_training(net, sample_size))
    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(net, device_ids=device_ids, find_unused_parameters=unused)


def _reporter(
    config: RunConfig, options: TrainOptions, console: Console, place: Distributed, start_epoch: int
) -> Reporter | SilentReporter:
    if not place.is_main:
        return SilentReporter()
    tracking = None
    if config.logging["mlflow"]:  # logging.yaml's mlflow: rank 0 logs the run
        resuming = options.resume is not None or bool(config.spec.checkpoint.optimizer_path)
        document = config.resolved_document()
        tracking = MlflowLog.start(Path(options.out_dir), document, console, resuming=resuming)
    return Reporter(
        Path(options.out_dir),
        console,
        epochs=config.training["epochs"],
        start_epoch=start_epoch,
        tensorboard=options.tensorboard,
        metrics=METRICS[config.spec.task],
        tracking=tracking,
    )


def _resumed_progress(run: _Run, state: dict[str, Any] | None, resume_path: Path | None, start: int) -> _Progress:
    """Where the loop starts: a fresh run, an epoch's end, or mid-epoch (same batch size and data only); the
    random-number state is restored last, so nothing before the first step draws from it."""
    progress = _Progress(start, **state.get("progress", {})) if state is not None else _Progress()
    if progress.step and progress.steps_per_epoch != run.steps_per_epoch:
        raise CheckpointError(
            f"{resume_path}: was saved {progress.step} steps into an epoch of {progress.steps_per_epoch} steps; this "
            f"run has {run.steps_per_epoch} per epoch (another batch size or data?): a mid-epoch state resumes only "
            "with the batch size and data it was saved with"
        )
    progress.steps_per_epoch = run.steps_per_epoch
    if state is not None and progress.step:
        run.rng_after_iter = state["rng"]  # creating the epoch's batch iterator draws a seed, as it did before
    elif state is not None:
        restore_rng(state["rng"])
    return progress


def _loop_reporting(run: _Run, progress: _Progress, stop_after: int | None) -> None:
    """The epoch loop; the reporter is closed however it ends, and a stray KeyboardInterrupt says what is saved."""
    try:
        _loop(run, progress, stop_after)
    except KeyboardInterrupt:  # raised outside the signal handler (not the main thread, or by code): nothing saved
        run.reporter.close()
        raise Interrupted(
            f"interrupted in epoch {progress.epoch + 1}; {run.run_dir} holds epoch {progress.epoch}. Resume with: "
            f"{run.resume_hint}"
        ) from None
    except BaseException:
        run.reporter.close()
        raise
    run.reporter.summary(run.best_epoch, run.data.bad_samples)
    run.reporter.close()


def _finish(run: _Run, progress: _Progress, seconds: float) -> TrainResult:
    primary = PRIMARY[run.config.spec.task]
    if run.best_metric is not None:
        by = "lowest valid loss" if best_criterion(run.config) == "loss" else "best valid metric"
        value = f"{LABELS[primary]} {run.best_value:.2%}" if run.best_value is not None else "no metric"
        run.console.print(
            f"best ({by}): epoch {run.best_epoch}, {value} → {run.run_dir / 'best.safetensors'} ({seconds:.1f}s)",
            highlight=False,
            soft_wrap=True,
        )
    best = run.best_value if run.best_value is not None else run.best_metric
    return TrainResult(run.run_dir, progress.epoch, run.best_epoch, best, run.last_row, seconds, primary)


def best_criterion(config: RunConfig) -> str:
    return config.logging["model_save_options"]["best_model_criterion"]


def best_score(metrics: dict[str, Any], task: str, criterion: str) -> float:
    """What best.safetensors maximises, by NetsPresso's best_model_criterion: minus the validation loss ("loss", its
    default) or the task's metric ("metric"; detection: mAP@.5, NetsPresso's primary detection metric). Without a
    metric (a detection model.py without a postprocessor) the loss decides."""
    name = "map50" if task == "detection" else PRIMARY[task]
    if criterion == "metric" and metrics.get(name) is not None:
        return metrics[name]
    return -metrics["loss"]


def validates(config: RunConfig, epoch: int) -> bool:
    """Whether (1-based) ``epoch`` is validated: NetsPresso validates epochs 1, 1 + N, 1 + 2N, ... and the last."""
    every = config.logging["model_save_options"]["validation_epoch"]
    return epoch % every == 1 % every or epoch == config.training["epochs"]


@dataclass
class _Progress:
    """Where the run stands: what a training state records besides weights, optimiser, scheduler and RNG."""

    epoch: int = 0  # epochs completed
    step: int = 0  # optimiser steps done in epoch ``epoch`` (0: at an epoch's end)
    seen: int = 0  # samples and summed loss of those steps (this process's), for the epoch's train_loss
    loss_sum: float = 0.0
    seconds: float = 0.0  # training time those steps took
    steps_per_epoch: int = 0  # as the run that saved it had them: a mid-epoch resume must have the same

    def state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "seen": self.seen,
            "loss_sum": self.loss_sum,
            "seconds": self.seconds,
            "steps_per_epoch": self.steps_per_epoch,
        }

    def where(self) -> str:
        if not self.step:
            return f"epoch {self.epoch} done"
        return f"epoch {self.epoch} done and {self.step} step(s) of epoch {self.epoch + 1}"


@dataclass(eq=False)
class _Run:
    """Everything the loop works with, built once by ``_train``."""

    config: RunConfig
    place: Distributed
    device: torch.device
    run_dir: Path
    console: Console
    reporter: Reporter | SilentReporter
    data: DataBundle
    head: str | None
    model: nn.Module  # the DDP wrapper under torchrun
    net: nn.Module  # the model itself
    optimizer: torch.optim.Optimizer
    scheduler: Any
    ema: ModelEMA | None
    precision: Any
    loss_fn: Any
    augment: Any
    feed_targets: Any
    frozen: bool
    postprocessor: Any
    train_loader: DataLoader
    valid_loader: DataLoader
    batches: StepBatches
    generator: torch.Generator
    steps_per_epoch: int
    stops: StopSignals
    clock: CheckpointClock
    writer: BackgroundWriter  # checkpoint files reach the disk while the next steps train
    metadata: dict[str, Any]
    resume_hint: str
    best_metric: float | None
    best_epoch: int | None
    last_good: str  # the state to go back to, as messages name it
    last_row: dict[str, Any] = field(default_factory=dict)
    best_value: float | None = None  # the task's metric at the best epoch (best_model_criterion may be the loss)
    rng_after_iter: dict[str, Any] | None = None  # a mid-epoch resume restores the RNG after the iterator's draw
    checked: bool = False  # the first forward pass was checked against the data
    nonfinite_in_a_row: int = 0
    nonfinite_skipped: int = 0  # in this epoch

    @property
    def training(self) -> dict[str, Any]:
        return self.config.training

    @property
    def state_path(self) -> Path:
        return self.run_dir / "training_state.pt"


# --- the loop --------------------------------------------------------------------------------------------------


def _loop(run: _Run, progress: _Progress, stop_after: int | None) -> None:
    epochs = run.training["epochs"]
    if progress.epoch >= epochs:
        run.console.print(f"nothing to do: {progress.epoch} of {epochs} epochs are already done")
    while progress.epoch < epochs:
        if stop_after is not None and progress.epoch >= stop_after:
            break
        if _agreed_stop(run):  # a signal while setting up or evaluating: the state on disk is current
            _stop(run, progress, save=False)
        _train_one_epoch(run, progress)
        _end_epoch(run, progress)
    run.writer.wait()  # the files are on disk before the summary names them (and an export reads them)
    if _agreed_stop(run):  # a signal during the last evaluation or save: that save completed, nothing is lost
        _stop(run, progress, save=False)


def _train_one_epoch(run: _Run, progress: _Progress) -> None:
    """Train epoch ``progress.epoch`` from step ``progress.step`` on, saving mid-epoch states as they fall due."""
    epoch, seed = progress.epoch, run.training["seed"]
    run.generator.manual_seed(seed * 100_003 + epoch)
    order = run.batches.order  # the ResumingSampler
    if isinstance(order.order, DistributedSampler):
        order.order.set_epoch(epoch)  # seeds its permutation with seed * 100_003 + epoch, as above
    order.skip = progress.step * run.batches.batch_size
    run.batches.epoch = epoch  # the tag each batch takes to the worker that augments it
    lr = run.optimizer.param_groups[0]["lr"]
    run.model.train()
    run.loss_fn.set_epoch(epoch + 1)
    if run.frozen:
        keep_frozen_eval(run.net)
    run.reporter.start_epoch(epoch, run.steps_per_epoch, lr)
    tick = time.perf_counter() - progress.seconds
    batches = iter(run.train_loader)
    if run.rng_after_iter is not None:
        restore_rng(run.rng_after_iter)
        run.rng_after_iter = None
    try:
        _run_steps(run, progress, batches, lr, tick)
    except BaseException:
        shutdown = getattr(batches, "_shutdown_workers", None)  # now: the traceback holds the iterator (and keeps
        if shutdown is not None:  # its worker processes alive) for as long as anyone looks at the error
            shutdown()
        raise


def _run_steps(run: _Run, progress: _Progress, batches: Iterator, lr: float, tick: float) -> None:
    epoch = progress.epoch
    for step, (batch, dropped) in enumerate(batches, start=progress.step):
        run.writer.check()  # a checkpoint write that failed in the background stops the run here
        batch = _without_dropped(run, batch, dropped)
        loss, stopping = _train_step(run, batch, epoch, step)
        progress.step, progress.seconds = step + 1, time.perf_counter() - tick
        if loss is not None:
            progress.seen += len(batch[0])
            progress.loss_sum += loss * len(batch[0])
            speed = run.place.world_size * progress.seen / max(progress.seconds, 1e-9)  # rank 0's loss, all's speed
            run.reporter.step(epoch * run.steps_per_epoch + step, loss, lr, speed)
        if stopping or (not run.place.enabled and run.stops.requested):  # one process: the latest word counts
            _stop(run, progress, save=True)
        global_step = epoch * run.steps_per_epoch + step + 1
        if step + 1 < run.steps_per_epoch and run.place.is_main and run.clock.due(global_step):
            _save_state(run, progress)


def _train_step(run: _Run, batch: Any, epoch: int, step: int) -> tuple[float | None, bool]:
    """One optimiser step: (its loss, or None when it was skipped; whether the processes agreed to stop)."""
    loss, parts = None, {}
    if batch is not None:
        images, target = _on_device(run, batch, epoch, step)
        loss, parts = _forward(run, images, target)
    finite = loss is None or bool(torch.isfinite(loss.detach()))
    # every process must take the same turn here, or DDP's gradient averaging would wait for ever
    empty, nonfinite, stopping = any_rank([batch is None, not finite, run.stops.requested], run.place, run.device)
    if empty:
        return None, stopping
    if nonfinite:
        _nonfinite(run, loss, parts, epoch, step)
        return None, stopping
    run.nonfinite_in_a_row = 0
    optimizer, scaler = run.optimizer, run.precision.scaler
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()  # without float16 the scaler passes everything through
    if run.training.get("max_norm"):  # DDP has averaged the gradients: every rank clips the same ones
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_([p for p in run.net.parameters() if p.requires_grad], run.training["max_norm"])
    scaler.step(optimizer)  # skips the step when float16 gradients overflowed
    scaler.update()
    if run.ema is not None:
        run.ema.update(run.net)
    return float(loss.detach()), stopping


def _on_device(run: _Run, batch: Any, epoch: int, step: int) -> tuple[torch.Tensor, Any]:
    images, target = batch
    images, target = images.to(run.device, non_blocking=True), to_device(target, run.device)
    if run.augment is not None:  # on the GPU, from a generator seeded by (seed, rank, epoch, step); on a CPU the
        # loader has augmented the batch already, with the same seed (data.batches)
        images, target = run.augment(images, target, epoch=epoch, step=step)
    run.feed_targets(target, tuple(images.shape[-2:]))
    return images, target


def _forward(run: _Run, images: torch.Tensor, target: Any) -> tuple[torch.Tensor, dict[str, float]]:
    model_py = run.run_dir / "model.py"
    with run.precision.autocast():
        if not run.checked:  # the first batch: a failing forward pass is most likely a data/model mismatch
            out = _first_forward(run.model, images, model_py)
            check_output(out, run.data.num_classes, len(images), model_py, run.config.spec.task, run.head)
            run.checked = True
        else:
            out = run.model(images)
    loss, parts = run.loss_fn(to_float32(out), target, tuple(images.shape[-2:]))  # losses run in float32
    return loss, parts if isinstance(parts, dict) else {}


def _nonfinite(run: _Run, loss: torch.Tensor | None, parts: dict[str, float], epoch: int, step: int) -> None:
    """``training.on_nonfinite``: stop with a message, or leave the step out (the weights stay as they were)."""
    total = float(loss.detach()) if loss is not None else math.nan
    elsewhere = math.isfinite(total)  # under torchrun: another process's loss went non-finite
    message = nonfinite_message(total, parts, epoch + 1, step + 1, run.last_good, elsewhere=elsewhere)
    if run.training.get("on_nonfinite", "stop") != "skip":
        raise RunError(message)
    run.optimizer.zero_grad(set_to_none=True)
    run.nonfinite_in_a_row += 1
    run.nonfinite_skipped += 1
    limit = run.training.get("max_consecutive_nonfinite", 10)
    if run.nonfinite_in_a_row >= limit:
        raise RunError(f"{limit} steps in a row were skipped (training.max_consecutive_nonfinite); the last: {message}")


def _without_dropped(run: _Run, batch: Any, dropped: list[Dropped]) -> Any:
    """The batch with this step's unreadable files counted (``skip``); None when too little of it is left."""
    _count_dropped(run, "train", dropped)
    if dropped and batch is not None and len(batch[0]) < 2:  # BatchNorm cannot train on one sample: left out
        return None
    return batch


def _readable(run: _Run, split: str, loader: DataLoader) -> Iterator[Any]:
    """The loader's batches less the files that no longer read (``skip``: counted, as in training)."""
    for batch, dropped in loader:
        _count_dropped(run, split, dropped)
        if batch is not None:
            yield batch


def _count_dropped(run: _Run, split: str, dropped: list[Dropped]) -> None:
    for sample in run.data.bad_samples.dropped(split, dropped) if dropped else []:
        run.console.print(
            f"[yellow]warning:[/] skipped {sample.message} (it no longer reads; --on-bad-sample skip)",
            highlight=False,
            soft_wrap=True,
        )


def _end_epoch(run: _Run, progress: _Progress) -> None:
    """Step the schedule, validate, and save best / last / metrics.csv / training_state.pt (rank 0)."""
    place, epoch = run.place, progress.epoch
    epoch_started = time.perf_counter() - progress.seconds
    lr = run.optimizer.param_groups[0]["lr"]
    with warnings.catch_warnings():  # a run resumed after its epoch's last step reaches here without a step
        warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler.step\(\)` before")
        run.scheduler.step()
    loss_sum, seen = all_sum([progress.loss_sum, progress.seen], place, run.device)
    if place.enabled and run.data.bad_samples is not None:  # each process dropped from its own share: pool them
        for skipped in all_gather(run.data.bad_samples.skipped, place):
            run.data.bad_samples.merge(skipped)
    eval_model = run.ema.module if run.ema is not None else run.net
    task, primary = run.config.spec.task, PRIMARY[run.config.spec.task]
    metrics = {"loss": None, **dict.fromkeys(METRICS[task])}  # an epoch logging.validation_epoch skips
    validated = validates(run.config, epoch + 1)  # every rank decides alike
    if validated:
        if place.is_main:  # the other ranks wait for the metrics in broadcast()
            metrics = evaluate(
                eval_model, _readable(run, "valid", run.valid_loader), run.loss_fn, run.data.num_classes,
                run.device, task=task, postprocessor=run.postprocessor,
            )  # fmt: skip
        metrics = broadcast(metrics, place)
    score = best_score(metrics, task, best_criterion(run.config)) if validated else None
    improved = score is not None and (run.best_metric is None or score > run.best_metric)
    if improved:
        run.best_metric, run.best_epoch, run.best_value = score, epoch + 1, metrics[primary]
    run.last_row = {
        "epoch": epoch + 1,
        "train_loss": loss_sum / max(1, seen),
        "valid_loss": metrics["loss"],
        **{f"valid_{name}": metrics[name] for name in METRICS[task]},
        "lr": lr,
        "epoch_seconds": time.perf_counter() - epoch_started,
        "train_images_per_second": seen / max(progress.seconds, 1e-9),
    }
    if run.nonfinite_skipped:
        run.console.print(
            f"[yellow]warning:[/] epoch {epoch + 1}: {run.nonfinite_skipped} step(s) with a non-finite loss were "
            "skipped (training.on_nonfinite: skip)",
            highlight=False,
        )
        run.nonfinite_skipped = 0
    progress.epoch, progress.step, progress.seen, progress.loss_sum, progress.seconds = epoch + 1, 0, 0, 0.0, 0.0
    if place.is_main:
        _save_epoch(run, progress, eval_model, metrics[primary], improved)


def _save_epoch(run: _Run, progress: _Progress, eval_model: nn.Module, value: Any, improved: bool) -> None:
    """best (if improved) → last → metrics.csv → training_state.pt, so the state always points at a whole epoch."""
    weights = eval_model.state_dict()
    bad = [name for name, tensor in weights.items() if tensor.is_floating_point() and not tensor.isfinite().all()]
    if bad:
        raise RunError(
            f"the weights became non-finite in epoch {progress.epoch} ({len(bad)} tensor(s), e.g. {bad[0]}); "
            f"best and last were not written; last good checkpoint: {run.last_good}"
        )
    weights = weights_snapshot(weights)  # one copy for every file: the next steps change the live tensors
    meta = {**run.metadata, "epoch": progress.epoch, f"valid_{PRIMARY[run.config.spec.task]}": value}
    if improved:
        run.writer.submit(write_weights, run.run_dir / "best.safetensors", weights, meta)
    options = run.config.logging["model_save_options"]
    every = options["save_checkpoint_epoch"]  # NetsPresso's epoch_N checkpoints, unless save_best_only
    if not options["save_best_only"] and (
        progress.epoch % every == 1 % every or progress.epoch == run.training["epochs"]
    ):
        run.writer.submit(write_weights, run.run_dir / f"epoch_{progress.epoch}.safetensors", weights, meta)
    run.writer.submit(write_weights, run.run_dir / "last.safetensors", weights, meta)
    run.reporter.end_epoch(run.last_row, improved)
    if run.data.bad_samples is not None and run.data.bad_samples.policy == "skip":
        write_bad_samples(run.run_dir / "bad_samples.json", run.data.bad_samples)  # with mid-epoch drops
    if options["save_optimizer_state"]:  # false: no training_state.pt, so the run cannot resume
        _save_state(run, progress)


def _save_state(run: _Run, progress: _Progress) -> None:
    """``training_state.pt`` at ``progress``: at an epoch's end, or mid-epoch (checkpoint_every, a stop signal).
    Written in the background after what was submitted before it."""
    state = copy.deepcopy(  # a copy: the next steps change the weights and the optimizer's tensors in place
        {
            "format": STATE_FORMAT,
            "version": 2,  # 2: "progress" (the position within an epoch) was added
            "epoch": progress.epoch,
            "progress": progress.state(),
            "epochs": run.training["epochs"],
            "num_classes": run.data.num_classes,
            "model": run.net.state_dict(),
            "optimizer": run.optimizer.state_dict(),
            "scheduler": run.scheduler.state_dict(),
            "ema": run.ema.state_dict() if run.ema is not None else None,
            "grad_scaler": run.precision.scaler.state_dict(),  # {} unless float16 on CUDA
            "best_metric": run.best_metric,  # the best_model_criterion score (minus the loss for "loss")
            "criterion": best_criterion(run.config),
            "best_value": run.best_value,
            "metric": PRIMARY[run.config.spec.task],
            "best_epoch": run.best_epoch,
            "seed": run.training["seed"],
            "rng": capture_rng(),  # rank 0's; every rank seeds and draws alike, so one stands for all
        },
    )
    where = f"{run.state_path} ({progress.where()})"

    def write() -> None:
        save_training_state(run.state_path, state)
        run.last_good = where

    run.writer.submit(write)
    run.clock.saved()


def _agreed_stop(run: _Run) -> bool:
    return any_rank([run.stops.requested], run.place, run.device)[0]


def _stop(run: _Run, progress: _Progress, *, save: bool) -> None:
    """Save where the run stands (rank 0; after the step every process agreed on), then raise Interrupted."""
    if save and run.place.is_main:
        run.console.print(f"npc train: {run.stops.name}: saving the training state ...", highlight=False)
        _save_state(run, progress)
    run.writer.wait()  # the state, and what was queued before it, is on disk before the message says so
    wait(run.place)  # no process leaves before rank 0's state is on disk
    if not save and progress.epoch == 0 and progress.step == 0:
        raise Interrupted(f"stopped by {run.stops.name} before the first step: nothing to resume", run.stops.signal)
    ignored = run.stops.repeated
    also = f" ({ignored} further signal(s) were ignored so that the save could finish)" if ignored else ""
    raise Interrupted(
        f"stopped by {run.stops.name}: {run.state_path} holds {progress.where()}{also}. Resume with: {run.resume_hint}",
        run.stops.signal,
    )


def _resume_hint(config: RunConfig, options: TrainOptions, run_dir: Path) -> str:
    """The command that continues this run: the one that started it (when known) with --resume."""
    words = shlex.split(options.command) if options.command else []
    if len(words) <= 2 and sys.argv[1:2] == ["train"]:  # started as `python -m npc train ...`: the same arguments
        words = ["npc", *sys.argv[1:]]
    if "--resume" in words[:-1]:  # a resumed run stopped again: the same command still does
        return shlex.join(words)
    if len(words) > 2:
        return shlex.join([*words, "--resume", str(run_dir)])
    return shlex.join(["npc", "train", str(config.spec_path), "--out", str(run_dir), "--resume", str(run_dir)])


def detection_postprocessor(module: Any, task: str) -> tuple[Any, list[str]]:
    """The compiled model.py's ``build_postprocessor()`` (decode + NMS with the spec's postprocessor params)."""
    if task != "detection":
        return None, []
    build_post = getattr(module, "build_postprocessor", None)
    if not callable(build_post):
        return None, ["the model.py defines no build_postprocessor(): mAP is not computed (best = lowest valid loss)"]
    return build_post(), []


def _first_forward(model: nn.Module, images: torch.Tensor, path: Path) -> Any:
    try:
        return model(images)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RunError(
            f"{path}: the forward pass failed on a batch of shape {tuple(images.shape)}: {first} "
            "(is data.image_size large enough for this model?)"
        ) from None


def _resume(
    state, path, model, optimizer, scheduler, ema, data: DataBundle, scaler: torch.amp.GradScaler
) -> tuple[int, float | None, int | None]:
    if state.get("num_classes") != data.num_classes:
        raise CheckpointError(
            f"{path}: was trained with {state.get('num_classes')} classes; the data has {data.num_classes}"
        )
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if ema is not None and state.get("ema"):
            ema.load_state_dict(state["ema"])
        if scaler.is_enabled() and state.get("grad_scaler"):  # the loss scale it had reached
            scaler.load_state_dict(state["grad_scaler"])
    except (RuntimeError, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: does not fit this model/training setup ({first})") from None
    return int(state["epoch"]), state.get("best_metric", state.get("best_top1")), state.get("best_epoch")


def _weights_metadata(config: RunConfig, data: DataBundle) -> dict[str, Any]:
    return {
        "npc_version": __version__,
        "task": config.spec.task,
        "model": config.spec.name,
        "num_classes": data.num_classes,
        "class_names": data.class_names,
        "preprocess": data.preprocess.to_json(),
        "ema": bool(config.training.get("ema")),
    }


def _resolved_yaml(
    config: RunConfig, data: DataBundle, options: TrainOptions, device: torch.device, place: Distributed
) -> str:
    from ruamel.yaml import YAML

    document = config.resolved_document()
    document["data"]["num_classes"] = data.num_classes  # checked against the data when the file is reused
    root = (document["data"].get("path") or {}).get("root")
    if root:
        document["data"]["path"]["root"] = str(Path(root).expanduser().resolve())
    metadata = document["data"].get("metadata") or {}  # format huggingface: a local folder, like path.root
    if metadata.get("repo") and Path(metadata["repo"]).expanduser().is_dir():
        metadata["repo"] = str(Path(metadata["repo"]).expanduser().resolve())
    if metadata.get("custom_cache_dir"):
        metadata["custom_cache_dir"] = str(Path(metadata["custom_cache_dir"]).expanduser().resolve())
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False
    buffer = io.StringIO()
    yaml.dump(document, buffer)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    processes = f" x {place.world_size} processes" if place.enabled else ""
    header = (
        f"# Resolved by npc {__version__} at {now} (torch {torch.__version__}, device {device}{processes}, "
        f"python {sys.version.split()[0]}).\n"
        f"# command: {options.command or 'npc train'}\n"
        "# The model, training and data sections as this run used them (defaults filled in).\n"
        "# `npc train` accepts this file as a spec: it repeats the run.\n"
    )
    body = buffer.getvalue()
    return header + body
