"""Shared test helpers: paths, compiling a spec in-process, importing emitted source."""

from __future__ import annotations

import importlib.util
import json
import sys
from functools import cache, lru_cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# npc's own zoo: one spec per NetsPresso Trainer 1.4.1 model config, named after it (the peer's file stem).
ZOO_SPECS = sorted((REPO / "zoo").glob("*.yaml"))
# What the peer builds for each of them (parameters, state_dict keys and shapes, outputs): see its "about".
ZOO_FACTS = REPO / "tests" / "data" / "zoo_facts.json"
# Two one-block resnet stages of 8 channels, as a spec's architecture entry: the backbone of the small task specs.
TINY_RESNET_BACKBONE = """\
    backbone:
      name: resnet
      params: {block_type: basicblock, norm_type: batch_norm, return_stage_idx: [0, 1]}
      stage_params:
        - {channels: 8, num_blocks: 1}
        - {channels: 8, num_blocks: 1}
"""
# Two mobilenetv3 stages (stride 8) and a narrow rtmcc head on 32x24 inputs: a 4x3 map per keypoint (fast on CPU).
TINY_POSE_MODEL = """\
model:
  task: pose_estimation
  name: tiny_rtmpose
  architecture:
    backbone:
      name: mobilenetv3
      params: ~
      stage_params:
        - {in_channels: [8], kernel_sizes: [3], expanded_channels: [16], out_channels: [8], use_se: [false],
           act_type: [relu], stride: [2]}
        - {in_channels: [8], kernel_sizes: [3], expanded_channels: [16], out_channels: [16], use_se: [false],
           act_type: [relu], stride: [2]}
    head:
      name: rtmcc
      params: {conv_kernel: 3, attention_channels: 16, s: 8, expansion_factor: 2, simcc_split_ratio: 2.0,
               target_size: [32, 24], backbone_stride: 8}
  losses:
    - criterion: rtmcc_loss
"""
EXAMPLES = sorted([*(REPO / "examples").glob("*.yaml"), *(REPO / "examples").glob("*.json")])


def compile_file(path: Path, **kwargs) -> str:
    from npc.compiler import compile_spec
    from npc.spec import load_spec

    return compile_spec(load_spec(path), **kwargs).source


def compile_problem(path: Path) -> tuple[str, str]:
    """(pointer, message) of the first error that stops ``path`` compiling: validation runs the compiler's graph
    passes, so a combination that cannot build is reported there, as a user of `npc validate` sees it."""
    from npc.compiler import CompileError
    from npc.spec import SpecError

    try:
        compile_file(path)
    except SpecError as exc:
        return exc.diagnostics[0].pointer, exc.diagnostics[0].message
    except CompileError as exc:
        return exc.pointer, exc.message
    raise AssertionError(f"{path} compiled")


@cache
def compiles(path: Path) -> bool:
    """Whether the spec is valid and every component it names has a template (the zoo grows issue by issue).

    Validity of every peer config is asserted separately (tests/unit/spec/test_peer_configs.py).
    """
    from npc.compiler import registry
    from npc.spec import SpecError, load_spec

    try:
        spec = load_spec(path)
    except SpecError:
        return False
    return all(registry.get(c.kind, c.name).template for c in spec.components)


def import_source(source: str, name: str, tmp_path: Path):
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def write_spec(spec: dict, tmp_path: Path, name: str) -> Path:
    """A spec dict saved as ``tmp_path/NAME.json``: a file the compiler reads like any other, so errors name it."""
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(spec))
    return path


def compile_dict(spec: dict, tmp_path: Path, name: str, **options) -> str:
    """The source npc emits for a spec dict (``options`` as for :func:`compile_file`, e.g. ``fuse=True``)."""
    return compile_file(write_spec(spec, tmp_path, name), **options)


def build_dict(
    spec: dict,
    tmp_path: Path,
    name: str,
    *,
    module: str | None = None,
    num_classes: int = 3,
    train: bool = False,
    **options,
):
    """(source, model) for a spec dict: compiled, imported as ``module`` (default ``name``; it goes into
    ``sys.modules``, so a family prefix keeps it unique) and built with a few classes, in eval mode unless ``train``
    (left as ``build_model`` returns it)."""
    source = compile_dict(spec, tmp_path, name, **options)
    model = import_source(source, module or name, tmp_path).build_model(num_classes=num_classes)
    return source, model if train else model.eval()


@lru_cache(maxsize=1)
def peer_results() -> dict[str, dict]:
    """Zoo name -> what NetsPresso Trainer measured for its config (params, trainable, buffers, input, output)."""
    return json.loads(ZOO_FACTS.read_text())["models"]


def peer_keys(stem: str) -> dict[str, list[int]]:
    """The peer's state_dict of zoo model ``stem``: key -> shape, in the peer's order."""
    return dict(peer_results()[stem]["state_dict"])


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """``npc ARGV`` in-process: (exit code, stdout, stderr); a user-facing command never prints a traceback."""
    from npc.cli import main

    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def shape_png(path: Path) -> Path:
    """A 48x48 picture from the built-in shapes set, saved as PNG (an input for predict)."""
    from PIL import Image

    from npc.runtime.data.shapes import generate_shapes

    Image.fromarray(generate_shapes(1, 48, seed=3).images[0]).save(path)
    return path


def train_metric_curve(spec: Path, out: Path, metric: str, timeout: int = 900) -> list[float]:
    """``npc train SPEC --out OUT`` in a fresh process with one torch thread (two pytest workers share two cores):
    the validation ``metric`` per epoch from metrics.csv, after printing the run's first/best values and time."""
    import csv
    import os
    import subprocess
    import time

    npc = Path(sys.executable).with_name("npc")
    started = time.perf_counter()
    result = subprocess.run(
        [str(npc), "train", str(spec), "--out", str(out), "--no-tensorboard"],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=timeout,
    )
    seconds = time.perf_counter() - started
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stdout + result.stderr
    with (out / "metrics.csv").open() as handle:
        values = [float(row[metric]) for row in csv.DictReader(handle)]
    print(f"\n{spec.name}: {metric} {values[0]:.2%} -> best {max(values):.2%} in {len(values)} epochs, {seconds:.0f}s")
    return values
