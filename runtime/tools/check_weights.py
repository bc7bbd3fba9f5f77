"""``npc check-weights SPEC WEIGHTS``: would these weights load into the compiled model, and if not, where not.

Compares tensor names and shapes only, so a multi-GB checkpoint is checked without reading its data: a
``.safetensors`` header gives the shapes, a ``.pth``/``.pt`` state dict is memory-mapped (``weights_only=True``),
and the model is built on the ``meta`` device. Every problem names the spec pointer of the component that owns
the key (``backbone.*`` → ``/model/architecture/backbone``), so a widened stage is found in the spec, not in a
list of tensor names. ``load_head: false`` (the spec's, or ``--no-head``) leaves ``head.*`` out, as loading does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ...compiler._provenance import locate, provenance_map
from ..errors import UNUSABLE, CheckpointError, RunError
from .export import infer_num_classes
from .summary import LoadedTarget

__all__ = ["KeyProblem", "WeightsReport", "check_shapes", "read_shapes"]

Shape = tuple[int, ...]


@dataclass(frozen=True)
class KeyProblem:
    key: str
    kind: str  # "missing" (the model has it, the file not), "unexpected" (the file only), "shape"
    pointer: str  # spec pointer of the component owning the key ("" when unknown)
    file_shape: Shape | None = None
    model_shape: Shape | None = None

    def describe(self) -> str:
        shapes = {
            "missing": f"model {self.model_shape}",
            "unexpected": f"file {self.file_shape}",
            "shape": f"file {self.file_shape} vs model {self.model_shape}",
        }[self.kind]
        return f"{self.kind:<10} {self.key}  {shapes}"


@dataclass
class WeightsReport:
    num_classes: int
    matched: int = 0
    skipped_head: int = 0
    problems: list[KeyProblem] = field(default_factory=list)
    remapped: int = 0

    @property
    def strict_ok(self) -> bool:
        """Whether ``model.load_state_dict(state, strict=True)`` would succeed."""
        return not self.problems

    def counts(self) -> dict[str, int]:
        return {kind: sum(p.kind == kind for p in self.problems) for kind in ("missing", "unexpected", "shape")}


def read_shapes(path: str | Path) -> tuple[dict[str, Shape], dict[str, str]]:
    """Tensor shapes and npc metadata of a weights file, without reading the tensors' data."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: weights file not found", UNUSABLE)
    if path.suffix.lower() == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt", device="cpu") as handle:
                keys = list(handle.keys())
                return {k: tuple(handle.get_slice(k).get_shape()) for k in keys}, dict(handle.metadata() or {})
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # pickled objects beyond tensors, or a damaged file: a message, not a traceback
        raise CheckpointError(f"{path}: not a state dict torch can load safely ({type(exc).__name__}: {exc})") from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: holds no state dict (a mapping of names to tensors)")
    return {k: tuple(v.shape) for k, v in state.items()}, {}


def remap_keys(shapes: dict[str, Shape], remap: Mapping[str, str]) -> tuple[dict[str, Shape], int]:
    """Apply ``old prefix → new prefix`` renames (longest prefix first); returns the new map and how many moved."""
    prefixes = sorted(remap, key=len, reverse=True)
    out, moved = {}, 0
    for key, shape in shapes.items():
        old = next((p for p in prefixes if key.startswith(p)), None)
        if old is not None:
            key, moved = remap[old] + key[len(old) :], moved + 1
        out[key] = shape
    return out, moved


def owner_pointers(target: LoadedTarget) -> dict[str, dict]:
    """The provenance map of the target's graph (module path prefix → spec pointer); empty for a model.py."""
    return provenance_map(target.graph) if target.graph is not None else {}


def _owner(key: str, owners: dict[str, dict]) -> str:
    record = locate(key, owners)
    return record["pointer"] if record else ""


def check_shapes(
    target: LoadedTarget,
    shapes: dict[str, Shape],
    *,
    load_head: bool = True,
    num_classes: int | None = None,
    remap: Mapping[str, str] | None = None,
) -> WeightsReport:
    """Compare a file's tensor shapes with the model's; see the module docstring."""
    shapes, moved = remap_keys(shapes, remap or {})
    if num_classes is None:
        probe = {k: torch.empty(s, device="meta") for k, s in shapes.items()}
        num_classes = infer_num_classes(target, probe)
        if num_classes is None:
            raise RunError("cannot tell the class count from the weights; give --num-classes", UNUSABLE)
    with torch.device("meta"):
        model = target.module.build_model(num_classes=num_classes)
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    report = WeightsReport(num_classes, remapped=moved)
    if not load_head:
        report.skipped_head = sum(k.startswith("head.") for k in shapes)
        shapes = {k: s for k, s in shapes.items() if not k.startswith("head.")}
        own = {k: s for k, s in own.items() if not k.startswith("head.")}
    owners = owner_pointers(target)
    for key, shape in own.items():
        if key not in shapes:
            report.problems.append(KeyProblem(key, "missing", _owner(key, owners), model_shape=shape))
        elif shapes[key] != shape:
            report.problems.append(KeyProblem(key, "shape", _owner(key, owners), shapes[key], shape))
        else:
            report.matched += 1
    for key, shape in shapes.items():
        if key not in own:
            report.problems.append(KeyProblem(key, "unexpected", _owner(key, owners), file_shape=shape))
    return report
