"""The runtime's subcommands: ``npc train``, ``npc evaluate``, ``npc predict``.

Registering them imports neither torch nor the training code: ``npc validate``/``npc compile`` stay fast and work
without torch. Handlers import what they need when they run. User mistakes print a message naming the file (or
located spec diagnostics) and return 1 (invalid) or 2 (missing/unreadable, usage); never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import shutil
import sys
from pathlib import Path

from ..errors import UNUSABLE
from ..runtime.errors import RunError
from .common import Parser, non_negative_int, positive_float, positive_int, probability
from .exits import ExitCode, clean_message

__all__ = ["register"]

RUN_OUTPUTS = (
    "metrics.csv",
    "last.safetensors",
    "best.safetensors",
    "training_state.pt",
    "bad_samples.json",
    "mlflow_run.json",
)
BAD_SAMPLE_HELP = (
    "a corrupt image, a mask of another size than its image, a box outside its image or a label outside the class "
    "list: error stops (default; or data.on_bad_sample), skip leaves the sample out and counts it"
)


def register(subparsers) -> None:
    _register_train(subparsers)
    _register_evaluate(subparsers)
    _register_predict(subparsers)


def _register_train(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a classification, segmentation, detection or pose spec (built-in digits/shapes/stick_figures "
        "data unless a data: section or --data says otherwise)",
        description="Compile SPEC, train it, validate every epoch and save the run folder "
        "(model.py, resolved.yaml, last/best.safetensors, training_state.pt, metrics.csv, tb/).",
    )
    p.__class__ = _TrainParser  # its own usage errors, after checking SPEC / --model (see _TrainParser)
    p.add_argument(
        "spec", metavar="SPEC", nargs="?", help="model spec (may hold training:, data:, ... sections); or --model"
    )
    p.add_argument("--model", metavar="FILE", help="the model spec, as NetsPresso Trainer's --model (instead of SPEC)")
    p.add_argument("--training", metavar="FILE", help="YAML/JSON with a top-level training: section")
    p.add_argument("--data", metavar="FILE", help="YAML/JSON with a top-level data: section")
    p.add_argument(
        "--augmentation", metavar="FILE", help="YAML/JSON with a top-level augmentation: section (NetsPresso names)"
    )
    p.add_argument(
        "--environment", metavar="FILE", help="YAML/JSON with a top-level environment: section (seed, batch_size, ...)"
    )
    p.add_argument(
        "--logging", metavar="FILE", help="YAML/JSON with a top-level logging: section (output_dir, tensorboard, ...)"
    )
    p.add_argument("--no-augment", action="store_true", help="ignore the augmentation: section (train on plain data)")
    p.add_argument("--out", metavar="RUN_DIR", help="run folder (default: a new runs/<spec name>[-N])")
    p.add_argument("--epochs", type=positive_int, help="override training.epochs")
    p.add_argument("--batch-size", type=positive_int, help="override training.batch_size")
    p.add_argument("--lr", type=positive_float, help="override training.optimizer.lr")
    p.add_argument("--seed", type=non_negative_int, help="override training.seed")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda when available")
    p.add_argument("--model-py", metavar="FILE", help="train this compiled model.py instead of compiling SPEC")
    p.add_argument(
        "--resume",
        metavar="STATE",
        help="continue from a training_state.pt (or its run folder); same as model.checkpoint.optimizer_path",
    )
    p.add_argument("--no-tensorboard", action="store_true", help="do not write tb/ logs")
    p.add_argument("--on-bad-sample", choices=("skip", "error"), default=None, help=BAD_SAMPLE_HELP)
    p.add_argument(
        "--trust-pickle",
        "--trust-checkpoint",
        dest="trust_pickle",
        action="store_true",
        help="allow the spec's fx_model_checkpoint (a pickled torch.fx model: loading it runs code from the file)",
    )
    p.set_defaults(handler=_train)


def _register_evaluate(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="print validation metrics of trained weights")
    p.add_argument("spec", metavar="SPEC", help="model spec, or a run folder (uses its resolved.yaml and model.py)")
    p.add_argument("--weights", metavar="W", help=".safetensors or .pth state dict (run folder: best.safetensors)")
    p.add_argument("--training", metavar="FILE", help="YAML/JSON with a training: section (batch size)")
    p.add_argument("--data", metavar="FILE", help="YAML/JSON with a top-level data: section")
    p.add_argument("--split", choices=("train", "valid", "test"), default="valid")
    p.add_argument("--on-bad-sample", choices=("skip", "error"), default=None, help=BAD_SAMPLE_HELP)
    p.add_argument("--batch-size", type=positive_int)
    p.add_argument("--device", choices=("cpu", "cuda"), default=None)
    p.add_argument("--model-py", metavar="FILE", help="use this compiled model.py instead of compiling SPEC")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(handler=_evaluate)


def _register_predict(subparsers) -> None:
    p = subparsers.add_parser(
        "predict",
        help="print the label (classification), class shares (segmentation), boxes (detection) or keypoints (pose) "
        "per image",
    )
    p.add_argument("spec", metavar="SPEC", help="model spec, or a run folder (uses its resolved.yaml and model.py)")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--weights", metavar="W", help=".safetensors or .pth state dict (run folder: best.safetensors)")
    p.add_argument("--data", metavar="FILE", help="take class names and preprocessing from this data: section")
    p.add_argument("--top-k", type=positive_int, default=1, help="also list the K best labels (classification)")
    p.add_argument(
        "--min-score", type=probability, default=0.3, help="detection: print boxes scoring at least this (0.3)"
    )
    p.add_argument("--masks", metavar="DIR", help="segmentation: write each image's class-index mask PNG into DIR")
    p.add_argument(
        "--keypoints",
        metavar="DIR",
        help="pose: write <image>.keypoints.json and <image>.keypoints.png (keypoints drawn) per image into DIR",
    )
    p.add_argument(
        "--draw",
        metavar="DIR",
        help="write each image with its boxes (detection), mask (segmentation) or keypoints (pose) drawn on it, "
        "as DIR/<image>.png",
    )
    p.add_argument("--device", choices=("cpu", "cuda"), default=None)
    p.add_argument("--model-py", metavar="FILE", help="use this compiled model.py instead of compiling SPEC")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(handler=_predict)


class _TrainParser(Parser):
    """``npc train``'s parser: reports unknown arguments and a missing or doubled spec with ``npc train``'s usage.

    argparse hands a subcommand's unknown arguments up to the top-level parser, whose error shows ``npc``'s usage;
    the peer's six-file command line (``--model FILE`` instead of SPEC) is checked here too, so the message and
    usage are the subcommand's.
    """

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        if namespace.spec is None and namespace.model is None:
            self.error("the model spec is required: give SPEC or --model FILE")
        if namespace.spec is not None and namespace.model is not None:
            self.error(f"give the model spec once: SPEC ({namespace.spec}) or --model ({namespace.model})")
        namespace.spec = namespace.spec if namespace.spec is not None else namespace.model
        return namespace, extras


# --- shared ------------------------------------------------------------------------------------------------------


def _config(args: argparse.Namespace, *, training: str | None = None, overrides: dict | None = None):
    from ..spec.run_config import load_run_config

    return _with_bad_sample_policy(
        args,
        load_run_config(
            args.spec,
            training_path=training,
            data_path=getattr(args, "data", None),
            augmentation_path=getattr(args, "augmentation", None),
            environment_path=getattr(args, "environment", None),
            logging_path=getattr(args, "logging", None),
            overrides=overrides,
        ),
    )


def _with_bad_sample_policy(args: argparse.Namespace, config):
    """``--on-bad-sample`` goes into the data section, so resolved.yaml records it and the loaders read it there."""
    if getattr(args, "on_bad_sample", None):
        config.data["on_bad_sample"] = args.on_bad_sample
    return config


def _run_folder(args: argparse.Namespace) -> None:
    """SPEC may be a run folder: take its resolved.yaml, model.py and best.safetensors unless told otherwise."""
    folder = Path(args.spec)
    if not folder.is_dir():
        if args.weights is None:
            raise RunError("--weights is required (or give a run folder as SPEC)", UNUSABLE)
        return
    resolved = folder / "resolved.yaml"
    if not resolved.is_file():
        raise RunError(f"{folder}: is a folder without resolved.yaml (not an npc train run folder)", UNUSABLE)
    args.spec = str(resolved)
    if args.model_py is None and (folder / "model.py").is_file():
        args.model_py = str(folder / "model.py")
    if args.weights is None:
        args.weights = str(folder / "best.safetensors")


# --- train -------------------------------------------------------------------------------------------------------


def _train(args: argparse.Namespace) -> int:
    overrides = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed}
    config = _config(args, training=args.training, overrides=overrides)  # validate before importing torch
    if args.no_augment:
        config = dataclasses.replace(config, augmentation=None)

    from rich.console import Console

    from ..runtime.engine import TrainOptions, train
    from ..runtime.engine.distributed import requested
    from ..runtime.tools.infer import OutputNames

    logging = config.logging
    if logging["mlflow"]:
        from ..runtime.engine.tracking import require_mlflow

        require_mlflow()  # without the extra: exit 2 naming it, before any work
    console = Console(quiet=not logging["stdout"])  # logging.stdout: false prints nothing but errors (stderr)
    place = requested()  # under torchrun: this process's rank; the group is joined in train()
    if place.enabled and not args.out:  # each process would pick its own fresh runs/<name>-N folder
        raise RunError("under torchrun, give the run folder with --out", UNUSABLE)
    resume = Path(args.resume) if args.resume else None
    resuming = resume is not None or bool(config.spec.checkpoint.optimizer_path)
    name = logging["project_id"] or OutputNames().stem(args.spec).replace(".", "-")
    out = Path(args.out) if args.out else _fresh_folder(Path(logging["output_dir"]) / name)
    device = args.device or _environment_device(config.environment, place, console, out)
    if place.is_main and not resuming and out.is_dir() and any((out / name).exists() for name in RUN_OUTPUTS):
        from ..runtime.engine.faults import refuse_if_in_use

        refuse_if_in_use(out)  # a run going on in that folder keeps its files
        _check_data(config)  # bad data must not cost the previous run its files
        console.print(f"[yellow]note:[/] replacing the previous run in {out}", highlight=False)
        for name in RUN_OUTPUTS:
            (out / name).unlink(missing_ok=True)
        shutil.rmtree(out / "tb", ignore_errors=True)
        shutil.rmtree(out / "mlruns", ignore_errors=True)  # the replaced run's own MLflow record (the default place)
    options = TrainOptions(
        out_dir=out,
        device=device,
        model_py=Path(args.model_py) if args.model_py else None,
        resume=resume,
        tensorboard=not args.no_tensorboard and logging["tensorboard"],
        trust_pickle=args.trust_pickle,
        command=shlex.join(["npc", *sys.argv[1:]]) if sys.argv and Path(sys.argv[0]).name == "npc" else "npc train",
    )
    result = train(config, options, console)
    if place.is_main and result.best_epoch is not None:
        _end_of_run(config, out, console)
    return ExitCode.OK


def _end_of_run(config, out: Path, console) -> None:
    """logging.yaml's num_save_samples and onnx_export_opset, from best.safetensors. As in NetsPresso, a failure
    there is a warning: the run itself is saved."""
    from ..runtime.tools.run_extras import export_best, save_samples

    options, count = config.logging["model_save_options"], config.logging.get("num_save_samples")
    steps = []
    if count:
        steps.append(("num_save_samples", lambda: "{} sample(s) → {}".format(*save_samples(config, out, count))))
    if options.get("onnx_export_opset"):
        steps.append(("onnx_export_opset", lambda: _onnx_line(export_best(out, options), options)))
    for key, step in steps:
        try:
            console.print(f"logging.{key}: {step()}", highlight=False, soft_wrap=True)
        except RunError as exc:
            console.print(
                f"[yellow]warning:[/] logging.{key}: {clean_message(exc.message)}", highlight=False, soft_wrap=True
            )
    if steps and config.logging["mlflow"]:  # the export and the drawn samples join the MLflow run's artifacts
        from ..runtime.engine.tracking import MlflowLog

        tracking = MlflowLog.reopen(out, console)
        if tracking is not None:
            tracking.artifacts(sorted(out.glob("*.onnx")) + [p for p in (out / "samples",) if p.is_dir()])


def _onnx_line(report, options: dict) -> str:
    return (
        f"{report.output} (opset {options['onnx_export_opset']}, verified with {report.verified_with} on "
        f"{report.verified_on}: max abs diff {report.max_abs_diff:.3g})"
    )


def _environment_device(environment: dict, place, console, out: Path) -> str | None:
    """environment.gpus as NetsPresso reads it: one index trains on that GPU; several start one process per GPU
    under torchrun (this process becomes torchrun); without CUDA, the CPU, with a note. None: npc's default."""
    from ..spec.run_config import gpu_list

    gpus = gpu_list(environment.get("gpus"))
    if gpus is None or place.enabled:  # under torchrun each process already has its GPU (cuda:LOCAL_RANK)
        return None
    import torch

    if not torch.cuda.is_available():
        console.print(
            f"[yellow]note:[/] environment.gpus asks for GPU(s) {', '.join(map(str, gpus))}, but no CUDA device "
            "is available: training on the CPU in one process",
            highlight=False,
        )
        return "cpu"
    if len(gpus) == 1:
        return f"cuda:{gpus[0]}"
    command, env = torchrun_command(gpus, sys.argv[1:], out)
    console.print(f"environment.gpus: {len(gpus)} GPUs: {shlex.join(command)}", highlight=False, soft_wrap=True)
    sys.stdout.flush()
    os.execvpe(command[0], command, {**os.environ, **env})  # noqa: S606 (our own interpreter, our own arguments)
    raise AssertionError("unreachable")  # pragma: no cover


def torchrun_command(gpus: list[int], argv: list[str], out: Path) -> tuple[list[str], dict[str, str]]:
    """The torchrun command line that repeats ``npc`` + ``argv`` in one process per GPU of ``gpus`` (which it
    makes the visible ones), with the run folder fixed so every process writes and reads the same one."""
    rest = list(argv)
    if "--out" not in rest and not any(arg.startswith("--out=") for arg in rest):
        rest += ["--out", str(out)]
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={len(gpus)}", "-m", "npc", *rest]
    return command, {"CUDA_VISIBLE_DEVICES": ",".join(map(str, gpus))}


def _check_data(config) -> None:
    """Build (and so check) the training data once; raises the DataError that train() would raise."""
    from ..runtime.data import build_data

    build_data(config.data, ("train", "valid"), task=config.spec.task)


def _fresh_folder(base: Path) -> Path:
    if not base.exists():
        return base
    index = 2
    while Path(f"{base}-{index}").exists():
        index += 1
    return Path(f"{base}-{index}")


# --- evaluate / predict -------------------------------------------------------------------------------------------


def _evaluate(args: argparse.Namespace) -> int:
    if _is_onnx(args):
        from ..runtime.tools import evaluate_onnx_file

        result = evaluate_onnx_file(args.spec, data_path=args.data, split=args.split, batch_size=args.batch_size)
    else:
        _run_folder(args)
        config = _config(args, training=args.training)

        from ..runtime.tools import evaluate_weights

        result = evaluate_weights(
            config,
            args.weights,
            split=args.split,
            model_py=args.model_py,
            device=args.device,
            batch_size=args.batch_size,
        )
    if args.format == "json":
        print(json.dumps(result, indent=2))
        return ExitCode.OK
    for note in result["notes"]:
        print(f"note: {note}", file=sys.stderr)
    from ..runtime.engine.report import LABELS

    rows = [
        ("weights", result["weights"]),
        ("data", result["data"]),
        ("split", f"{result['split']} ({result['samples']} samples)"),
    ]
    rows += [("loss", f"{result['loss']:.4f}")] if result["loss"] is not None else []
    rows += [(LABELS[m], f"{result[m]:.2%}") for m in result["metrics"] if result[m] is not None]
    rows += _skipped_rows(result.get("bad_samples"), result["split"])
    for key, value in rows:
        print(f"{key:<10} {value}")
    return ExitCode.OK


def _is_onnx(args: argparse.Namespace) -> bool:
    """SPEC is an exported ``.onnx`` file: onnxruntime runs it; options that name torch weights do not apply."""
    if Path(args.spec).suffix.lower() != ".onnx":
        return False
    clashing = [f"--{name.replace('_', '-')}" for name in ("weights", "model_py", "device") if getattr(args, name)]
    if getattr(args, "training", None):
        clashing.append("--training")
    if args.handler is _predict and args.data:
        clashing.append("--data")  # the file carries its class names and preprocessing
    if clashing:
        raise RunError(
            f"{', '.join(clashing)}: not for an ONNX file ({args.spec} runs as it is, with its own class names "
            "and preprocessing)",
            UNUSABLE,
        )
    return True


def _skipped_rows(bad: dict | None, split: str) -> list[tuple[str, str]]:
    """A ``skipped`` row when --on-bad-sample skip left samples of the evaluated split out."""
    skipped = ((bad or {}).get("splits", {}).get(split) or {}).get("skipped") or {}
    if not skipped:
        return []
    reasons = ", ".join(f"{n} {reason}" for reason, n in skipped.items())
    return [("skipped", f"{sum(skipped.values())} bad sample(s) ({reasons})")]


def _predict(args: argparse.Namespace) -> int:
    outputs = {"mask_dir": args.masks, "keypoint_dir": args.keypoints, "draw_dir": args.draw}
    if _is_onnx(args):
        from ..runtime.tools.infer import predict_onnx

        records = predict_onnx(args.spec, args.images, top_k=args.top_k, min_score=args.min_score, **outputs)
    else:
        _run_folder(args)
        config = _config(args)

        from ..runtime.tools import predict_images

        records = predict_images(
            config,
            args.weights,
            args.images,
            model_py=args.model_py,
            device=args.device,
            top_k=args.top_k,
            use_data=args.data is not None,
            min_score=args.min_score,
            **outputs,
        )
    if args.format == "json":
        print(json.dumps(records, indent=2))
        return ExitCode.OK
    for record in records:
        if "keypoints" in record:
            found = ", ".join(f"{k['name']} {k['x']:g},{k['y']:g}" for k in record["keypoints"])
            print(f"{record['image']}\t{found}" + (f"\t{record['drawing']}" if "drawing" in record else ""))
            continue
        if "detections" in record:
            for found in record["detections"]:
                box = ",".join(f"{v:g}" for v in found["box"])
                print(f"{record['image']}\t{found['label']}\t{found['score']:.4f}\t{box}")
            if not record["detections"]:
                print(f"{record['image']}\t-")
            if "drawing" in record:
                print(f"{record['image']}\tdrawn: {record['drawing']}")
            continue
        if "classes" in record:
            shares = ", ".join(f"{name} {share:.1%}" for name, share in record["classes"].items())
            files = [record[key] for key in ("mask", "drawing") if key in record]
            print("\t".join([record["image"], shares, *files]))
            continue
        line = f"{record['image']}\t{record['label']}\t{record['score']:.4f}"
        if args.top_k > 1:
            line += "\t" + ", ".join(f"{r['label']} {r['score']:.4f}" for r in record["top_k"][1:])
        print(line)
    return ExitCode.OK
