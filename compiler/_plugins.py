"""Third-party component families, found through the ``npc.components`` entry-point group.

A plugin package declares, in its ``pyproject.toml``::

    [project.entry-points."npc.components"]
    my_families = "my_package.npc_components"

Loading the entry point imports that module, whose :class:`~._registry.Component` subclasses register themselves
with ``@register``, exactly as the built-ins do; each gets ``origin`` = the distribution's name (shown by
``npc list``). From then on the schema, ``npc validate``, editors, ``npc compile`` and the docs see them. A plugin
is checked as it loads, and any problem is a :class:`PluginError` naming the package: a name already taken, a
missing piece (docstring, param descriptions, ``build``, template file), or a template name that would shadow
another. Plugins load in (distribution, entry point) order, so registration is deterministic.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

from ..errors import UNUSABLE, NpcError
from . import _registry as registry

__all__ = ["GROUP", "PluginError", "load_plugins"]

GROUP = "npc.components"
BUILTIN_TEMPLATES = Path(__file__).parent / "templates"


class PluginError(NpcError):
    """A plugin that cannot be used; ``package`` is its distribution name. Its author can act on the message."""

    problem = UNUSABLE

    def __init__(self, package: str, message: str) -> None:
        self.package = package
        super().__init__(f"plugin {package!r}: {message}")


def _package(entry_point: EntryPoint) -> str:
    return entry_point.dist.name if entry_point.dist is not None else entry_point.value


def load_plugins() -> list[type[registry.Component]]:
    """Load every installed plugin; returns the families they registered, in load order."""
    added: list[type[registry.Component]] = []
    templates: dict[str, str] = {}  # template file name → package, to refuse shadowing
    for entry_point in sorted(entry_points(group=GROUP), key=lambda e: (_package(e), e.name)):
        package = _package(entry_point)
        before = {cls for kind in registry.KINDS for cls in registry.registered(kind)}
        with registry.registering_for(package):
            try:
                entry_point.load()
            except ValueError as exc:  # register(): a name already taken, or an unknown kind
                raise PluginError(package, str(exc)) from None
            except Exception as exc:  # noqa: BLE001 - any import failure is the plugin's: name it, no traceback
                raise PluginError(package, f"cannot import {entry_point.value}: {type(exc).__name__}: {exc}") from None
        new = [cls for kind in registry.KINDS for cls in registry.registered(kind) if cls not in before]
        if not new:
            raise PluginError(package, f"entry point {entry_point.name!r} ({entry_point.value}) registers no component")
        for cls in new:
            for problem in _missing_pieces(cls, templates):
                raise PluginError(package, f"{cls.kind} {cls.name!r}: {problem}")
            if cls.template:
                templates[cls.template] = package
        added += new
    return added


def _missing_pieces(cls: type[registry.Component], templates: dict[str, str]):
    """What a family needs before npc can validate, document and (if it has a template) compile it."""
    if not cls.summary():
        yield "has no docstring (its first line is the summary in `npc list` and docs/models.md)"
    if not cls.tasks or not set(cls.tasks) <= set(registry.TASKS):
        yield f"tasks must be a non-empty subset of {registry.TASKS}, not {cls.tasks!r}"
    for name, schema in cls.params.items():
        if not isinstance(schema, dict) or "description" not in schema:
            yield f"param {name!r} has no JSON Schema description"
    if cls.template is None:
        return
    if cls.kind != "loss" and cls.build.__func__ is registry.Component.build.__func__:
        yield f"sets template {cls.template!r} but does not implement build()"
    if cls.template_dir is None or not (Path(cls.template_dir) / cls.template).is_file():
        yield f"template {cls.template!r} not found in template_dir {cls.template_dir!s}"
    elif (BUILTIN_TEMPLATES / cls.template).exists():
        yield f"template {cls.template!r} would shadow npc's own; prefix it with the package name"
    elif cls.template in templates:
        yield f"template {cls.template!r} is also provided by plugin {templates[cls.template]!r}"
