"""An ONNX file written by ``npc export`` run through onnxruntime, called like the torch model it came from.

``OnnxModel(path)(images)`` returns the dict the eager model returns in eval mode (``pred``: a tensor or a list of
levels, ...), rebuilt from the output skeleton ``npc export`` records in the file's ``npc`` metadata; outputs an
inference file leaves out (training-only ones, or ``None`` in eval mode) come back as ``None``. So npc's metric
loop, decoding and NMS run on it unchanged. The metadata also carries the task, class names, input size,
preprocessing and the spec, so no spec is needed beside the file.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..errors import UNUSABLE, RunError

__all__ = ["OnnxModel", "is_onnx", "read_npc_metadata"]


def is_onnx(path: str | Path) -> bool:
    return Path(path).suffix.lower() == ".onnx"


def _session(path: Path, threads: int | None):
    try:
        import onnxruntime as ort
    except ImportError:
        raise RunError(
            'running an ONNX file needs onnxruntime: pip install "npc[runtime]" (or: pip install onnxruntime)',
            UNUSABLE,
        ) from None
    if not path.is_file():
        raise RunError(f"{path}: no such file", UNUSABLE)
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own classes for unreadable files
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise RunError(f"{path}: not a readable ONNX model ({first})", UNUSABLE) from None


def _npc_record(path: Path, session) -> dict[str, Any]:
    raw = session.get_modelmeta().custom_metadata_map.get("npc")
    if raw is None:
        raise RunError(
            f"{path}: not an ONNX file written by npc export (no 'npc' metadata: task, class names, preprocessing); "
            "export the model with `npc export RUN -o model.onnx`",
            UNUSABLE,
        )
    try:
        record = json.loads(raw)
    except json.JSONDecodeError:
        raise RunError(f"{path}: its 'npc' metadata is not JSON", UNUSABLE) from None
    missing = [key for key in ("task", "num_classes", "skeleton") if key not in record]
    if missing:
        raise RunError(f"{path}: its 'npc' metadata lacks {', '.join(missing)} (re-export with this npc)", UNUSABLE)
    return record


def read_npc_metadata(path: str | Path) -> dict[str, Any]:
    """The ``npc`` metadata of an exported ONNX file; a clear error for a file npc did not write."""
    path = Path(path)
    return _npc_record(path, _session(path, 1))


class OnnxModel:
    """Callable like the eval-mode torch model: ``model(images) -> dict``; ``.eval()``/``.to()`` are no-ops so
    npc's evaluation loop takes it as it is (onnxruntime runs on the CPU)."""

    def __init__(self, path: str | Path, *, threads: int | None = None) -> None:
        self.path = Path(path)
        self.session = _session(self.path, threads)
        self.metadata = _npc_record(self.path, self.session)
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.task: str = self.metadata["task"]
        self.num_classes = int(self.metadata["num_classes"])
        self.class_names: list[str] = list(
            self.metadata.get("class_names") or [str(i) for i in range(self.num_classes)]
        )

    def eval(self) -> OnnxModel:
        return self

    def to(self, *_: Any, **__: Any) -> OnnxModel:
        return self

    def __call__(self, images: torch.Tensor) -> Any:
        arrays = self.session.run(None, {self.input_name: images.detach().cpu().float().numpy()})
        named = {name: torch.from_numpy(array) for name, array in zip(self.output_names, arrays)}
        return _rebuild(self.metadata["skeleton"], named)

    def preprocess(self) -> Any:
        """The recorded preprocessing (a ``Preprocess``, or a pose ``PosePreprocess``); None if not recorded."""
        from ..data import preprocess_from_json

        raw = self.metadata.get("preprocess")
        return preprocess_from_json(json.dumps(raw)) if raw else None

    def postprocessor(self) -> Any:
        """A detection model's decoding + NMS, rebuilt by compiling the spec the file carries; None otherwise."""
        if self.task != "detection":
            return None
        text = self.metadata.get("spec_text")
        if not text:
            raise RunError(
                f"{self.path}: carries no spec, so its boxes cannot be decoded (export it from a spec or run folder)",
                UNUSABLE,
            )
        from ..engine.trainer import detection_postprocessor
        from .summary import load_target

        with tempfile.TemporaryDirectory(prefix="npc-onnx-") as folder:
            spec = Path(folder) / f"spec{self.metadata.get('spec_suffix') or '.yaml'}"
            spec.write_text(text, encoding="utf-8")
            target = load_target(spec)
        postprocessor, _ = detection_postprocessor(target.module, self.task)
        if postprocessor is None:
            raise RunError(f"{self.path}: its detection head defines no decoding (build_postprocessor)")
        return postprocessor


def _rebuild(skeleton: Any, named: dict[str, torch.Tensor]) -> Any:
    """The skeleton with each flat name replaced by its tensor; a name the file does not output becomes None."""
    if skeleton is None:
        return None
    if isinstance(skeleton, str):
        return named.get(skeleton)
    if isinstance(skeleton, dict):
        return {key: _rebuild(value, named) for key, value in skeleton.items()}
    return [_rebuild(value, named) for value in skeleton]
