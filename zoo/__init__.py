"""The model zoo: npc's own specs of the 48 NetsPresso Trainer 1.4.1 model configs, shipped inside the package.

A zoo name (the peer's config file stem, e.g. ``yolox-s-detection``) works wherever a spec path does. A path that
exists always wins, so a local file called like a zoo model is never shadowed. The files are what ``npc fmt``
writes for the peer's configs, and tests assert that each still compiles to exactly the peer's model.
Torch-free: the spec loader and the CLI resolve names through :func:`resolve`.
"""

from __future__ import annotations

import difflib
from functools import cache
from pathlib import Path

from ..errors import UNUSABLE, NpcError

__all__ = ["ZOO_DIR", "ZooError", "names", "path_of", "resolve"]

ZOO_DIR = Path(__file__).resolve().parent
SUFFIX = ".yaml"


class ZooError(NpcError, LookupError):
    """``name`` is neither a file nor a zoo model; the message lists the closest zoo names."""

    problem = UNUSABLE

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(not_found_message(name))


@cache
def names() -> tuple[str, ...]:
    """Every zoo model name, sorted."""
    return tuple(sorted(p.name.removesuffix(SUFFIX) for p in ZOO_DIR.glob(f"*{SUFFIX}")))


def path_of(name: str) -> Path:
    """The shipped spec file of zoo model ``name``; :class:`ZooError` for an unknown name."""
    if name not in names():
        raise ZooError(name)
    return ZOO_DIR / f"{name}{SUFFIX}"


def is_zoo_name(text: str) -> bool:
    return text in names()


def looks_like_name(text: str) -> bool:
    """A bare word (no folder, no file suffix) that the user may have meant as a zoo name."""
    path = Path(text)
    return len(path.parts) == 1 and path.suffix.lower() not in (".yaml", ".yml", ".json", ".npc", ".py")


def resolve(text: str | Path) -> Path:
    """``text`` as a path when it exists (or does not look like a name), else the zoo spec it names.

    Raises :class:`ZooError` for a bare name that is neither a file nor a zoo model, so the caller can say
    "did you mean" instead of "no such file".
    """
    path = Path(text)
    if path.exists() or not looks_like_name(str(text)):
        return path
    return path_of(str(text))


def not_found_message(name: str) -> str:
    close = difflib.get_close_matches(name, names(), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else "; `npc list --zoo` lists them"
    return f"no such file, and no zoo model is called {name!r}{hint}"
