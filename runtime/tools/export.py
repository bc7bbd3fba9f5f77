"""``npc export``: a compiled model with its weights as ONNX, a ``torch.export`` program or a torch.fx GraphModule,
verified before it is reported.

Every export is written to a temp file beside the output, loaded back the way a user would load it and run on the
same input as the eager model (before any re-parameterisation); only if every output matches within the tolerance is
the temp file renamed onto the output. A failed export or verification leaves no output file (and an older one
untouched). The input: the first validation images of the data when it is known (a run folder's, or ``--data``;
see ``_deploy_data``), one at a time, else one seeded random image. A dynamic-batch file is exported at batch 2 and
checked at batch 1, so a batch size baked into it shows.

* ``onnx``: ``torch.onnx.export`` (the TorchScript-based exporter by default: no dependency beyond ``onnx``;
  ``exporter="dynamo"`` uses the torch.export-based one, which needs ``onnxscript``), checked with onnxruntime.
  The model's dict output is flattened into named outputs: ``pred``; ``anchors``, ``cls_logits.0``, ... . An ONNX
  file is for inference: outputs only training reads (PIDNet's ``extra_p``/``extra_d``, RT-DETR's ``aux_pred``,
  ``dn_*``) are left out, so the exporter prunes the branches that compute them, and outputs that are ``None`` in
  eval mode have no tensor to export (as in NetsPresso Trainer's exporter). The file's metadata (``npc``) records the
  task, class names, input size, preprocessing, the spec and its sha256, and how to rebuild the dict output.
* ``exported-program``: ``torch.export.export`` → ``torch.export.save`` (``.pt2``), checked after
  ``torch.export.load``; ``.module()(x)`` returns the same dict as the eager model.
* ``fx``: ``torch.fx.symbolic_trace`` → ``torch.save`` of the GraphModule (the format of NetsPresso Trainer's
  ``fx_model_checkpoint``), checked after ``torch.load(weights_only=False)``. Loading such a file runs code:
  load only files you trust.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..._atomic import AtomicWriteError, write_atomic
from ...compiler._provenance import locate, module_path_of_onnx_node, provenance_map
from ...errors import NpcError
from ..checkpoint import apply_weights, load_weights
from ..errors import UNUSABLE, RunError
from ._deploy_data import ExportImages, build_deploy_data, data_config, first_images, image_side, size_mismatch
from .fuse import fuse_bn_, merge_repconv_
from .summary import DEFAULT_NUM_CLASSES, LoadedTarget, build_model, default_side, load_target

__all__ = [
    "FORMATS",
    "ExportOptions",
    "ExportReport",
    "VerificationError",
    "export_model",
    "export_target",
    "flatten_outputs",
    "infer_num_classes",
]

FORMATS = ("onnx", "exported-program", "fx")
SUFFIXES = {"onnx": ".onnx", "exported-program": ".pt2", "fx": ".pt"}
DEFAULT_OPSET = 17
ATOL = 1e-4
RTOL = 1e-4
# Outputs that only the training losses read; an inference file leaves them (and the layers behind them) out.
TRAINING_ONLY_OUTPUTS = frozenset({"extra_p", "extra_d", "aux_pred", "dn_aux_pred", "dn_meta"})


class VerificationError(RunError):
    """The exported file does not reproduce the eager model (exit 1); no output file was written."""


@dataclass
class ExportOptions:
    format: str = "onnx"
    input_size: tuple[int, int] | None = None  # default: the task's usual size (224 classification, ...)
    opset: int = DEFAULT_OPSET
    dynamic_batch: bool = True
    fuse: bool = False
    exporter: str = "torchscript"  # onnx only: "torchscript" (dynamo=False) or "dynamo"
    atol: float = ATOL
    rtol: float = RTOL
    seed: int = 0
    verify_images: int = 4  # validation images verified on, one at a time, when the data is known


@dataclass
class ExportReport:
    output: str
    format: str
    bytes: int
    input: list[int]  # the shape the export was verified with
    dynamic_batch: bool
    outputs: dict[str, list[int]]  # flattened name -> shape at the verification input
    max_abs_diff: float
    max_rel_diff: float
    atol: float
    rtol: float
    verified_with: str
    verified_on: str  # "4 validation images from ...", or "a 1×3×64×64 random input"
    verified_images: int  # real images verified on; 0: random input
    seconds: float
    num_classes: int
    fused: int = 0  # (conv, BatchNorm) pairs folded
    reparameterised: int = 0  # RepConv blocks merged into one conv
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"


# --- outputs -------------------------------------------------------------------------------------------------------


def flatten_outputs(value: Any, prefix: str = "") -> list[tuple[str, torch.Tensor]]:
    """Named tensors of a (nested) dict/list output: ``pred``; ``cls_logits.0``; a bare tensor is ``output``.

    ``None`` (an output the model leaves empty in eval mode) has no tensor and is left out."""
    if value is None:
        return []
    if isinstance(value, torch.Tensor):
        return [(prefix or "output", value)]
    if isinstance(value, dict):
        items = [(str(k), v) for k, v in value.items()]
    elif isinstance(value, (list, tuple)):
        items = [(str(i), v) for i, v in enumerate(value)]
    else:
        raise RunError(f"the model returns a {type(value).__name__}, which cannot be exported as a tensor")
    out = []
    for key, item in items:
        out += flatten_outputs(item, f"{prefix}.{key}" if prefix else key)
    return out


def output_skeleton(value: Any, prefix: str = "") -> Any:
    """The output's structure with each tensor replaced by its flat name (``None`` stays ``None``): what an ONNX
    runner needs to give back the dict the torch model returns (``pred``: a tensor or a list of levels, ...)."""
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        return prefix or "output"
    if isinstance(value, dict):
        return {str(k): output_skeleton(v, f"{prefix}.{k}" if prefix else str(k)) for k, v in value.items()}
    return [output_skeleton(v, f"{prefix}.{i}" if prefix else str(i)) for i, v in enumerate(value)]


def inference_outputs(value: Any) -> Any:
    """The model's output without the entries only training reads (see :data:`TRAINING_ONLY_OUTPUTS`)."""
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k not in TRAINING_ONLY_OUTPUTS}
    return value


class _Flat(nn.Module):
    """The model's inference outputs as a flat tuple (ONNX has named outputs, not dicts)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(t for _, t in flatten_outputs(inference_outputs(self.model(x))))


def _compare(expected: list[tuple[str, torch.Tensor]], got: list[tuple[str, Any]], atol: float, rtol: float):
    """(max abs diff, max rel diff, [names out of tolerance]); raises when names or shapes differ.

    An element may differ by ``atol + rtol * max|eager|`` of its output: float rounding grows with the size of the
    values summed, not with the one element (an untrained model's logits reach hundreds, and a logit near 0 computed
    from them carries their rounding). The relative difference reported is against that same scale."""
    names = [n for n, _ in expected]
    if [n for n, _ in got] != names:
        raise VerificationError(f"outputs differ: expected {names}, got {[n for n, _ in got]}")
    max_abs = max_rel = 0.0
    bad = []
    for (name, want), (_, have) in zip(expected, got):
        have = torch.as_tensor(have).to(want.dtype)
        if tuple(have.shape) != tuple(want.shape):
            raise VerificationError(f"output {name}: shape {tuple(have.shape)}, expected {tuple(want.shape)}")
        if want.numel() == 0:
            continue
        if not want.is_floating_point():
            if not torch.equal(have, want):
                bad.append(name)
            continue
        diff = (have.double() - want.double()).abs()
        finite = torch.isfinite(want)
        if not torch.equal(finite, torch.isfinite(have)) or not torch.equal(want[~finite], have[~finite]):
            bad.append(name)
            continue
        diff = diff[finite] if not bool(finite.all()) else diff
        if diff.numel():
            scale = float(want.double()[finite].abs().max())
            max_abs = max(max_abs, float(diff.max()))
            max_rel = max(max_rel, float(diff.max()) / max(scale, 1e-12))
            if float(diff.max()) > atol + rtol * scale:
                bad.append(name)
    return max_abs, max_rel, bad


def _compare_each(expected: list, got: list, atol: float, rtol: float):
    """:func:`_compare` over every verification input: the largest differences, and each output that is out of
    tolerance on any input."""
    max_abs = max_rel = 0.0
    bad: list[str] = []
    for want, have in zip(expected, got, strict=True):
        one_abs, one_rel, one_bad = _compare(want, have, atol, rtol)
        max_abs, max_rel = max(max_abs, one_abs), max(max_rel, one_rel)
        bad += [name for name in one_bad if name not in bad]
    return max_abs, max_rel, bad


# --- num_classes ---------------------------------------------------------------------------------------------------


def infer_num_classes(target: LoadedTarget, state: dict[str, torch.Tensor]) -> int | None:
    """The class count ``state`` was saved for: tensors whose size grows linearly with num_classes tell it.

    Builds the model for 1 and 2 classes (on the meta device when it can), finds the dimensions that differ, and
    solves ``size = a * num_classes + b`` for the file's size. None when nothing depends on num_classes.
    """
    shapes = []
    for n in (1, 2):
        try:
            with torch.device("meta"):
                model = target.module.build_model(num_classes=n)
        except Exception:  # noqa: BLE001 - a constructor meta cannot run (e.g. .item()): build for real
            model = build_model(target, n)
        shapes.append({k: tuple(v.shape) for k, v in model.state_dict().items()})
    found: set[int] = set()
    for key, one in shapes[0].items():
        two = shapes[1].get(key)
        if two is None or one == two or key not in state or len(one) != len(two) or state[key].dim() != len(one):
            continue
        for d1, d2, have in zip(one, two, state[key].shape):
            if d1 == d2:
                continue
            a, b = d2 - d1, 2 * d1 - d2
            if a > 0 and (have - b) % a == 0 and (have - b) // a >= 1:
                found.add((have - b) // a)
            else:
                return None
    return found.pop() if len(found) == 1 else None


# --- export -------------------------------------------------------------------------------------------------------


def export_target(
    target: LoadedTarget,
    output: str | Path,
    options: ExportOptions,
    *,
    weights: str | Path | None = None,
    num_classes: int | None = None,
    images: ExportImages | None = None,
) -> ExportReport:
    """Build the target, load ``weights`` strictly, export and verify (on ``images`` when given, at their size
    unless ``options.input_size`` says otherwise); see the module docstring."""
    notes: list[str] = []
    state = metadata = None
    if weights is not None:
        state, metadata = load_weights(weights)
        recorded = metadata.get("num_classes")
        if num_classes is None:
            num_classes = recorded if recorded is not None else infer_num_classes(target, state)
            if num_classes is None:
                raise RunError(f"{weights}: cannot tell its class count; give --num-classes", UNUSABLE)
        elif recorded is not None and recorded != num_classes:
            raise RunError(f"{weights}: was trained for {recorded} classes, not {num_classes}")
    else:
        notes.append("no --weights: exporting randomly initialised weights (seeded), for testing only")
        num_classes = num_classes or DEFAULT_NUM_CLASSES
        torch.manual_seed(options.seed)
    model = build_model(target, num_classes)
    if state is not None:
        apply_weights(model, state, weights, strict=True)
    model.eval()
    extra = {"num_classes": num_classes, "task": target.task, "model": target.name, **_spec_record(target)}
    if target.graph is not None:  # module path -> spec pointer/line: ONNX nodes are stamped with it
        extra["provenance"] = provenance_map(target.graph, target.position)
    if metadata and metadata.get("class_names"):
        names = metadata["class_names"]
        extra["class_names"] = json.loads(names) if isinstance(names, str) else list(names)
    trained_size = None
    if metadata and metadata.get("preprocess"):  # npc train records how images were prepared
        try:
            preprocess = json.loads(metadata["preprocess"]) if isinstance(metadata["preprocess"], str) else {}
            extra["preprocess"] = preprocess
            # evaluated at another size (NetsPresso's inference list): the size it predicts at
            trained_size = int(
                (preprocess.get("eval_crop") or preprocess.get("eval_resize") or [preprocess["image_size"]])[0]
            )
        except (ValueError, KeyError, TypeError):
            trained_size = None
    size = _input_size(target, options, images, trained_size, notes)
    return export_model(model, output, options, input_size=size, notes=notes, metadata=extra, images=images)


def _input_size(target, options: ExportOptions, images, trained_size: int | None, notes: list[str]):
    """(H, W): --input-size, else the size of the images verified on, else the size the weights were trained at,
    else the task's usual size."""
    if options.input_size:
        return tuple(options.input_size)
    if images is not None:
        side = tuple(images.images.shape[-2:])
        other = trained_size and (trained_size, trained_size) != side
        trained = f" (the weights were trained at {trained_size}x{trained_size})" if other else ""
        notes.append(f"input size {side[0]}x{side[1]}: the size the images verified on come at{trained}")
        return side
    if trained_size:
        notes.append(f"input size {trained_size}x{trained_size}: the image size the weights were trained at")
        return (trained_size, trained_size)
    return (default_side(target),) * 2


def _spec_record(target: LoadedTarget) -> dict[str, Any]:
    """The spec the model was compiled from, as text with its sha256 (a run folder's: its resolved.yaml), so an
    ONNX runner can rebuild what lives outside the graph (a detection head's decoding and NMS); {} without one."""
    path = Path(target.path)
    if target.graph is None:  # a model.py: a run folder's has its resolved.yaml beside it
        path = path.with_name("resolved.yaml")
        if not path.is_file():
            return {}
    try:
        data = path.read_bytes()
    except OSError:
        return {}
    return {
        "spec": str(target.path),
        "spec_sha256": hashlib.sha256(data).hexdigest(),
        "spec_suffix": path.suffix,
        "spec_text": data.decode("utf-8", errors="replace"),
    }


def export_model(
    model: nn.Module,
    output: str | Path,
    options: ExportOptions,
    *,
    input_size: Sequence[int],
    notes: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
    images: ExportImages | None = None,
) -> ExportReport:
    """Export ``model`` (eval mode, weights loaded) to ``output`` in ``options.format``, verified; atomic.

    Verified on ``images`` (one at a time; they must come at ``input_size``) when given, else on one seeded random
    image. For ONNX (and with ``fuse``) ``model`` is re-parameterised in place first (RepConv merged); the
    verification compares with its outputs from before."""
    if options.format not in FORMATS:
        raise RunError(f"unknown export format {options.format!r} (choose from {', '.join(FORMATS)})", UNUSABLE)
    started = time.perf_counter()
    notes = list(notes or [])
    metadata = dict(metadata or {})
    output = Path(output)
    if output.suffix != SUFFIXES[options.format]:
        notes.append(f"{options.format} files usually end in {SUFFIXES[options.format]}")
    model.eval()
    example, checks, verified_on = _inputs(options, input_size, images)
    # An ONNX file serves inference only; the other formats keep the whole output, as training reads it.
    keep = inference_outputs if options.format == "onnx" else (lambda out: out)
    checked, example_out = _eager(model, keep, checks, example)
    references = [flatten_outputs(out) for out in checked]
    merged, fused = _reparameterise(model, options, notes)
    # Outputs whose first dimension is the batch (anchors, for one, are not).
    batch = example.shape[0]
    batched = [
        name
        for (name, a), (_, b) in zip(references[0], example_out)
        if a.dim() and a.shape[0] == 1 and b.shape[0] == batch
    ]
    metadata.update(input_size=list(input_size), skeleton=output_skeleton(checked[0]))
    exporter = {"onnx": _onnx, "exported-program": _exported_program, "fx": _fx}[options.format]
    names = [n for n, _ in references[0]]
    result: dict[str, Any] = {}

    def write(tmp: str) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # deprecation and tracer chatter: the verification is what counts
            run, verified_with = exporter(model, example, tmp, options, names, batched, metadata)
            got = [run(check) for check in checks]
        max_abs, max_rel, bad = _compare_each(references, got, options.atol, options.rtol)
        result.update(max_abs=max_abs, max_rel=max_rel, verified_with=verified_with)
        if bad:
            raise VerificationError(
                f"{output}: not written: the exported model's {', '.join(bad)} differ(s) from the eager model by up "
                f"to {max_abs:.3g} on {verified_on} (tolerance |diff| <= {options.atol:g} + {options.rtol:g} * "
                "max|eager|)"
            )

    _atomic(output, write)
    return ExportReport(
        output=str(output),
        format=options.format,
        bytes=output.stat().st_size,
        input=list(checks[0].shape),
        dynamic_batch=options.dynamic_batch,
        outputs={name: list(t.shape) for name, t in references[0]},
        max_abs_diff=result["max_abs"],
        max_rel_diff=result["max_rel"],
        atol=options.atol,
        rtol=options.rtol,
        verified_with=result["verified_with"],
        verified_on=verified_on,
        verified_images=0 if images is None else len(checks),
        seconds=round(time.perf_counter() - started, 3),
        num_classes=int(metadata.get("num_classes", 0)),
        fused=fused,
        reparameterised=merged,
        notes=notes,
    )


def _inputs(options: ExportOptions, input_size: Sequence[int], images: ExportImages | None):
    """(the input the file is traced with, the batch-1 inputs it is verified on, what those are).

    A dynamic-batch file is traced at batch 2 and verified at batch 1: a batch size baked into it shows."""
    batch = 2 if options.dynamic_batch else 1
    shape = "×".join(map(str, (1, 3, *input_size)))
    if images is None:
        generator = torch.Generator().manual_seed(options.seed)
        example = torch.randn(batch, 3, *input_size, generator=generator)
        return example, [torch.randn(1, 3, *input_size, generator=generator)], f"a {shape} random input"
    if tuple(images.images.shape[-2:]) != tuple(input_size):
        side = "x".join(map(str, images.images.shape[-2:]))
        raise RunError(f"the images to verify on ({images.description}) come at {side}, the export is at {shape}")
    example = images.images[torch.arange(batch) % len(images.images)]  # a split of one image repeats it
    return example, list(images.images.split(1)), f"{images.description}, each {shape}"


def _eager(model: nn.Module, keep, checks: list[torch.Tensor], example: torch.Tensor):
    """The eager model's outputs on each check and on the example; a failing forward pass is a user error."""
    with torch.no_grad():
        try:
            return [keep(model(check)) for check in checks], flatten_outputs(keep(model(example)))
        except RunError:
            raise
        except Exception as exc:  # noqa: BLE001 - the model itself fails on this input: no traceback
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise RunError(
                f"forward pass on a {tuple(checks[0].shape)} input failed: {type(exc).__name__}: {first} "
                "(try another --input-size)"
            ) from None


def _reparameterise(model: nn.Module, options: ExportOptions, notes: list[str]) -> tuple[int, int]:
    """(RepConv blocks merged, BatchNorm layers folded), in place: inference files are re-parameterised, as the
    peer's deploy() does; fx and ExportedProgram files keep the training structure unless ``fuse``."""
    merged = fused = 0
    if options.format == "onnx" or options.fuse:
        merged = merge_repconv_(model)
        if merged:
            notes.append(f"merged {merged} RepConv block(s) (3x3 + 1x1 + identity) into one 3x3 conv each")
    if options.fuse:
        fused = fuse_bn_(model)
        notes.append(f"folded {fused} BatchNorm layer(s) into the conv before them")
    return merged, fused


def _atomic(path: Path, write) -> None:
    """``write(temp)`` then rename onto ``path`` through the project's one atomic writer; the temp file keeps the
    suffix (torch.export insists on .pt2)."""
    try:
        write_atomic(path, write, keep_suffix=True)
    except AtomicWriteError as exc:
        raise RunError(str(exc), UNUSABLE) from None


def _failed(what: str, exc: Exception, hint: str = "") -> RunError:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return RunError(f"{what} failed: {type(exc).__name__}: {first}{hint}")


# Each exporter writes the file at ``tmp`` and returns (a function running the file as its user would load it:
# input -> named outputs, how it is run).


def _onnx(model, example, tmp, options, names, batched, metadata):
    try:
        import onnx
        import onnxruntime as ort
    except ImportError as exc:
        raise RunError(
            f"ONNX export needs the onnx and onnxruntime packages ({exc.name} is missing): "
            'pip install "npc[runtime]" (or: pip install onnx onnxruntime)',
            UNUSABLE,
        ) from None
    flat = _Flat(model).eval()
    dynamic_hint = " (try --no-dynamic-batch)" if options.dynamic_batch else ""
    try:
        if options.exporter == "dynamo":
            _onnx_dynamo(flat, example, tmp, options, names)
        else:
            axes = {"input": {0: "batch"}, **{n: {0: "batch"} for n in batched}} if options.dynamic_batch else None
            torch.onnx.export(
                flat,
                (example,),
                tmp,
                dynamo=False,
                input_names=["input"],
                output_names=names,
                opset_version=options.opset,
                dynamic_axes=axes,
                do_constant_folding=True,
            )
    except RunError:
        raise
    except Exception as exc:  # noqa: BLE001 - exporter errors are many and deep: report the first line
        raise _failed("ONNX export", exc, dynamic_hint) from None
    proto = onnx.load(tmp)
    onnx.checker.check_model(proto)
    _stamp_origins(proto, metadata)
    entry = proto.metadata_props.add()
    entry.key, entry.value = "npc", json.dumps({**metadata, "outputs": names}, sort_keys=True)
    onnx.save(proto, tmp)
    session = ort.InferenceSession(tmp, providers=["CPUExecutionProvider"])
    feed, out_names = session.get_inputs()[0].name, [o.name for o in session.get_outputs()]

    def run(x: torch.Tensor) -> list[tuple[str, Any]]:
        return list(zip(out_names, session.run(None, {feed: x.numpy()})))

    return run, f"onnxruntime {ort.__version__} (CPUExecutionProvider)"


def _stamp_origins(proto, metadata: dict[str, Any]) -> None:
    """Write into each node's ``doc_string`` (shown by Netron and onnx.helper) the spec pointer and line that
    produced it, found from the node's module scope through the provenance map."""
    entries = metadata.get("provenance")
    if not entries:
        return
    for node in proto.graph.node:
        record = locate(module_path_of_onnx_node(node.name), entries)
        if record is None:
            continue
        line = f":{record['line']}" if "line" in record else ""
        node.doc_string = f"npc: {metadata.get('spec', '')}{line} {record['pointer']} ({record['component']})"


def _onnx_dynamo(flat, example, tmp, options, names):
    try:
        import onnxscript  # noqa: F401 - the torch.export-based exporter needs it
    except ImportError:
        raise RunError(
            "--exporter dynamo needs the onnxscript package (pip install onnxscript); the default TorchScript-based "
            "exporter does not",
            UNUSABLE,
        ) from None
    shapes = ({0: torch.export.Dim("batch", min=1, max=4096)},) if options.dynamic_batch else None
    program = torch.onnx.export(
        flat,
        (example,),
        dynamo=True,
        input_names=["input"],
        output_names=names,
        opset_version=max(options.opset, 18),
        dynamic_shapes=shapes,
        verbose=False,
    )
    program.save(tmp, external_data=False)


def _exported_program(model, example, tmp, options, names, batched, metadata):
    shapes = ({0: torch.export.Dim("batch", min=1, max=4096)},) if options.dynamic_batch else None
    try:
        program = torch.export.export(model, (example,), dynamic_shapes=shapes)
    except Exception as exc:  # noqa: BLE001
        raise _failed("torch.export", exc, " (try --no-dynamic-batch)" if options.dynamic_batch else "") from None
    torch.export.save(program, tmp, extra_files={"npc.json": json.dumps(metadata, sort_keys=True)})
    loaded = torch.export.load(tmp).module()
    return _runner(loaded), "torch.export.load"


def _fx(model, example, tmp, options, names, batched, metadata):
    try:
        graph_module = torch.fx.symbolic_trace(model)
    except Exception as exc:  # noqa: BLE001
        raise _failed("torch.fx.symbolic_trace", exc) from None
    torch.save(graph_module, tmp)
    loaded = torch.load(tmp, map_location="cpu", weights_only=False)  # our own file, just written
    return _runner(loaded.eval()), "torch.load of the saved GraphModule"


def _runner(module):
    """A loaded torch module as an exporter's run function: input -> its flattened outputs."""

    def run(x: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
        with torch.no_grad():
            return flatten_outputs(module(x))

    return run


def export_path(
    path: str | Path,
    output: str | Path,
    options: ExportOptions,
    *,
    weights: str | Path | None = None,
    num_classes: int | None = None,
    data: str | Path | None = None,
) -> ExportReport:
    """SPEC, model.py or run folder in, verified export out (what ``npc export`` runs): verified on the first
    validation images of ``data`` (a YAML/JSON file with a data: section) or of a run folder's own data, else on a
    random input."""
    target = load_target(path)
    images, note = _images_to_verify_on(Path(path), target, data, options)
    report = export_target(target, output, options, weights=weights, num_classes=num_classes, images=images)
    if note:
        report.notes.append(note)
    return report


def _images_to_verify_on(path: Path, target, data: str | Path | None, options: ExportOptions):
    """(images, "") from ``data`` or a run folder's data; (None, why) when a run's own data cannot serve.

    Asked for with ``data``, an unreadable set or a size that disagrees with ``--input-size`` is an error; a run
    folder's own data only falls back to random input, with a note (an export should not need the training set).
    A spec's own data: section is not read: exporting a spec needs no data."""
    if data is None and not (path / "resolved.yaml").is_file():
        return None, ""
    try:
        config = data_config(path, target, data, use="to verify the export on")
        bundle = build_deploy_data(config, ("valid",), why="npc export verifies on the first validation images")
    except NpcError as exc:
        if data is not None:
            raise
        return None, f"verified on a random input: the run's data does not read ({exc})"
    side = image_side(bundle)
    if options.input_size and tuple(options.input_size) != side:
        if data is not None:
            raise size_mismatch(options.input_size, bundle) from None
        wanted = "x".join(map(str, options.input_size))
        return None, f"verified on a random input: the run's images come at {side[0]}x{side[1]}, not at {wanted}"
    return first_images(bundle, options.verify_images), ""
