"""``npc train``: compile → import → build → (load, freeze) → train/validate per epoch, in one process on one
device, or under ``torchrun`` in WORLD_SIZE processes with DistributedDataParallel (see ``_distributed``).

Each epoch ends with, in this order: ``best.safetensors`` (when the task's primary validation metric improved:
top-1, mIoU, mAP or PCK), ``last.safetensors``, ``metrics.csv``, ``training_state.pt`` — each written atomically, so
an interruption at any point leaves a run folder that resumes from the last completed epoch. With a fixed seed on
CPU, a resumed run ends with the same weights as an uninterrupted one: shuffling draws from a generator re-seeded
from (seed, epoch), and the global RNG states are saved and restored.

Under torchrun every process builds the same model from the same seed (DDP broadcasts rank 0's weights anyway),
shuffles with the same (seed, epoch) permutation and trains on its ``rank::world_size`` share of each global batch
(DistributedSampler); DDP averages the gradients. Only rank 0 prints, evaluates (the whole valid split, so metrics
equal a single-process run's) and writes the run folder; the other processes wait for its metrics.
"""

from __future__ import annotations

import datetime
import io
import os
import random
import sys
import tempfile
import time
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

from .. import __version__
from ._augment import build_augmentation
from ._bad_samples import write_bad_samples
from ._checkpoint import (
    atomic_write_text,
    capture_rng,
    load_training_state,
    restore_rng,
    save_training_state,
    save_weights,
)
from ._config import RunConfig
from ._data import DataBundle, build_data
from ._distributed import Distributed, all_sum, broadcast, per_rank_batch, start, stop, wait
from ._errors import EXIT_USAGE, CheckpointError, RunError
from ._load_model import (
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
)
from ._losses import build_loss
from ._metrics import LABELS, METRICS, PRIMARY, evaluate, to_device
from ._optim import ModelEMA, build_optimizer, build_scheduler
from ._precision import build_precision, to_float32
from ._report import Reporter, SilentReporter

__all__ = ["Interrupted", "TrainOptions", "TrainResult", "resolve_device", "train"]

STATE_FORMAT = "npc-training-state"
TASKS = ("classification", "segmentation", "detection", "pose_estimation")
ANCHOR_LAYOUT_SIZE = 512  # the input size anchor_decoupled_head lays its anchors out for (as NetsPresso does)


class Interrupted(RunError):
    def __init__(self, message: str) -> None:
        super().__init__(message, 130)


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
        raise RunError("--device cuda: no CUDA device is available (this torch build or machine has none)", EXIT_USAGE)
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def train(config: RunConfig, options: TrainOptions, console: Console | None = None) -> TrainResult:
    """Train in this process; under torchrun (WORLD_SIZE > 1) as one rank of a DDP group that this call joins."""
    place, device = start(resolve_device(options.device))
    try:
        result = _train(config, options, console or Console(), place, device)
        wait(place)  # no process leaves (and tears the group down) while another still needs it
        return result
    finally:
        stop(place)


def _train(
    config: RunConfig, options: TrainOptions, console: Console, place: Distributed, device: torch.device
) -> TrainResult:
    started = time.perf_counter()
    training = config.training
    epochs, seed = training["epochs"], training["seed"]
    run_dir = Path(options.out_dir)
    batch_size = per_rank_batch(training["batch_size"], place)
    if not place.is_main:
        console = Console(file=io.StringIO())  # rank 0 speaks for the group

    task = config.spec.task
    if task not in TASKS:
        raise RunError(f"{config.spec_path}: npc train supports the tasks {', '.join(TASKS)} (got {task!r})")
    seed_everything(seed)
    data = build_data(config.data, ("train", "valid"), task=task)
    head = head_name(config)
    loss_fn, loss_notes = build_loss(config.spec.losses, config.spec_source, task=task, head=head)
    notes = data.notes + loss_notes
    augment = build_augmentation(
        config.augmentation,
        task=task,
        preprocess=data.preprocess,
        seed=seed,
        rank=place.rank,
        epochs=epochs,
        num_classes=data.num_classes,
        keypoint_swap=data.keypoint_swap,
    )
    notes += [augment.note] if augment is not None else []
    precision = build_precision(training.get("mixed_precision"), device)
    notes += [precision.note] if precision.note else []
    if head == "anchor_decoupled_head" and data.preprocess.image_size != ANCHOR_LAYOUT_SIZE:
        notes.append(
            f"anchor_decoupled_head lays its anchors out for {ANCHOR_LAYOUT_SIZE}x{ANCHOR_LAYOUT_SIZE} inputs (as "
            f"NetsPresso Trainer does); at image_size {data.preprocess.image_size} they do not cover the image"
        )

    source = model_source(config, options.model_py)
    with ExitStack() as scratch:
        if place.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            model_py = run_dir / "model.py"
            atomic_write_text(run_dir / "resolved.yaml", _resolved_yaml(config, data, options, device, place))
            write_bad_samples(run_dir / "bad_samples.json", data.bad_samples)  # what on_bad_sample skipped
        else:  # only rank 0 writes the run folder; the others import the same source from a private copy
            model_py = Path(scratch.enter_context(tempfile.TemporaryDirectory(prefix="npc-rank-"))) / "model.py"
        atomic_write_text(model_py, source)
        module = import_model(model_py)
    torch.manual_seed(seed)  # the initial weights depend on the seed only
    model = build(module, data.num_classes, run_dir / "model.py")
    postprocessor, post_notes = detection_postprocessor(module, task)
    notes += post_notes

    resume_path = options.resume or (
        Path(config.spec.checkpoint.optimizer_path) if config.spec.checkpoint.optimizer_path else None
    )
    state = load_training_state(resume_path) if resume_path else None
    if state is None:
        _, checkpoint_notes = apply_checkpoint(model, config.spec.checkpoint, trust_pickle=options.trust_pickle)
        notes += checkpoint_notes
    else:
        notes.append(f"resuming from {resume_path} (epoch {state['epoch']} of {state.get('epochs')} done)")
    frozen = False
    if config.spec.freeze_backbone:
        frozen = freeze_backbone(model)
        if not frozen:
            notes.append("freeze_backbone is ignored: the model has no separate backbone (a 'full' model)")
    if training.get("sync_bn"):
        if place.enabled and device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        elif place.enabled:
            notes.append(
                "training.sync_bn is ignored on CPU (SyncBatchNorm runs on GPUs only): each process "
                "normalises over its own share of the batch"
            )
    model.to(device)
    loss_fn.to(device)
    try:
        optimizer = build_optimizer(model, training["optimizer"])
    except ValueError as exc:
        raise RunError(f"{config.spec_path}: {exc} (is everything frozen?)") from None
    scheduler = build_scheduler(optimizer, training, epochs)
    ema = ModelEMA(model, training["ema"]) if training.get("ema") else None

    start_epoch, best_metric, best_epoch = 0, None, None
    if state is not None:
        start_epoch, best_metric, best_epoch = _resume(
            state, resume_path, model, optimizer, scheduler, ema, data, precision.scaler
        )
        if state.get("epochs") not in (None, epochs):
            notes.append(
                f"training.epochs is {epochs} (was {state['epochs']}): the learning-rate schedule follows {epochs}"
            )

    where = str(device)
    if place.enabled:
        backend = "nccl" if device.type == "cuda" else "gloo"
        where = f"{place.world_size} processes ({backend}, {batch_size} images each per step)"
    console.print(
        f"npc train: {config.spec.name} ({sum(p.numel() for p in model.parameters()):,} parameters, "
        f"{sum(p.numel() for p in model.parameters() if p.requires_grad):,} trainable) on {where}; "
        f"data: {data.description}; run folder: {run_dir}",
        highlight=False,
        soft_wrap=True,
    )
    for note in notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)

    workers = training.get("num_workers")
    if workers is None:
        workers = 0 if data.in_memory else min(4, os.cpu_count() or 1)
    generator = torch.Generator()
    train_set, valid_set = data.splits["train"], data.splits["valid"]
    if place.enabled:  # the same (seed, epoch) permutation as one process; this rank takes every world_size-th index
        sampler = DistributedSampler(train_set, place.world_size, place.rank, shuffle=True, seed=seed * 100_003)
    else:
        sampler = RandomSampler(train_set, generator=generator)
    share = len(sampler)  # this process's samples per epoch
    train_loader = DataLoader(
        train_set,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        drop_last=share % batch_size == 1 and share > 1,  # BatchNorm cannot train on one sample
        pin_memory=device.type == "cuda",
        collate_fn=data.collate,
    )
    net = model  # the model itself: EMA, evaluation and the saved weights use it, never the DDP wrapper
    feed_targets = training_targets_feeder(net)  # RT-DETR's denoising queries are made from the ground truth
    if place.enabled:
        # RT-DETR's denoising embedding takes no part in a step whose batch has no boxes, and that can happen on
        # one rank only: DDP must then not wait for its gradient (find_unused_parameters costs a graph walk).
        model = DistributedDataParallel(
            net,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=takes_training_targets(net),
        )
    valid_loader = DataLoader(
        valid_set, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=data.collate
    )

    primary = PRIMARY[task]
    reporter = (
        Reporter(
            run_dir,
            console,
            epochs=epochs,
            start_epoch=start_epoch,
            tensorboard=options.tensorboard,
            metrics=METRICS[task],
        )
        if place.is_main
        else SilentReporter()
    )
    if state is not None:
        restore_rng(state["rng"])  # last: nothing between here and the first step draws random numbers
    metadata = _weights_metadata(config, data)
    last_row: dict[str, Any] = {}
    epoch = start_epoch
    checked = False
    try:
        if start_epoch >= epochs:
            console.print(f"nothing to do: {start_epoch} of {epochs} epochs are already done")
        for epoch in range(start_epoch, epochs):
            if options.stop_after is not None and epoch >= options.stop_after:
                break
            generator.manual_seed(seed * 100_003 + epoch)
            if isinstance(sampler, DistributedSampler):
                sampler.set_epoch(epoch)  # seeds its permutation with seed * 100_003 + epoch, as above
            lr = optimizer.param_groups[0]["lr"]
            model.train()
            loss_fn.set_epoch(epoch + 1)
            if frozen:
                keep_frozen_eval(net)
            reporter.start_epoch(epoch, len(train_loader), lr)
            tick, seen, loss_sum = time.perf_counter(), 0, 0.0
            for step, (images, target) in enumerate(train_loader):
                images, target = images.to(device, non_blocking=True), to_device(target, device)
                if augment is not None:  # on the device, from a generator seeded by (seed, rank, epoch, step)
                    images, target = augment(images, target, epoch=epoch, step=step)
                feed_targets(target, tuple(images.shape[-2:]))
                with precision.autocast():
                    if not checked:  # the first batch: a failing forward pass is most likely a data/model mismatch
                        out = _first_forward(model, images, run_dir / "model.py")
                        check_output(out, data.num_classes, len(images), run_dir / "model.py", task, head)
                        checked = True
                    else:
                        out = model(images)
                loss, _ = loss_fn(to_float32(out), target, tuple(images.shape[-2:]))  # losses run in float32
                if not torch.isfinite(loss):
                    raise RunError(
                        f"the loss became {float(loss)} at epoch {epoch + 1}, step {step + 1}: lower "
                        "training.optimizer.lr or set training.max_norm"
                    )
                optimizer.zero_grad(set_to_none=True)
                precision.scaler.scale(loss).backward()  # without float16 the scaler passes everything through
                if training.get("max_norm"):  # DDP has averaged the gradients: every rank clips the same ones
                    precision.scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_([p for p in net.parameters() if p.requires_grad], training["max_norm"])
                precision.scaler.step(optimizer)  # skips the step when float16 gradients overflowed
                precision.scaler.update()
                if ema is not None:
                    ema.update(net)
                seen += len(images)
                loss_sum += float(loss.detach()) * len(images)
                elapsed = time.perf_counter() - tick
                speed = place.world_size * seen / max(elapsed, 1e-9)  # rank 0's step loss, the group's speed
                reporter.step(epoch * len(train_loader) + step, float(loss.detach()), lr, speed)
            train_seconds = time.perf_counter() - tick
            scheduler.step()
            loss_sum, seen = all_sum([loss_sum, seen], place, device)

            eval_model = ema.module if ema is not None else net
            metrics = None
            if place.is_main:  # the other ranks wait for the metrics in broadcast()
                metrics = evaluate(
                    eval_model, valid_loader, loss_fn, data.num_classes, device, task=task, postprocessor=postprocessor
                )
            metrics = broadcast(metrics, place)
            score = metrics[primary] if metrics[primary] is not None else -metrics["loss"]
            improved = best_metric is None or score > best_metric
            if improved:
                best_metric, best_epoch = score, epoch + 1
            last_row = {
                "epoch": epoch + 1,
                "train_loss": loss_sum / max(1, seen),
                "valid_loss": metrics["loss"],
                **{f"valid_{name}": metrics[name] for name in METRICS[task]},
                "lr": lr,
                "epoch_seconds": time.perf_counter() - tick,
                "train_images_per_second": seen / max(train_seconds, 1e-9),
            }
            if place.is_main:
                weights = eval_model.state_dict()
                meta = {**metadata, "epoch": epoch + 1, f"valid_{primary}": metrics[primary]}
                if improved:
                    save_weights(run_dir / "best.safetensors", weights, meta)
                save_weights(run_dir / "last.safetensors", weights, meta)
                reporter.end_epoch(last_row, improved)
                save_training_state(
                    run_dir / "training_state.pt",
                    {
                        "format": STATE_FORMAT,
                        "version": 1,
                        "epoch": epoch + 1,
                        "epochs": epochs,
                        "num_classes": data.num_classes,
                        "model": net.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "ema": ema.state_dict() if ema is not None else None,
                        "grad_scaler": precision.scaler.state_dict(),  # {} unless float16 on CUDA
                        "best_metric": best_metric,
                        "metric": primary,
                        "best_epoch": best_epoch,
                        "seed": seed,
                        "rng": capture_rng(),  # rank 0's; every rank seeds and draws alike, so one stands for all
                    },
                )
            epoch += 1
    except KeyboardInterrupt:
        reporter.close()
        raise Interrupted(
            f"interrupted in epoch {epoch + 1}; {run_dir} holds epoch {epoch}. Resume with: "
            f"npc train {config.spec_path} --out {run_dir} --resume {run_dir / 'training_state.pt'}"
        ) from None
    except BaseException:
        reporter.close()
        raise
    reporter.summary(best_epoch, data.bad_samples)
    reporter.close()
    seconds = time.perf_counter() - started
    if best_metric is not None:
        value = f"{best_metric:.2%}" if best_metric >= 0 else f"loss {-best_metric:.4f}"
        console.print(
            f"best valid {LABELS[primary]} {value} at epoch {best_epoch} → {run_dir / 'best.safetensors'} "
            f"({seconds:.1f}s)",
            highlight=False,
            soft_wrap=True,
        )
    return TrainResult(run_dir, epoch, best_epoch, best_metric, last_row, seconds, primary)


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
        document["data"]["path"]["root"] = str(Path(root).resolve())
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
