"""What ``npc train`` does about the faults a long run meets, besides a crash (which atomic writes cover):

* :class:`StopSignals` — SIGTERM / SIGINT (a cluster pre-empting the job, Ctrl-C, torchrun stopping its workers)
  only set a flag; the loop reads it between optimiser steps, saves a resumable state and stops with 143 / 130.
  Further signals while that happens are counted and otherwise ignored, so nothing interrupts the save.
* :func:`claim_run_folder` — one run per folder: a lock file holding the PID, ``flock``-ed so that a process that
  died (even by SIGKILL) releases it; the folder is checked for writability before any training starts, and the
  temp files an interrupted save left behind are removed.
* :class:`CheckpointClock` — ``training.checkpoint_every`` (steps and/or minutes): when a mid-epoch state is due.
* :func:`nonfinite_message` — the message for a loss that went NaN or infinite.
"""

from __future__ import annotations

import datetime
import math
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UNUSABLE, RunError

__all__ = [
    "LOCK_NAME",
    "CheckpointClock",
    "RunLock",
    "StopSignals",
    "check_run_folder",
    "claim_run_folder",
    "nonfinite_message",
    "refuse_if_in_use",
    "remove_stale_temp_files",
]

LOCK_NAME = ".npc-train.lock"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


# --- signals ---------------------------------------------------------------------------------------------------


class StopSignals:
    """While active (a context manager), SIGINT and SIGTERM ask the run to stop after the current step.

    Only the main thread may install handlers; elsewhere (a test calling ``train`` from a thread) the default
    behaviour stays. The first signal decides the exit code (the CLI's: 128 + its number, 130 for SIGINT, 143 for
    SIGTERM).
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self.repeated = 0  # signals after the first: ignored, so a save in progress completes
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    def _handle(self, signum: int, frame: Any) -> None:  # noqa: ARG002 - the signal module's signature
        if self.signum is None:
            self.signum = signum
        else:
            self.repeated += 1

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""

    @property
    def signal(self) -> int:
        """The first signal received (SIGINT when none was: an interrupt raised as KeyboardInterrupt)."""
        return self.signum or signal.SIGINT


def ignore_stop_signals(_worker_id: int = 0) -> None:
    """DataLoader workers leave stopping to the main process (a terminal's Ctrl-C reaches every process in the
    group; a worker that died of it would fail the main process's next batch before the state is saved)."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


# --- the run folder --------------------------------------------------------------------------------------------


@dataclass
class RunLock:
    """This process's claim on a run folder; ``notes`` says what claiming it found (a stale lock, temp files)."""

    folder: Path
    fd: int
    notes: list[str] = field(default_factory=list)
    holders: int = 1  # nested claims by the same process (the CLI claims before train() does)

    def release(self) -> None:
        self.holders -= 1
        if self.holders > 0:
            return
        _HELD.pop(self.folder, None)
        (self.folder / LOCK_NAME).unlink(missing_ok=True)  # unlinked while still locked: no one takes it half-gone
        os.close(self.fd)  # closing drops the flock


_HELD: dict[Path, RunLock] = {}


def claim_run_folder(folder: Path) -> RunLock:
    """Create ``folder`` (and missing parents), check it can be written, lock it for this process, and remove the
    temp files an interrupted save left there. A folder in use by a live process is a :class:`RunError`."""
    key = Path(os.path.abspath(folder))
    held = _HELD.get(key)
    if held is not None:
        held.holders += 1
        return held
    _make_folder(folder)
    lock = _take_lock(folder, key)
    _HELD[key] = lock
    removed = remove_stale_temp_files(folder)
    if removed:
        lock.notes.append(f"removed {removed} temporary file(s) left in {folder} by an interrupted save")
    return lock


def check_run_folder(folder: Path) -> None:
    """Refuse, before any work, a run folder that could not be made or written: a file where it or a parent should
    be, or a folder without write permission (missing parents are created later, as ``mkdir -p`` would)."""
    blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        where = "is" if blocker == folder else f"(a parent of {folder}) is"
        raise RunError(f"{blocker}: {where} a file, not a folder: choose another --out", UNUSABLE)
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not _writable(existing):
        what = "the run folder" if existing == folder else f"{existing} (where {folder} would be created)"
        raise RunError(f"{folder}: cannot write in {what}: permission denied", UNUSABLE)


def _writable(folder: Path) -> bool:
    return os.access(folder, os.W_OK | os.X_OK)


def _make_folder(folder: Path) -> None:
    """``mkdir -p`` with a reason when it cannot be done: a file in the way, a parent that cannot be written."""
    check_run_folder(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(f"{folder}: cannot create the run folder ({exc.strerror or exc})", UNUSABLE) from None


def _take_lock(folder: Path, key: Path) -> RunLock:
    import fcntl

    path = folder / LOCK_NAME
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise RunError(f"{folder}: cannot write in the run folder ({exc.strerror or exc})", UNUSABLE) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise _in_use(folder, holder) from None
        if _same_file(fd, path):  # else the holder released (and unlinked) it between our open and flock
            break
        os.close(fd)
    previous = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()  # empty: a lock file this call created
    lock = RunLock(key, fd)
    if previous:
        lock.notes.append(f"took over the lock of {folder}: {previous}, which is no longer running")
    os.ftruncate(fd, 0)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    os.pwrite(fd, f"PID {os.getpid()} on {socket.gethostname()} since {now}\n".encode(), 0)
    return lock


def refuse_if_in_use(folder: Path) -> None:
    """A :class:`RunError` when a live process holds ``folder``'s lock; takes nothing (the CLI asks this before it
    replaces an earlier run's files, and ``train`` claims the folder itself)."""
    import fcntl

    if _HELD.get(Path(os.path.abspath(folder))) is not None:
        return
    try:
        fd = os.open(folder / LOCK_NAME, os.O_RDONLY)
    except OSError:
        return  # no lock file: no run is going on there
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _in_use(folder, _read_holder(fd)) from None
    finally:
        os.close(fd)


def _in_use(folder: Path, holder: str) -> RunError:
    return RunError(
        f"{folder}: another npc train is running in this folder ({holder}); wait for it to finish, or choose "
        "another --out",
        UNUSABLE,
    )


def _read_holder(fd: int) -> str:
    text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    return text or "PID unknown"


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def remove_stale_temp_files(folder: Path) -> int:
    """The ``.NAME.XXXX.tmp`` files of atomic writes that never finished (the process was killed mid-save)."""
    removed = 0
    for path in folder.glob(".*.tmp"):
        if path.is_file():
            path.unlink(missing_ok=True)
            removed += 1
    return removed


# --- step checkpoints ------------------------------------------------------------------------------------------


class CheckpointClock:
    """``training.checkpoint_every: {steps: N, minutes: M}`` (either or both; null: at epoch ends only)."""

    def __init__(self, every: dict[str, Any] | None) -> None:
        every = every or {}
        self.steps: int | None = every.get("steps")
        self.seconds: float | None = every["minutes"] * 60 if every.get("minutes") else None
        self.last = time.monotonic()

    def due(self, global_step: int) -> bool:
        """After ``global_step`` optimiser steps (counted over the whole run): is a mid-epoch save due?"""
        if self.steps and global_step % self.steps == 0:
            return True
        return self.seconds is not None and time.monotonic() - self.last >= self.seconds

    def saved(self) -> None:
        self.last = time.monotonic()


# --- non-finite losses -----------------------------------------------------------------------------------------


def nonfinite_message(
    total: float, parts: dict[str, float], epoch: int, step: int, last_good: str, *, elsewhere: bool = False
) -> str:
    """``epoch`` and ``step`` 1-based; ``parts`` the unweighted loss terms; ``last_good`` the state to go back to;
    ``elsewhere``: this process's loss was finite, another torchrun process's was not."""
    if elsewhere:
        what = f"the loss became non-finite on another process at epoch {epoch}, step {step}"
    else:
        bad = [f"{name} = {value}" for name, value in parts.items() if not math.isfinite(value)]
        terms = ", ".join(bad) if bad else f"the weighted sum = {total} (every term is finite: check the weights)"
        what = f"the loss became {total} at epoch {epoch}, step {step} ({terms})"
    return (
        f"{what}; last good checkpoint: {last_good}. Lower training.optimizer.lr or set training.max_norm "
        "(training.on_nonfinite: skip skips such steps)"
    )
