"""``npc export --quantize int8``: a verified fp32 ONNX export, statically quantised by onnxruntime, written only if
its accuracy holds.

1. The model is exported to fp32 ONNX and verified against eager torch (as ``npc export`` does).
2. onnxruntime's ``quantize_static`` rewrites it in QDQ form: int8 weights per output channel, int8 activations
   with MinMax ranges calibrated on ``calibration`` images of the training split, prepared exactly as for
   inference (the data's resize and normalisation, no augmentation). The images are a seeded random subset, so
   two exports of the same run are byte-identical.
3. Both files are evaluated on the validation split with npc's own metric loop (top-1, mIoU, mAP, PCK); the drop
   of each figure is reported in points. Above ``max_drop`` nothing is written and the figure is named.

Where the data comes from: a run folder's ``resolved.yaml`` (the data it trained on), else ``--data``, else the
spec's own ``data:`` section, else the task's built-in set (``_deploy_data``, which plain exports share). The fp32
file is verified on the first validation images.
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from ..engine import METRICS
from ..errors import RunError
from ._deploy_data import build_deploy_data, data_config, first_images, image_side, size_mismatch
from .export import ExportOptions, export_target
from .summary import LoadedTarget, load_target

__all__ = ["QuantizeOptions", "QuantizeReport", "quantize_path"]

DEFAULT_CALIBRATION = 256  # images; MinMax ranges settle within a few hundred (the whole split if smaller)
USES = "int8 export calibrates on the training split and evaluates on the validation split"


@dataclass
class QuantizeOptions:
    calibration: int = DEFAULT_CALIBRATION
    max_drop: float | None = 1.0  # points of the task's metrics; None: write whatever the drop
    data: str | None = None  # a YAML/JSON file with a data: section; default: the run's or the spec's
    seed: int = 0
    batch_size: int = 16  # evaluation batch (the ONNX file has a free batch dimension)


@dataclass
class QuantizeReport:
    output: str
    bytes: int
    fp32_bytes: int
    task: str
    data: str
    calibration_images: int
    evaluated_images: int
    metrics: list[str]
    fp32: dict[str, float | None]
    int8: dict[str, float | None]
    drop: dict[str, float]  # points (percentage points), fp32 - int8
    max_drop: float | None
    seconds: float
    export_max_abs_diff: float  # fp32 ONNX vs eager torch
    export_verified_on: str  # the images that difference was measured on
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"


def quantize_path(
    path: str | Path,
    output: str | Path,
    export: ExportOptions,
    options: QuantizeOptions,
    *,
    weights: str | Path | None = None,
    num_classes: int | None = None,
) -> QuantizeReport:
    """SPEC, run folder or zoo name in; a calibrated, evaluated int8 ONNX file out (or a RunError, no file)."""
    started = time.perf_counter()
    target = load_target(path)
    config = data_config(Path(path), target, options.data, use="to calibrate int8 on")
    data = build_deploy_data(config, ("train", "valid"), why=USES)
    side = image_side(data)  # what calibration and evaluation feed the file
    if export.input_size is None:  # without --input-size: export at the size the data is prepared at
        export = replace(export, input_size=side)
    elif tuple(export.input_size) != side:
        raise size_mismatch(export.input_size, data)
    output = Path(output)
    with tempfile.TemporaryDirectory(prefix="npc-int8-") as folder:
        fp32 = Path(folder) / "model.fp32.onnx"
        if weights is None and num_classes is None:  # random weights (testing): as many classes as the data has
            num_classes = data.num_classes
        images = first_images(data, export.verify_images)  # the fp32 file is verified on these
        exported = export_target(target, fp32, export, weights=weights, num_classes=num_classes, images=images)
        notes = list(exported.notes)
        if exported.num_classes != data.num_classes:
            raise RunError(
                f"{weights or path}: the model has {exported.num_classes} classes, the data {data.num_classes} "
                f"({data.description})"
            )
        calibration = _calibration_images(data, options.calibration, options.seed)
        int8 = Path(folder) / "model.int8.onnx"
        excluded = _quantize(fp32, int8, calibration)
        _stamp_int8(int8, len(calibration), options.seed, excluded)
        report = _measured(fp32, int8, data, target, options, output=output, task=config.spec.task)
        report.calibration_images = len(calibration)
        report.export_max_abs_diff = exported.max_abs_diff
        report.export_verified_on = exported.verified_on
        report.notes = notes + [f"left in float: {', '.join(excluded)}"] * bool(excluded)
        _refuse_if_worse(report)
        _copy_atomic(int8, output)
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def _measured(fp32: Path, int8: Path, data, target, options: QuantizeOptions, *, output: Path, task: str):
    """Both files evaluated on the validation split: the report without the calibration facts."""
    fp32_metrics = evaluate_onnx(fp32, data, target, options.batch_size)
    int8_metrics = evaluate_onnx(int8, data, target, options.batch_size)
    names = [m for m in METRICS[task] if fp32_metrics.get(m) is not None]
    return QuantizeReport(
        output=str(output),
        bytes=int8.stat().st_size,
        fp32_bytes=fp32.stat().st_size,
        task=task,
        data=data.description,
        calibration_images=0,
        evaluated_images=int(fp32_metrics["samples"]),
        metrics=names,
        fp32={m: fp32_metrics[m] for m in names},
        int8={m: int8_metrics[m] for m in names},
        drop={m: round(100 * (fp32_metrics[m] - (int8_metrics[m] or 0.0)), 4) for m in names},
        max_drop=options.max_drop,
        seconds=0.0,
        export_max_abs_diff=0.0,
        export_verified_on="",
    )


# --- data ----------------------------------------------------------------------------------------------------------


def _calibration_images(data, count: int, seed: int) -> list[torch.Tensor]:
    """``count`` images (the whole split if smaller) of the training split, a seeded random subset, in order."""
    train = data.splits["train"]
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(train), generator=generator)[: min(count, len(train))]
    return [train[int(i)][0].unsqueeze(0).float().contiguous() for i in sorted(order.tolist())]


# --- quantisation --------------------------------------------------------------------------------------------------


class _Reader:
    """onnxruntime's CalibrationDataReader protocol: one ``{input: batch}`` per call, then None (read once)."""

    def __init__(self, name: str, images: list[torch.Tensor]) -> None:
        self.feeds = iter([{name: image.numpy()} for image in images])

    def get_next(self) -> dict[str, Any] | None:
        return next(self.feeds, None)


def _quantize(fp32: Path, int8: Path, images: list[torch.Tensor]) -> list[str]:
    """QDQ int8 (per-channel weights, MinMax activations) of ``fp32`` into ``int8``; the op types left in float."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    prepared = _prepared(fp32)
    model = onnx.load(str(prepared))
    name = model.graph.input[0].name
    excluded = _float_only_nodes(model)
    try:
        with _quiet_root_logger():
            quantize_static(
                str(prepared),
                str(int8),
                _Reader(name, images),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,  # u8 activations x s8 weights: x86's fast int8 path (VNNI)
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
                nodes_to_exclude=[n for n, _ in excluded],
            )
    except Exception as exc:  # noqa: BLE001 - onnxruntime's quantiser raises plain exceptions naming the node
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise RunError(f"int8 quantisation failed: {type(exc).__name__}: {first}") from None
    return sorted({reason for _, reason in excluded})


def _prepared(fp32: Path) -> Path:
    """onnxruntime's pre-processing of the fp32 graph (its basic optimisations and shape inference) beside it.

    The TorchScript exporter leaves Identity nodes between a conv and its activation; quantised as they are, each
    conv keeps its own QuantizeLinear/DequantizeLinear pair and onnxruntime cannot fuse them into one int8 conv
    (measured on resnet50-classification, one thread: int8 slower than fp32; after pre-processing 3x faster)."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = fp32.with_name(f"{fp32.stem}.prepared.onnx")
    try:
        with _quiet_root_logger():
            quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises plain exceptions naming the node
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise RunError(
            f"int8 quantisation: onnxruntime's pre-processing failed: {type(exc).__name__}: {first}"
        ) from None
    return prepared


@contextlib.contextmanager
def _quiet_root_logger():
    """onnxruntime's quantiser logs advice on the root logger ("consider pre-processing"): npc's file is already
    constant-folded with static shapes by torch.onnx, so the advice only adds noise to the report."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


# Ops that only move, join or squash values: walking back from an output through them finds the layer that
# computed it.
_PASS_THROUGH = frozenset(
    {"Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Concat", "Identity", "Sigmoid", "Split", "Slice"}
)
_COMPUTE = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})
OUTPUT_LAYER = "the layers that write the model's outputs (logits, box offsets): int8 rounding there moves every score"
SOFTMAX = "Softmax (attention weights): int8 steps of 1/256 flatten the small probabilities attention relies on"


def _float_only_nodes(model) -> list[tuple[str, str]]:
    """(node name, why) for the nodes kept in float: every Softmax, and the conv/matmul layers whose results reach
    a graph output through reshapes, concatenations and sigmoids only (see docs/deploy.md)."""
    kept = [(node.name, SOFTMAX) for node in model.graph.node if node.op_type == "Softmax"]
    producers = {name: node for node in model.graph.node for name in node.output}
    frontier = [output.name for output in model.graph.output]
    seen: set[str] = set()
    while frontier:
        node = producers.get(frontier.pop())
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        if node.op_type in _PASS_THROUGH:
            frontier += list(node.input)
        elif node.op_type in _COMPUTE:
            kept.append((node.name, OUTPUT_LAYER))
    return kept


def _stamp_int8(path: Path, images: int, seed: int, excluded: list[str]) -> None:
    """The fp32 file's ``npc`` metadata, plus how the int8 file was calibrated."""
    import onnx

    model = onnx.load(str(path))
    record = {}
    for entry in model.metadata_props:
        if entry.key == "npc":
            record = json.loads(entry.value)
            entry.value = json.dumps(
                {
                    **record,
                    "quantized": {
                        "dtype": "int8",
                        "format": "QDQ",
                        "per_channel": True,
                        "calibration_images": images,
                        "seed": seed,
                        "float": excluded,
                    },
                },
                sort_keys=True,
            )
    onnx.save(model, str(path))


# --- evaluation ----------------------------------------------------------------------------------------------------


def evaluate_onnx(path: Path, data, target: LoadedTarget | None, batch_size: int) -> dict[str, Any]:
    """npc's metrics of the ONNX file at ``path`` over the data's validation split (no loss: ONNX has no loss)."""
    from torch.utils.data import DataLoader

    from ..engine import evaluate
    from ..engine.trainer import detection_postprocessor
    from .onnx_model import OnnxModel

    model = OnnxModel(path)
    postprocessor = None
    if model.task == "detection":
        postprocessor = detection_postprocessor(target.module, "detection")[0] if target else model.postprocessor()
    loader = DataLoader(data.splits["valid"], batch_size=batch_size, shuffle=False, collate_fn=data.collate)
    return evaluate(
        model, loader, None, data.num_classes, torch.device("cpu"), task=model.task, postprocessor=postprocessor
    )


def _refuse_if_worse(report: QuantizeReport) -> None:
    if report.max_drop is None:
        return
    worse = [m for m in report.metrics if report.drop[m] > report.max_drop]
    if not worse:
        return
    figures = "; ".join(
        f"{m} {100 * report.fp32[m]:.2f}% -> {100 * (report.int8[m] or 0):.2f}% (drop {report.drop[m]:.2f} points)"
        for m in worse
    )
    raise RunError(
        f"{report.output}: not written: int8 costs more than --max-drop {report.max_drop:g} point(s) on "
        f"{report.data}: {figures}; use --max-drop none to write it anyway"
    )


def _copy_atomic(source: Path, output: Path) -> None:
    from ..checkpoint import atomic_write

    data = source.read_bytes()
    atomic_write(output, lambda tmp: Path(tmp).write_bytes(data))
