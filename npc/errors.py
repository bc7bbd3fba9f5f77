"""The errors a user can act on, shared by every layer. Library code raises them; only the CLI turns them into
exit codes and messages (``npc/cli/exits.py``), so a library caller sees a typed exception, never a number.

Each error says what kind of problem it is, not how a process should end:

* :attr:`Problem.INVALID` — the input was read but is wrong (an invalid spec, labels outside the class list,
  weights that do not fit the model, an export whose accuracy drop is too large). The fix is in its content.
* :attr:`Problem.UNUSABLE` — the input cannot be used at all: a file or folder that is missing or unreadable, a
  command line asking for something impossible, an optional dependency that is not installed.
"""

from __future__ import annotations

from enum import Enum

__all__ = ["INVALID", "UNUSABLE", "NpcError", "Problem"]


class Problem(Enum):
    INVALID = "invalid"
    UNUSABLE = "unusable"


INVALID, UNUSABLE = Problem.INVALID, Problem.UNUSABLE


class NpcError(Exception):
    """Base of npc's user-facing errors: ``message`` is the whole story (no traceback is shown), ``problem`` its
    kind. Subclasses set a default ``problem``; a raise site may say otherwise."""

    problem: Problem = Problem.INVALID

    def __init__(self, message: str, problem: Problem | None = None) -> None:
        self.message = message
        if problem is not None:
            if not isinstance(problem, Problem):  # an exit code passed here is a bug at the raise site
                raise TypeError(f"problem must be a Problem, not {problem!r}")
            self.problem = problem
        super().__init__(message)
