"""The public API for plugin authors: everything a package needs to add a backbone, neck, head, full model or loss.

A plugin imports only this module (never ``npc.compiler._registry`` or other underscore modules, whose names may
change). docs/plugins.md describes the contract; ``examples/plugin/`` is a complete, installable example.
"""

from __future__ import annotations

from .compiler._registry import (
    DENSE_TASKS,
    NUM_CLASSES,
    TASKS,
    BuildError,
    Built,
    Code,
    Component,
    Feature,
    Issue,
    register,
)
from .compiler.components._common import ACTIVATIONS, NORMALIZATIONS, act_param, norm_param, param

__all__ = [
    "ACTIVATIONS",
    "DENSE_TASKS",
    "NORMALIZATIONS",
    "NUM_CLASSES",
    "TASKS",
    "BuildError",
    "Built",
    "Code",
    "Component",
    "Feature",
    "Issue",
    "act_param",
    "norm_param",
    "param",
    "register",
]
