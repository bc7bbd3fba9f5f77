"""The runtime's user-facing errors: a message naming the offending file, and the exit code the CLI returns.

Spec and config problems are raised as :class:`npc.spec.SpecError` (located diagnostics); everything the user can
fix that has no position in a spec (a missing data folder, a corrupt image, a checkpoint that does not fit the
model) is a :class:`RunError`. The CLI prints either without a traceback.
"""

from __future__ import annotations

EXIT_INVALID = 1  # the input exists but is wrong (bad labels, a checkpoint that does not fit, ...)
EXIT_USAGE = 2  # a file or folder that cannot be found or read, or a bad command line


class RunError(Exception):
    """A problem the user can fix; ``str(error)`` is the whole message, ``exit_code`` is 1 or 2."""

    def __init__(self, message: str, exit_code: int = EXIT_INVALID) -> None:
        self.message, self.exit_code = message, exit_code
        super().__init__(message)


class DataError(RunError):
    """Bad or missing training data; the message names the file or folder."""

    def __init__(self, message: str, exit_code: int = EXIT_INVALID) -> None:
        super().__init__(message, exit_code)


class CheckpointError(RunError):
    """A weights or training-state file that is missing, unreadable, or does not fit the model."""

    def __init__(self, message: str, exit_code: int = EXIT_INVALID) -> None:
        super().__init__(message, exit_code)
