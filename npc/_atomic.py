"""The one atomic file writer of the project: every file npc writes (compiled modules, formatted specs, pictures,
checkpoints, exports) goes through :func:`write_atomic`.

A reader never sees a half-written file and a failed write leaves the previous file as it was: the data goes to a
temp file in the same folder (``.NAME.XXXX.tmp``, so a rename is atomic), is flushed to disk, gets the mode a plain
``open(path, "w")`` would have given (the umask honoured; an existing file keeps its own mode), and is renamed over
``path``. Torch-free, so the compiler and the CLI use it as the runtime does.
"""

from __future__ import annotations

import os
import stat
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

__all__ = ["AtomicWriteError", "TEMP_SUFFIX", "new_file_mode", "write_atomic"]

from .errors import UNUSABLE, NpcError

TEMP_SUFFIX = ".tmp"  # what a stale temp file left by a killed process ends with (runs clean these up)
_UMASK_LOCK = threading.Lock()


class AtomicWriteError(NpcError, OSError):
    """``path`` could not be written (disk full, size limit, permissions); the previous file, if any, is intact."""

    problem = UNUSABLE

    def __init__(self, path: Path, cause: OSError) -> None:
        self.path, self.cause = path, cause
        kept = "the previous file is unchanged" if path.exists() else "nothing was written"
        OSError.__init__(self, cause.errno, f"{path}: could not be written ({cause.strerror or cause}); {kept}")
        self.message = self.strerror

    def __str__(self) -> str:
        return self.strerror


def new_file_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file: 0o666 less the process umask (read without changing it where
    Linux reports it, since os.umask() can only be read by setting it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return 0o666 & ~mask


def write_atomic(path: str | Path, data: str | bytes | Callable[[str], None], *, keep_suffix: bool = False) -> None:
    """Write ``data`` (text as UTF-8 with ``\\n`` line ends, bytes as they are, or a callable that writes the temp
    path it is given, e.g. ``torch.save``) to ``path`` atomically. ``keep_suffix``: the temp file ends with
    ``path``'s suffix too, for writers that insist on one (torch.export's ``.pt2``).

    Raises :class:`AtomicWriteError` naming the file and the cause; the temp file is removed in every case.
    """
    path = Path(path)
    suffix = TEMP_SUFFIX + (path.suffix if keep_suffix else "")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    except OSError as exc:
        raise AtomicWriteError(path, exc) from None
    try:
        _fill(fd, tmp, data)
        os.chmod(tmp, _mode_for(path))
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise AtomicWriteError(path, exc) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fill(fd: int, tmp: str, data: str | bytes | Callable[[str], None]) -> None:
    if callable(data):
        os.close(fd)
        data(tmp)
        fd = os.open(tmp, os.O_RDONLY)
    else:
        payload = data.encode("utf-8") if isinstance(data, str) else data
        view = memoryview(payload)
        while view:
            view = view[os.write(fd, view) :]
    try:
        os.fsync(fd)  # on disk before the rename makes it visible
    finally:
        os.close(fd)


def _mode_for(path: Path) -> int:
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return new_file_mode()
