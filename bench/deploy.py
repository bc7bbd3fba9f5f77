"""Deployment latency: npc's eager fp32 model, its fp32 ONNX export and its int8 ONNX export, side by side.

usage: python bench/deploy.py latency [--threads N] [--batch B] [--runs R] [ZOO_NAME ...]
       python bench/deploy.py zoo-int8 [--side S] [ZOO_NAME ...]
       python bench/deploy.py peer --peer-python PATH [--threads N ...] [--batches B ...] [--runs R ...] [ZOO_NAME ...]
       python bench/deploy.py predict [--images N] [--size NAME=S ...] [ZOO_NAME ...]
       python bench/deploy.py postprocess [--threads N ...] [--runs R] [--model-py FILE ...] [ZOO_NAME ...]
       python bench/deploy.py reparam RUN_FOLDER ...

``latency``: each zoo config (default: a set over the families) is built with seeded random weights at its
default input size, exported by ``npc export``'s verified path, quantised with the same code as ``npc export
--quantize int8`` (calibrated on 8 seeded random images: latency does not depend on the ranges), and timed in this
process: torch eager and onnxruntime sessions at ``--threads`` intra-op threads, batch ``--batch``, the median of
``--runs`` calls after warm-up. Prints a Markdown table for docs/benchmarks.md.

``zoo-int8``: for every zoo config, whether the fp32 export quantises and the int8 file runs in onnxruntime, at a
small input (``--side``); a failure is reported with the first line of its error, which names the operator.
Prints a Markdown table for docs/deploy.md. Run on demand; not part of the test suite.

``peer`` (issue #21 item 4): npc against NetsPresso Trainer, side by side in one run, per zoo config: the peer's
eager fp32 model after ``deploy()``, the peer's fp32 ONNX file (its own ``save_onnx``) in onnxruntime, ``npc
export``'s fp32 ONNX file and ``npc export --quantize int8``'s file, at every ``--threads`` x ``--batches``. npc's
files are written here by the ``npc`` CLI (seeded random weights; int8 calibrated on 8 images of a small built-in
set at the same input size: latency does not depend on the ranges); ``bench/_deploy_peer.py`` then builds and
exports the peer's model under ``--peer-python`` and times all four paths in that one process, calls alternating.
Inputs are ``BENCH_SIZES`` (smaller than the zoo's detection and segmentation defaults, to keep batch 8 bounded
on a slow machine) unless ``--size`` is given. Prints a Markdown table; ``--json FILE`` keeps the raw figures.

``predict``: ``npc predict`` end to end (decode, preprocess, model, postprocess) on a folder of generated images,
with an fp32 and an int8 file of each named config: wall time of the whole command, and of a one-image command
(start-up: imports, session creation), and the images per second in between.

``postprocess``: the detection postprocessor alone (decode + NMS, ``build_postprocessor()``), per image, on the
outputs of each named config's int8 file (as ``predict`` writes it) for one generated image: the median of
``--runs`` calls at each ``--threads`` torch threads, with the model.py compiled now and each ``--model-py`` (e.g.
one compiled at an older commit, to compare).

``reparam``: per ``npc train`` run folder of a RepConv model (GELAN, YOLOv9), on the first validation images its
export is verified on, the largest |difference| from the eager (unmerged) model of: the eager model after
``merge_repconv_``, an ONNX file exported without merging, and ``npc export``'s own (merged) file; and, for
contrast, npc export's figure on a random input. Prints a Markdown table for docs/deploy.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PEER_CONFIGS = REPO.parent / "shared" / "peer" / "configs" / "model"
PEER_WORKER = Path(__file__).with_name("_deploy_peer.py")
# Inputs of the side-by-side run: the zoo's defaults for classification (224) and pose (256), smaller ones for
# segmentation (512 → 256) and detection (640 → 320), which the peer's models and npc's accept alike (multiples of
# 32/64), so that batch 8 stays bounded on a slow shared machine. ``--size`` overrides them.
BENCH_SIZES = {"classification": 224, "segmentation": 256, "detection": 320, "pose_estimation": 256}
# Classes (keypoints for pose) of the small built-in sets the int8 file is calibrated on; both sides get the same.
CLASSES = {"classification": 10, "segmentation": 4, "detection": 3, "pose_estimation": 7}
# The same glibc malloc thresholds as bench/model_speed.py, for the same reason (see there).
STEADY_MALLOC = {"MALLOC_TRIM_THRESHOLD_": str(1 << 30), "MALLOC_MMAP_THRESHOLD_": str(32 << 20)}

DEFAULT = [
    "resnet18-classification",
    "resnet50-classification",
    "mobilenetv3-small-classification",
    "segformer-b0-segmentation",
    "pidnet-s-segmentation",
    "yolox-s-detection",
    "yolov9_tiny-detection",
    "rtmpose-pose_estimation",
]


def _median_ms(call, runs: int) -> float:
    for _ in range(3):  # warm-up: first calls allocate and pick kernels
        call()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def _export_pair(name: str, folder: Path, side: int | None):
    """(eager model, fp32 ONNX path, int8 ONNX path, input side) for zoo config ``name``, random seeded weights."""
    import torch

    from npc import zoo
    from npc.runtime.tools import ExportOptions, export_target
    from npc.runtime.tools.quantize import _quantize
    from npc.runtime.tools.summary import build_model, default_side, load_target

    target = load_target(zoo.path_of(name))
    side = side or default_side(target)
    fp32, int8 = folder / f"{name}.onnx", folder / f"{name}.int8.onnx"
    export_target(target, fp32, ExportOptions(input_size=(side, side)))
    generator = torch.Generator().manual_seed(0)
    _quantize(fp32, int8, [torch.randn(1, 3, side, side, generator=generator) for _ in range(8)])
    torch.manual_seed(0)
    model = build_model(target, 10).eval()
    return model, fp32, int8, side


def _session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def latency(names: list[str], threads: int, batch: int, runs: int) -> None:
    import torch

    torch.set_num_threads(threads)
    print("| config | input | eager fp32 ms | npc fp32 ONNX ms | npc int8 ONNX ms | int8 / fp32 ONNX | int8 / eager |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="npc-deploy-") as folder:
        for name in names:
            model, fp32, int8, side = _export_pair(name, Path(folder), None)
            x = torch.randn(batch, 3, side, side)
            with torch.no_grad():
                eager = _median_ms(lambda m=model, x=x: m(x), runs)
            feed = x.numpy()
            timings = []
            for path in (fp32, int8):
                session = _session(path, threads)
                inputs = {session.get_inputs()[0].name: feed}
                timings.append(_median_ms(lambda s=session, i=inputs: s.run(None, i), runs))
            onnx_fp32, onnx_int8 = timings
            print(
                f"| {name} | {batch}×3×{side}² | {eager:.1f} | {onnx_fp32:.1f} | {onnx_int8:.1f} | "
                f"{onnx_int8 / onnx_fp32:.2f} | {onnx_int8 / eager:.2f} |",
                flush=True,
            )


def zoo_int8(names: list[str], side: int) -> None:
    import numpy as np

    print("| config | int8 | note |")
    print("|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="npc-deploy-") as folder:
        for name in names:
            try:
                _, _, int8, used = _export_pair(name, Path(folder), side)
                session = _session(int8, 1)
                session.run(None, {session.get_inputs()[0].name: np.zeros((1, 3, used, used), np.float32)})
                status, note = "quantises, runs", ""
            except Exception as exc:  # noqa: BLE001 - a benchmark row, not a crash: report and go on
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                status, note = "refused", first[:160]
            print(f"| {name} | {status} | {note} |", flush=True)
            for path in Path(folder).iterdir():
                path.unlink()


# --- RepConv merging, measured on real images ----------------------------------------------------------------------


def reparam(runs: list[Path]) -> None:
    from npc.runtime.tools import export as _export
    from npc.runtime.tools.export import ExportOptions, export_path

    print("| run | verified on | RepConvs | eager merged | ONNX unmerged | ONNX merged (npc export) | random input |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for run in runs:
        weights = run / "best.safetensors"
        count, eager = _eager_merge_diff(run)
        with tempfile.TemporaryDirectory(prefix="npc-reparam-") as folder:
            own = export_path(run, Path(folder) / "merged.onnx", ExportOptions(), weights=weights)
            at = ExportOptions(input_size=tuple(own.input[-2:]))  # the model.py alone: no data, a random input
            random = export_path(run / "model.py", Path(folder) / "random.onnx", at, weights=weights)
            keep = _export.merge_repconv_
            _export.merge_repconv_ = lambda model: 0  # the same export, left unmerged
            try:
                unmerged = export_path(run, Path(folder) / "unmerged.onnx", ExportOptions(), weights=weights)
            finally:
                _export.merge_repconv_ = keep
        print(
            f"| {run.name} | {own.verified_on} | {count} | {eager:.2g} | {unmerged.max_abs_diff:.2g} | "
            f"{own.max_abs_diff:.2g} | {random.max_abs_diff:.2g} |",
            flush=True,
        )


def _eager_merge_diff(run: Path) -> tuple[int, float]:
    """(RepConvs merged, largest |eager merged - eager|) on the images npc export verifies the run on."""
    import copy

    import torch

    from npc.runtime.checkpoint import apply_weights, load_weights
    from npc.runtime.tools._deploy_data import build_deploy_data, data_config, first_images
    from npc.runtime.tools.export import ExportOptions, flatten_outputs, inference_outputs
    from npc.runtime.tools.fuse import merge_repconv_
    from npc.runtime.tools.summary import build_model, load_target

    target, weights = load_target(run), run / "best.safetensors"
    state, metadata = load_weights(weights)
    model = build_model(target, int(metadata["num_classes"]))
    apply_weights(model, state, weights, strict=True)
    data = build_deploy_data(data_config(run, target, None, use="to measure on"), ("valid",), why="measured on")
    merged = copy.deepcopy(model.eval())
    count = merge_repconv_(merged)
    worst = 0.0
    with torch.no_grad():
        for x in first_images(data, ExportOptions().verify_images).images.split(1):
            pairs = zip(flatten_outputs(inference_outputs(model(x))), flatten_outputs(inference_outputs(merged(x))))
            worst = max([worst] + [float((a - b).abs().max()) for (_, a), (_, b) in pairs])
    return count, worst


# --- side by side with NetsPresso Trainer ---------------------------------------------------------------------------


def _task(name: str) -> str:
    return next(task for task in BENCH_SIZES if name.endswith(task))


def _bench_size(name: str, override: int | None) -> int:
    if override:
        return override
    return 256 if name.startswith("mobilevit") else BENCH_SIZES[_task(name)]


def _calibration_data(task: str, side: int, folder: Path) -> Path:
    """A data file of the task's built-in set at ``side`` (a few images: the int8 export calibrates on 8 and
    evaluates on the validation split, which this benchmark does not need), as ``npc export --data`` takes it."""
    folder.mkdir(parents=True, exist_ok=True)
    if task == "classification":  # digits has 360 validation images; a generated 10-class image folder has 10
        import numpy as np
        from PIL import Image

        rng = np.random.default_rng(0)
        for split, count in (("train", 1), ("valid", 1)):
            for label in range(CLASSES[task]):
                images = folder / "images" / split / f"c{label}"
                images.mkdir(parents=True, exist_ok=True)
                for index in range(count):
                    pixels = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
                    Image.fromarray(pixels).save(images / f"{index}.png")
        section = {
            "format": "image_folder",
            "path": {"root": str(folder / "images"), "train": {"image": "train"}, "valid": {"image": "valid"}},
            "image_size": side,
        }
    elif task == "pose_estimation":
        section = {"format": "stick_figures", "input_size": [side, side], "num_train": 8, "num_valid": 4}
    else:
        section = {"format": "shapes", "image_size": side, "num_train": 8, "num_valid": 4}
    path = folder / f"data-{task}-{side}.json"
    path.write_text(json.dumps({"data": section}))
    return path


def _npc(*args: object, timeout: int = 3600) -> None:
    command = [sys.executable, "-m", "npc", *map(str, args)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        lines = (result.stderr.strip() or result.stdout.strip()).splitlines() or ["?"]
        raise RuntimeError(f"npc {args[0]} failed: {lines[-1][:200]}")


def _npc_files(name: str, side: int, folder: Path) -> tuple[Path, Path]:
    """``npc export``'s fp32 file and ``npc export --quantize int8``'s, through the CLI as a user runs them."""
    task = _task(name)
    fp32, int8 = folder / f"{name}-{side}.onnx", folder / f"{name}-{side}.int8.onnx"
    size = ("--input-size", side, side)
    _npc("export", name, "-o", fp32, *size, "--num-classes", CLASSES[task])
    data = _calibration_data(task, side, folder / f"data-{name}")
    quantize = ("--quantize", "int8", "--calibration", 8, "--max-drop", "none", "--data", data)
    _npc("export", name, "-o", int8, *size, *quantize)
    return fp32, int8


def _peer_config(name: str) -> Path:
    found = sorted(PEER_CONFIGS.glob(f"*/{name}.yaml"))
    if not found:
        raise FileNotFoundError(f"no peer config {name}.yaml under {PEER_CONFIGS}")
    return found[0]


def side_by_side(name: str, args: argparse.Namespace, folder: Path) -> dict:
    side = _bench_size(name, args.size)
    record: dict = {"name": name, "side": side}
    started = time.perf_counter()
    try:
        fp32, int8 = _npc_files(name, side, folder)
    except Exception as exc:  # noqa: BLE001 - a row that says why, then the next config
        return record | {"error": str(exc)}
    record["npc_export_s"] = round(time.perf_counter() - started, 1)
    record["npc_bytes"] = {"fp32": fp32.stat().st_size, "int8": int8.stat().st_size}
    command = [
        args.peer_python, str(PEER_WORKER), "--peer-config", str(_peer_config(name)), "--size", str(side),
        "--num-classes", str(CLASSES[_task(name)]), "--peer-onnx", str(folder / f"{name}-{side}.peer.onnx"),
        "--file", f"npc fp32={fp32}", "--file", f"npc int8={int8}",
        "--threads", *map(str, args.threads), "--batches", *map(str, args.batches),
        "--runs", *map(str, args.runs[: len(args.batches)]),
        "--warmup", str(args.warmup),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=7200, env=os.environ | STEADY_MALLOC)
    if result.returncode != 0:
        return record | {"error": "peer side: " + ((result.stderr.strip().splitlines() or ["?"])[-1][:200])}
    record |= json.loads(result.stdout.strip().splitlines()[-1])
    for path in folder.glob(f"{name}-{side}*"):
        path.unlink()
    return record


PATHS = ("peer eager", "peer onnx", "npc fp32", "npc int8")


def _ms(value: float | None) -> str:
    return f"{value:,.1f}" if value is not None else "–"


def side_by_side_table(records: list[dict]) -> str:
    lines = [
        "| config | threads | input | peer eager fp32 ms | peer fp32 ONNX ms | npc fp32 ONNX ms | npc int8 ONNX ms "
        "| npc fp32 / peer best | npc int8 / peer best | load avg (1 min) |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for record in records:
        if "error" in record:
            lines.append(f"| {record['name']} | | {record['side']}² | {record['error']} | | | | | | |")
            continue
        for key, block in record["blocks"].items():
            threads, batch = (int(part[1:]) for part in key.split("_"))
            ms, errors = block["ms"], block.get("errors", {})
            best = min(ms[p] for p in PATHS[:2] if p in ms)
            cells = [_ms(ms[p]) if p in ms else ("fails" if p in errors else "–") for p in PATHS]
            for p in PATHS[2:]:
                cells.append(f"{ms[p] / best:.2f}" if p in ms else "–")
            load = f"{block['load'][0]:.1f}–{block['load'][3]:.1f}"
            lines.append(
                f"| {record['name']} | {threads} | {batch}×3×{record['side']}² | " + " | ".join(cells) + f" | {load} |"
            )
    return "\n".join(lines)


def peer(names: list[str], args: argparse.Namespace) -> None:
    print(f"load average at start: {os.getloadavg()}, {os.cpu_count()} CPUs", file=sys.stderr, flush=True)
    records = []
    with tempfile.TemporaryDirectory(prefix="npc-deploy-peer-") as folder:
        for name in names:
            record = side_by_side(name, args, Path(folder))
            records.append(record)
            print(json.dumps(record), file=sys.stderr, flush=True)
            if args.json:
                Path(args.json).write_text(json.dumps(records, indent=1) + "\n")
    print(side_by_side_table(records))


# --- npc predict, end to end ------------------------------------------------------------------------------------------


def _images(folder: Path, count: int) -> list[Path]:
    """``count`` generated JPEG photos-to-be: noise plus a few filled rectangles and ellipses, 320x240."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        image = Image.fromarray(rng.integers(0, 80, (240, 320, 3), dtype=np.uint8))
        draw = ImageDraw.Draw(image)
        for _ in range(3):
            x, y = int(rng.integers(0, 260)), int(rng.integers(0, 180))
            w, h = int(rng.integers(20, 60)), int(rng.integers(20, 60))
            shape = draw.rectangle if rng.random() < 0.5 else draw.ellipse
            shape((x, y, x + w, y + h), fill=tuple(int(c) for c in rng.integers(120, 256, 3)))
        path = folder / f"{index:04d}.jpg"
        image.save(path, quality=90)
        paths.append(path)
    return paths


def _wall_s(model: Path, images: list[Path]) -> float:
    command = [sys.executable, "-m", "npc", "predict", str(model), *map(str, images), "--format", "json"]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, timeout=7200)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError((result.stderr.strip().splitlines() or ["?"])[-1][:200])
    return elapsed


def predict(names: list[str], args: argparse.Namespace) -> None:
    sizes = dict(item.split("=", 1) for item in args.size_of)
    print(f"load average at start: {os.getloadavg()}, {os.cpu_count()} CPUs", file=sys.stderr, flush=True)
    print("| config | input | file | 1 image s (start-up) | 256 images s | images/s after start-up | load avg |")
    print("|---|---|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="npc-deploy-predict-") as folder:
        images = _images(Path(folder) / "images", args.images)
        for name in names:
            side = int(sizes.get(name, _bench_size(name, None)))
            fp32, int8 = _npc_files(name, side, Path(folder))
            for label, model in (("fp32", fp32), ("int8", int8)):
                one = _wall_s(model, images[:1])
                everything = _wall_s(model, images)
                rate = (len(images) - 1) / max(everything - one, 1e-9)
                print(
                    f"| {name} | {side}² | {label} | {one:.1f} | {everything:.1f} | {rate:.1f} | "
                    f"{os.getloadavg()[0]:.1f} |",
                    flush=True,
                )


def _import_model_py(path: Path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"bench_{abs(hash(str(path)))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def postprocess(names: list[str], args: argparse.Namespace) -> None:

    from npc.runtime.tools.infer import _default_preprocess, load_onnx

    print(f"load average at start: {os.getloadavg()}, {os.cpu_count()} CPUs", file=sys.stderr, flush=True)
    print("| config | input | candidates | kept | model.py | torch threads | ms per image | load avg |")
    print("|---|---|---:|---:|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="npc-deploy-postprocess-") as folder:
        image = _images(Path(folder) / "images", 1)[0]
        for name in names:
            side = _bench_size(name, None)
            _, int8 = _npc_files(name, side, Path(folder))
            loaded = load_onnx(int8)
            x = (loaded.preprocess or _default_preprocess(loaded.metadata)).image(image).unsqueeze(0)
            outputs, size = loaded.model(x), tuple(x.shape[-2:])
            current = Path(folder) / f"{name}.py"
            _npc("compile", name, "-o", current)
            for model_py in [current, *map(Path, args.model_py)]:
                label = "this checkout" if model_py == current else model_py.name
                for threads in args.threads:
                    candidates, kept, ms = _postprocess_ms(model_py, outputs, size, threads, args.runs)
                    print(
                        f"| {name} | {side}² | {candidates} | {kept} | {label} | {threads} | {ms:.1f} | "
                        f"{os.getloadavg()[0]:.1f} |",
                        flush=True,
                    )


def _postprocess_ms(model_py: Path, outputs, size, threads: int, runs: int) -> tuple[int, int, float]:
    """(candidates after decoding, boxes kept, median ms per call) of model_py's build_postprocessor()."""
    import torch

    torch.set_num_threads(threads)
    post = _import_model_py(model_py).build_postprocessor()
    candidates = len(post.decoder(outputs, size)[0][1])
    kept = len(post(outputs, size)[0]["scores"])
    return candidates, kept, _median_ms(lambda: post(outputs, size), runs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("latency")
    p.add_argument("names", nargs="*", default=DEFAULT)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--runs", type=int, default=20)
    p = sub.add_parser("zoo-int8")
    p.add_argument("names", nargs="*")
    p.add_argument("--side", type=int, default=128)
    p = sub.add_parser("peer")
    p.add_argument("names", nargs="*", default=DEFAULT)
    p.add_argument("--peer-python", required=True, help="Python of a venv where netspresso-trainer is installed")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    p.add_argument("--runs", type=int, nargs="+", default=[7, 3], help="timed rounds per batch size")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--size", type=int, help="input side for every config (default: BENCH_SIZES)")
    p.add_argument("--json", help="also write the raw figures here")
    p = sub.add_parser("predict")
    p.add_argument("names", nargs="*", default=["resnet18-classification", "yolox-s-detection"])
    p.add_argument("--images", type=int, default=256)
    p.add_argument("--size", dest="size_of", action="append", default=[], help="NAME=SIDE (default: BENCH_SIZES)")
    p = sub.add_parser("postprocess")
    p.add_argument("names", nargs="*", default=["yolox-s-detection"])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--model-py", action="append", default=[], help="also time this compiled model.py")
    p = sub.add_parser("reparam")
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN_FOLDER")
    args = parser.parse_args(argv)
    if args.command == "latency":
        latency(args.names, args.threads, args.batch, args.runs)
    elif args.command == "peer":
        peer(args.names, args)
    elif args.command == "predict":
        predict(args.names, args)
    elif args.command == "postprocess":
        postprocess(args.names, args)
    elif args.command == "reparam":
        reparam(args.runs)
    else:
        from npc import zoo

        zoo_int8(args.names or list(zoo.names()), args.side)
    return 0


if __name__ == "__main__":
    sys.exit(main())
