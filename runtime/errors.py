"""The runtime's user-facing errors: a message naming the offending file, and what kind of problem it is.

Spec and config problems are raised as :class:`npc.spec.SpecError` (located diagnostics); everything the user can
fix that has no position in a spec (a missing data folder, a corrupt image, a checkpoint that does not fit the
model) is a :class:`RunError`. The CLI prints either without a traceback and picks the exit code from the
:class:`~npc.errors.Problem` (``npc/cli/exits.py``); nothing here knows about exit codes.
"""

from __future__ import annotations

from ..errors import INVALID, UNUSABLE, NpcError, Problem

__all__ = ["INVALID", "UNUSABLE", "CheckpointError", "DataError", "Problem", "RunError"]


class RunError(NpcError):
    """A problem the user can fix; ``str(error)`` is the whole message. INVALID unless the raise site says
    UNUSABLE (a file or folder that cannot be found or read, a bad command line)."""


class DataError(RunError):
    """Bad or missing training data; the message names the file or folder."""


class CheckpointError(RunError):
    """A weights or training-state file that is missing, unreadable, or does not fit the model."""
