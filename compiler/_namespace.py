"""Python identifiers for emitted code, made only from validated names (after torch.fx's ``_Namespace``).

Invariants: every name returned is a valid identifier, never a keyword, a soft keyword or a builtin, and unique
within its namespace. Anything else in a spec name (quotes, newlines, operators) is dropped, never escaped.
"""

from __future__ import annotations

import builtins
import keyword
import re

__all__ = ["Namespace", "class_name"]

_RESERVED = set(keyword.kwlist) | set(keyword.softkwlist) | set(dir(builtins)) | {"torch", "nn", "F", "math"}


def class_name(text: str, *, fallback: str = "Model") -> str:
    """``"mobilenet_v3-small"`` → ``"MobilenetV3Small"``; digits first or nothing usable → prefixed/fallback."""
    words = [w for w in re.split(r"[^0-9A-Za-z]+", text) if w]
    name = "".join(w[:1].upper() + w[1:] for w in words)
    if not name:
        return fallback
    if name[0].isdigit():
        name = fallback + name
    return name


class Namespace:
    """Hands out unique, safe identifiers; a clash gets a numeric suffix (``Resnet18Model``, ``..._2``)."""

    def __init__(self, taken: set[str] | None = None) -> None:
        self._taken = set(_RESERVED) | set(taken or ())

    def create(self, candidate: str, *, suffix: str = "") -> str:
        name = candidate if candidate.isidentifier() else class_name(candidate)
        if name in self._taken and suffix:
            name += suffix
        base, index = name, 2
        while name in self._taken or keyword.iskeyword(name):
            name, index = f"{base}_{index}", index + 1
        self._taken.add(name)
        return name
