"""int8 quantisation variants of one fp32 ONNX file, timed against it in one process (issue #21, int8 speed).

usage: python bench/int8_variants.py FP32.onnx OUTDIR [--runs R] [--profile] [VARIANT ...]

FP32.onnx is an ``npc export`` file (e.g. ``npc export mobilenetv3-small-classification -o m.onnx --input-size
224 224 --num-classes 10``). It is pre-processed as ``npc export --quantize int8`` does, then quantised once per
variant with onnxruntime's ``quantize_static`` (8 seeded random calibration inputs: latency does not depend on the
ranges; ``npc``'s own float-only nodes always stay in float), and every file is timed at one thread, batch 1,
calls alternating between files round by round (the order reversed every other round), the median of ``--runs``
rounds after 3 warm-up calls. ``--profile`` also prints, per file, onnxruntime's profiler time per op type (it
adds its own overhead per node, so read the shares, not the sums). Not part of the test suite.

Variants (default: all): ``qdq`` is what npc writes today; the others change one thing:
``qop`` QOperator format; ``per_tensor`` per-tensor weights; ``s8s8`` int8 activations (symmetric);
``weight_sym`` ``WeightSymmetric``; ``no_removable`` ``QDQKeepRemovableActivations=False``;
``dedicated`` ``DedicatedQDQPair``; ``conv_only`` only Conv/Gemm/MatMul quantised;
``*_float`` those nodes left in float: ``depthwise`` (group == in_channels), ``stem`` (a conv with <= 4 input
channels), ``low_mac`` (convs with fewer than 32 multiply-adds per output value: in_channels/group x kernel area),
``hardswish`` (Mul(x, HardSigmoid(x)), as onnxruntime's pre-processing rewrites HardSwish), ``silu``
(Mul(x, Sigmoid(x))), ``avgpool`` (AveragePool).
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from npc.runtime.tools.quantize import _float_only_nodes


class Graph:
    """The pre-processed fp32 graph, with the node sets the ``*_float`` variants leave in float."""

    def __init__(self, model) -> None:
        self.model = model
        self.weights = {init.name: init for init in model.graph.initializer}
        self.producers = {name: node for node in model.graph.node for name in node.output}

    def _convs(self, keep) -> set[str]:
        return {n.name for n in self.model.graph.node if n.op_type == "Conv" and keep(n, self.weights[n.input[1]].dims)}

    def depthwise(self) -> set[str]:
        return self._convs(lambda node, dims: _group(node) > 1 and dims[1] == 1)

    def stem(self) -> set[str]:
        return self._convs(lambda node, dims: _group(node) == 1 and dims[1] <= 4)

    def low_mac(self) -> set[str]:
        return self._convs(lambda node, dims: int(np.prod(dims[1:])) < 32)

    def gated(self, gate: str) -> set[str]:
        """Mul(x, gate(x)) and its gate node."""
        names = set()
        for node in self.model.graph.node:
            if node.op_type != "Mul" or len(node.input) != 2:
                continue
            for x, g in (node.input, node.input[::-1]):
                source = self.producers.get(g)
                if source is not None and source.op_type == gate and source.input[0] == x:
                    names |= {node.name, source.name}
        return names

    def op(self, op_type: str) -> set[str]:
        return {n.name for n in self.model.graph.node if n.op_type == op_type}


def _group(node) -> int:
    return next((a.i for a in node.attribute if a.name == "group"), 1)


VARIANTS = {
    "qdq": {},
    "qop": {"quant_format": QuantFormat.QOperator},
    "per_tensor": {"per_channel": False},
    "s8s8": {"activation_type": QuantType.QInt8, "extra_options": {"ActivationSymmetric": True}},
    "weight_sym": {"extra_options": {"WeightSymmetric": True}},
    "no_removable": {"extra_options": {"QDQKeepRemovableActivations": False}},
    "dedicated": {"extra_options": {"DedicatedQDQPair": True}},
    "conv_only": {"op_types_to_quantize": ["Conv", "Gemm", "MatMul"]},
    "depthwise_float": {"float": Graph.depthwise},
    "stem_float": {"float": Graph.stem},
    "low_mac_float": {"float": Graph.low_mac},
    "hardswish_float": {"float": lambda g: g.gated("HardSigmoid")},
    "silu_float": {"float": lambda g: g.gated("Sigmoid")},
    "avgpool_float": {"float": lambda g: g.op("AveragePool")},
}


def prepare(fp32: Path, folder: Path) -> Path:
    """npc's pre-processing, and a name for every node (the pre-processing leaves inlined HardSwish nodes unnamed,
    and only named nodes can be left in float)."""
    prepared = folder / "prepared.onnx"
    quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
    model = onnx.load(str(prepared))
    for index, node in enumerate(model.graph.node):
        node.name = node.name or f"{node.op_type}_{index}"
    onnx.save(model, str(prepared))
    return prepared


def quantise(prepared: Path, graph: Graph, name: str, inputs: list[np.ndarray], folder: Path) -> Path:
    variant = dict(VARIANTS[name])
    in_float = {node for node, _ in _float_only_nodes(graph.model)} | variant.pop("float", lambda g: set())(graph)
    feeds = iter([{graph.model.graph.input[0].name: x} for x in inputs])

    class Reader:
        def get_next(self):
            return next(feeds, None)

    settings = {
        "quant_format": QuantFormat.QDQ,
        "per_channel": True,
        "activation_type": QuantType.QUInt8,
        "weight_type": QuantType.QInt8,
        "calibrate_method": CalibrationMethod.MinMax,
        **variant,
    }
    path = folder / f"{name}.onnx"
    quantize_static(str(prepared), str(path), Reader(), nodes_to_exclude=sorted(in_float), **settings)
    return path


def session(path: Path, profile: bool = False) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
    if profile:
        options.enable_profiling = True
        options.profile_file_prefix = str(path.with_suffix(""))
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def time_all(paths: dict[str, Path], feed: dict, runs: int) -> dict[str, float]:
    sessions = {name: session(path) for name, path in paths.items()}
    for s in sessions.values():
        for _ in range(3):
            s.run(None, feed)
    times: dict[str, list[float]] = {name: [] for name in sessions}
    names = list(sessions)
    for round_ in range(runs):
        for name in names if round_ % 2 == 0 else names[::-1]:
            started = time.perf_counter()
            sessions[name].run(None, feed)
            times[name].append(time.perf_counter() - started)
    return {name: 1000 * statistics.median(t) for name, t in times.items()}


def profile(path: Path, feed: dict, runs: int = 30) -> None:
    s = session(path, profile=True)
    for _ in range(runs):
        s.run(None, feed)
    events = json.loads(Path(s.end_profiling()).read_text())
    per_op: collections.Counter = collections.Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            per_op[event["args"]["op_name"]] += event["dur"] / runs / 1000
    total = sum(per_op.values())
    shares = ", ".join(f"{op} {100 * ms / total:.0f}%" for op, ms in per_op.most_common(6))
    print(f"  {path.stem}: {total:.2f} ms in kernels (profiled); {shares}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fp32", type=Path)
    parser.add_argument("folder", type=Path)
    parser.add_argument("variants", nargs="*", default=list(VARIANTS), help=f"of: {', '.join(VARIANTS)}")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    args.folder.mkdir(parents=True, exist_ok=True)
    prepared = prepare(args.fp32, args.folder)
    graph = Graph(onnx.load(str(prepared)))
    shape = [d.dim_value or 1 for d in graph.model.graph.input[0].type.tensor_type.shape.dim]
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal(shape).astype(np.float32) for _ in range(8)]
    paths = {"fp32": prepared, **{v: quantise(prepared, graph, v, inputs, args.folder) for v in args.variants}}
    feed = {graph.model.graph.input[0].name: inputs[0]}
    medians = time_all(paths, feed, args.runs)
    print(f"| {args.fp32.stem} | variant | ms (median of {args.runs}) | x fp32 |")
    print("|---|---|---:|---:|")
    for name, ms in medians.items():
        print(f"| | {name} | {ms:.2f} | {ms / medians['fp32']:.2f} |")
    if args.profile:
        for path in paths.values():
            profile(path, feed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
