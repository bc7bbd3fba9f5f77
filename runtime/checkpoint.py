"""Weights and training state on disk: atomic writes, safe loads, clear key reports.

* Every file is written to a temp file in the same folder and renamed over the old one (``os.replace``), so a
  crash mid-write leaves the previous file intact and a reader never sees half a checkpoint.
* Weights: ``.safetensors`` (preferred; metadata carries the class list and preprocessing) or a ``.pth``/``.pt``
  state dict read with ``torch.load(weights_only=True)`` — never arbitrary unpickling.
* Training state (``training_state.pt``): model, optimizer, scheduler, EMA, epoch, best metric and RNG states —
  everything a resumed run needs — saved with ``torch.save`` and read back with ``weights_only=True``.
"""

from __future__ import annotations

import json
import os
import random
import re
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .._atomic import AtomicWriteError, write_atomic
from .errors import UNUSABLE, CheckpointError

__all__ = [
    "BackgroundWriter",
    "LoadReport",
    "WriteError",
    "apply_weights",
    "atomic_write",
    "atomic_write_text",
    "capture_rng",
    "load_training_state",
    "load_weights",
    "restore_rng",
    "save_training_state",
    "save_weights",
    "weights_snapshot",
    "write_weights",
]

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt")
MAX_LISTED_KEYS = 8


# --- atomic writes ---------------------------------------------------------------------------------------------


def atomic_write(path: str | Path, write: Callable[[str], None]) -> None:
    """Call ``write(temp_path)``, then rename the temp file onto ``path``; on any failure ``path`` is untouched.

    The project's one atomic writer (:func:`npc._atomic.write_atomic`); a write that fails for want of room or
    permission (disk full, file size limit, read-only folder) is a :class:`CheckpointError` naming the file and the
    cause, and the temp file is removed in every case.
    """
    try:
        write_atomic(path, write)
    except AtomicWriteError as exc:
        raise WriteError(str(exc)) from None


class WriteError(CheckpointError, OSError):
    """A file that could not be written (disk full, size limit, permissions): a user-facing error that is still the
    OSError it comes from, for callers that catch those."""


class _RecordingWriter:
    """A file for ``torch.save`` that keeps the OSError of a failed write: torch reports it only as an opaque
    ``RuntimeError`` ("unexpected pos ..."), which would hide a full disk from the user."""

    def __init__(self, handle: Any) -> None:
        self.handle, self.error = handle, None

    def write(self, data: bytes) -> int:
        try:
            return self.handle.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self.handle.flush()


def _torch_save(obj: Any, tmp: str) -> None:
    with open(tmp, "wb") as handle:
        writer = _RecordingWriter(handle)
        try:
            torch.save(obj, writer)
        except RuntimeError:
            if writer.error is not None:
                raise writer.error from None
            raise


def atomic_write_text(path: str | Path, text: str) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)

    atomic_write(path, write)


# --- weights -----------------------------------------------------------------------------------------------------


def save_weights(path: str | Path, state_dict: dict[str, torch.Tensor], metadata: dict[str, Any]) -> None:
    """A ``.safetensors`` file; ``metadata`` values are stored as JSON text under ``npc``."""
    write_weights(path, weights_snapshot(state_dict), metadata)


def weights_snapshot(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Copies on the CPU, fit for :func:`write_weights`: safetensors refuses tensors that share storage, and a file
    (or a write still queued while training goes on) must not alias live parameters."""
    return {k: v.detach().to("cpu").clone().contiguous() for k, v in state_dict.items()}


def write_weights(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, Any]) -> None:
    """:func:`save_weights` for tensors that are already a :func:`weights_snapshot` (written as they are)."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    meta = {"format": "pt", "npc": json.dumps(metadata, sort_keys=True)}

    def write(tmp: str) -> None:
        try:
            save_file(tensors, tmp, metadata=meta)
        except SafetensorError as exc:
            raise _os_error(str(exc)) from None

    atomic_write(path, write)


def _os_error(text: str) -> OSError:
    """safetensors reports I/O errors as text ("... I/O error: File too large (os error 27)"): the OSError again."""
    found = re.search(r"os error (\d+)", text)
    return OSError(int(found.group(1)), os.strerror(int(found.group(1)))) if found else OSError(text)


def load_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state dict, npc metadata or {}) from a ``.safetensors`` or ``.pth``/``.pt`` file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: weights file not found", UNUSABLE)
    if path.suffix.lower() == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            state: dict[str, torch.Tensor] = {}
            with safe_open(str(path), framework="pt", device="cpu") as handle:
                raw_meta = handle.metadata() or {}
                for key in handle.keys():  # noqa: SIM118 - safe_open has no __iter__
                    state[key] = handle.get_tensor(key)
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None
        try:
            metadata = json.loads(raw_meta["npc"]) if "npc" in raw_meta else {}
        except json.JSONDecodeError:
            metadata = {}
        return state, metadata
    loaded = _torch_load(path, "weights")
    state = _unwrap_state_dict(loaded, path)
    return state, {}


def _torch_load(path: Path, what: str) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: {what} file not found", UNUSABLE) from None
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, ... for bad files
        text = str(exc)
        found = re.search(r"GLOBAL ([\w.]+)", text)
        if found or "Unsupported global" in text:
            what_global = f" ({found.group(1)})" if found else ""
            raise CheckpointError(
                f"{path}: holds pickled Python objects besides tensors{what_global}; npc loads {what} with "
                "torch.load(weights_only=True) and will not run code from a checkpoint. Save a plain state_dict "
                "(or .safetensors) instead"
            ) from None
        detail = re.search(r"WeightsUnpickler error:\s*(.+?)\s*(?:\n|$)", text)
        first = detail.group(1) if detail else (text.strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(
            f"{path}: cannot read {what}: not a torch checkpoint, or a corrupt one ({first})"
        ) from None


def _unwrap_state_dict(loaded: Any, path: Path) -> dict[str, torch.Tensor]:
    """A plain state dict, also from the common wrappers ({"state_dict": ...}, {"model": ...}, DDP's module.)."""
    if isinstance(loaded, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(loaded.get(key), dict):
                loaded = loaded[key]
                break
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise CheckpointError(f"{path}: not a state dict (a mapping of parameter names to tensors)")
    if loaded and all(k.startswith("module.") for k in loaded):
        loaded = {k[len("module.") :]: v for k, v in loaded.items()}
    return loaded


@dataclass
class LoadReport:
    loaded: int = 0
    skipped_head: int = 0
    missing: list[str] = field(default_factory=list)  # model keys the file lacks (left as initialised)
    unexpected: list[str] = field(default_factory=list)  # file keys the model lacks (ignored)
    warnings: list[str] = field(default_factory=list)


def apply_weights(
    model: nn.Module, state: dict[str, torch.Tensor], path: str | Path, *, load_head: bool = True, strict: bool = False
) -> LoadReport:
    """Load ``state`` into ``model``, reporting what did not fit.

    Shape mismatches and missing backbone/neck keys are errors (training would silently start from random
    weights); missing ``head.*`` keys and unexpected keys are warnings. ``load_head=False`` drops the file's
    ``head.*`` entries first (fine-tuning to another class count). ``strict=True`` (evaluate, predict) makes any
    missing or unexpected key an error.
    """
    report = LoadReport()
    if not load_head:
        head_keys = [k for k in state if k.startswith("head.")]
        report.skipped_head = len(head_keys)
        state = {k: v for k, v in state.items() if not k.startswith("head.")}
    own = model.state_dict()
    report.unexpected = sorted(k for k in state if k not in own)
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    if not load_head:
        missing = [k for k in missing if not k.startswith("head.")]
    report.missing = missing
    mismatched = [k for k, v in state.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    if not any(k in own for k in state):
        raise CheckpointError(
            f"{path}: none of its {len(state)} keys matches the model (file: {_listed(list(state))}; "
            f"model: {_listed(list(own))})"
        )
    if mismatched:
        shapes = "; ".join(f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}" for k in mismatched[:5])
        hint = ""
        if all(k.startswith("head.") for k in mismatched):
            hint = " — the class count differs: set model.checkpoint.load_head: false to train a new head"
        raise CheckpointError(f"{path}: {len(mismatched)} tensor(s) have another shape ({shapes}){hint}")
    head_missing = [k for k in missing if k.startswith("head.")]
    body_missing = [k for k in missing if not k.startswith("head.")]
    if strict and (missing or report.unexpected):
        raise CheckpointError(
            f"{path}: does not match the model: missing {len(missing)} key(s) ({_listed(missing)}), "
            f"unexpected {len(report.unexpected)} ({_listed(report.unexpected)})"
        )
    if body_missing:
        raise CheckpointError(
            f"{path}: lacks {len(body_missing)} of the model's backbone/neck tensors ({_listed(body_missing)}); "
            "is it a checkpoint of another architecture?"
        )
    if head_missing:
        report.warnings.append(f"{path}: has no head weights ({len(head_missing)} keys); the head starts from scratch")
    if report.unexpected:
        report.warnings.append(
            f"{path}: {len(report.unexpected)} key(s) not in the model were ignored ({_listed(report.unexpected)})"
        )
    with torch.no_grad():
        model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    report.loaded = sum(1 for k in state if k in own)
    return report


def _listed(keys: list[str]) -> str:
    shown = ", ".join(keys[:MAX_LISTED_KEYS])
    return (
        shown + (f", … {len(keys) - MAX_LISTED_KEYS} more" if len(keys) > MAX_LISTED_KEYS else "") if keys else "none"
    )


# --- writing while training goes on ----------------------------------------------------------------------------


class BackgroundWriter:
    """Checkpoint writes run one after another on a thread of their own, so the next epoch trains while the files
    reach the disk (each is an atomic write with an fsync: tens of milliseconds apiece, mostly waiting for the disk).

    What a run relies on still holds: the writes happen in the order they were submitted (best, last, then
    ``training_state.pt``, so the state never points at weights that are not on disk); once one fails, everything
    submitted after it is dropped, leaving those files as they were; and the failure is raised in the training
    thread by the next :meth:`submit`, :meth:`check` or :meth:`wait`. Whatever is submitted must not change
    afterwards: the caller hands over copies of the live tensors. A context manager: leaving it waits for the
    queued writes.
    """

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="npc-checkpoint")
        self._pending: list[Future] = []
        self._failure: BaseException | None = None  # only the writer thread sets it
        self._reported = False

    def submit(self, write: Callable[..., None], *args: Any) -> None:
        self._raise_failure()
        self._pending = [f for f in self._pending if not f.done()]
        self._pending.append(self._pool.submit(self._run, write, args))

    def check(self) -> None:
        """Raise a failed write now (cheap: the training loop calls it every step, so a run stops soon after)."""
        self._raise_failure()

    def wait(self) -> None:
        """Block until every submitted write has finished; raise the first failure, if any."""
        for future in self._pending:
            future.result()
        self._pending.clear()
        self._raise_failure()

    def _run(self, write: Callable[..., None], args: tuple) -> None:
        if self._failure is not None:  # an earlier file failed: a later one must not claim more than is saved
            return
        try:
            write(*args)
        except BaseException as exc:  # handed to the training thread, which raises it
            self._failure = exc

    def _raise_failure(self) -> None:
        if self._failure is not None and not self._reported:  # raised once; later writes stay dropped
            self._reported = True
            raise self._failure

    def __enter__(self) -> BackgroundWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._pool.shutdown(wait=True)  # an error already on its way out wins over a write failure


# --- training state ----------------------------------------------------------------------------------------------


def save_training_state(path: str | Path, state: dict[str, Any]) -> None:
    atomic_write(path, lambda tmp: _torch_save(state, tmp))


def load_training_state(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        path = path / "training_state.pt"
    if not path.is_file():
        raise CheckpointError(f"{path}: training state not found", UNUSABLE)
    state = _torch_load(path, "training state")
    required = ("format", "epoch", "model", "optimizer")
    if (
        not isinstance(state, dict)
        or state.get("format") != "npc-training-state"
        or any(k not in state for k in required)
    ):
        raise CheckpointError(f"{path}: not an npc training state (written by `npc train` as training_state.pt)")
    return state


def capture_rng() -> dict[str, Any]:
    """Every RNG a training step may draw from, as tensors and plain values (loadable with weights_only)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    out: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": [version, list(internal), gauss],
        "numpy": [name, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss), float(cached)],
    }
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
