"""The component registry: the single source of truth for every backbone, neck, head, full model and loss.

Each family module in ``compiler/components/`` defines a :class:`Component` subclass and decorates it with
:func:`register`. The JSON Schema (``npc schema``), ``npc list``, ``docs/models.md`` and the tests' parametrisation
are all derived from what is registered here, so a family is documented, validated and tested the moment it exists.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

__all__ = [
    "KINDS",
    "NUM_CLASSES",
    "BuildError",
    "Built",
    "Code",
    "TASKS",
    "Component",
    "Decoder",
    "Feature",
    "Issue",
    "UnknownComponentError",
    "closest",
    "get",
    "list_components",
    "register",
]

KINDS = ("backbone", "neck", "head", "full", "loss")
TASKS = ("classification", "segmentation", "detection", "pose_estimation")
# The tasks that need feature maps rather than one vector: what necks serve.
DENSE_TASKS = ("segmentation", "detection", "pose_estimation")


@dataclass(frozen=True)
class Feature:
    """What flows along one edge of the component graph: a feature map's channels and its stride w.r.t. the input."""

    channels: int
    stride: int

    def label(self) -> str:
        return f"{self.channels}ch /{self.stride}"


class Code(str):
    """Trusted Python source for a constructor argument, e.g. ``Code("nn.BatchNorm2d")``.

    Only built from fixed tables in the family modules (never from spec text): spec values are validated against
    an enum first, then looked up. Everything else passed to the emitter is rendered as a literal.
    """


# Stands for the model's ``num_classes`` constructor argument in a component's kwargs.
NUM_CLASSES = Code("num_classes")


@dataclass(frozen=True)
class Built:
    """What a compilable family contributes to the emitted module for one graph node."""

    class_name: str  # class defined by the family's template and instantiated by the top-level model
    kwargs: dict[str, Any]  # constructor arguments: plain literals, Code references or NUM_CLASSES
    outputs: tuple[Feature, ...]  # features passed on along the graph's outgoing edge(s)
    stages: tuple[Feature, ...] = ()  # backbones: every stage's output (one graph node per stage)
    selected: tuple[int, ...] = ()  # backbones: indices of the stages handed on; outputs == stages[i] for these
    template_vars: dict[str, Any] = field(default_factory=dict)  # what the template must emit (no dead code)
    blocks: tuple[str, ...] = ()  # shared building blocks (templates/block_<name>.py.jinja) the template uses
    output_keys: tuple[str, ...] = ()  # heads/full: keys of the returned dict, as the peer names them


@dataclass(frozen=True)
class Decoder:
    """A detection head's decoder in the emitted module: its raw outputs → candidate boxes, scores and labels."""

    class_name: str  # defined by the head's postprocessor_template
    kwargs: dict[str, Any]  # spec ``postprocessor.params`` it reads, with the peer's defaults for this head
    fixed: dict[str, Any] = field(default_factory=dict)  # arguments set by the head itself, emitted as literals
    nms: bool = True  # False: the head's detections are already distinct (RT-DETR's queries); NMS is off by default


@dataclass(frozen=True)
class Issue:
    """A semantic problem found by a component's own check; ``pointer`` is relative to the component's spec node."""

    pointer: str
    message: str


class Component:
    """Base class of every registered family. Subclasses set the class attributes and override what they support.

    ``params`` maps each parameter to a JSON Schema fragment that carries ``default`` and ``description``;
    ``stage_params`` is the schema of *one* entry of ``stage_params`` (backbones only).
    """

    kind: ClassVar[str]
    name: ClassVar[str]
    tasks: ClassVar[tuple[str, ...]] = TASKS
    params: ClassVar[dict[str, dict[str, Any]]] = {}
    stage_params: ClassVar[dict[str, Any] | None] = None
    # Full models (``architecture.full``) keep their params beside ``name``, as the peer's pidnet does.
    inline_params: ClassVar[bool] = False
    # Template in compiler/templates/ that defines this family's classes; None = validated but not yet compilable.
    template: ClassVar[str | None] = None
    # Heads that cannot work on raw backbone features name the neck they need (checked by `npc validate`).
    requires_neck: ClassVar[str | None] = None
    # Backbones: module path of stage ``index`` inside the component (e.g. "stages.{index}"), so tools can map a
    # state_dict key to the stage's spec pointer; None = keys are located at the component only.
    stage_module: ClassVar[str | None] = None
    # Where the family came from ("npc" for built-ins; a plugin's distribution name, set when it registers).
    origin: ClassVar[str] = "npc"
    # Plugins: the folder holding ``template`` (built-ins use compiler/templates/).
    template_dir: ClassVar[Path | str | None] = None
    # Detection heads: template defining the decoder of their outputs (see ``decoder``); None = the emitted module
    # has no postprocessor for this head.
    postprocessor_template: ClassVar[str | None] = None

    @classmethod
    def summary(cls) -> str:
        return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {key: schema["default"] for key, schema in cls.params.items() if "default" in schema}

    @classmethod
    def resolve_params(cls, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """Spec params with defaults filled in; ``None`` in the spec means "use the default" as in the peer."""
        resolved = cls.defaults()
        for key, value in (params or {}).items():
            if value is not None or key not in resolved:
                resolved[key] = value
        return resolved

    @classmethod
    def build(
        cls, params: dict[str, Any], stage_params: list | None, inputs: tuple[Feature, ...], *, task: str
    ) -> Built:
        """Infer this node's outputs from its inputs and say how to instantiate it. ``params`` has defaults filled,
        and :meth:`check` found no issue with them (the compiler's ``infer_features`` pass runs it first).

        Backbones get ``inputs=(Feature(3, 1),)``; necks and heads get the features on their incoming edge.
        Raise :class:`BuildError` (with a pointer relative to the component) for combinations that cannot build.
        """
        raise NotImplementedError(f"{cls.kind} {cls.name!r} is validated but cannot be compiled yet")

    @classmethod
    def decoder(cls, params: dict[str, Any], postprocessor_params: dict[str, Any]) -> Decoder:
        """Detection heads with a ``postprocessor_template``: the decoder class and its arguments, from the head's
        params (defaults filled) and the spec's ``postprocessor.params`` (only those given). A
        :class:`BuildError`'s pointer is relative to ``/model/postprocessor``."""
        raise NotImplementedError(f"{cls.kind} {cls.name!r} has no decoder")

    @classmethod
    def input_multiple(cls, params: dict[str, Any], stage_params: list | None) -> int:
        """Backbones: input height and width must be multiples of this (``params`` has defaults filled). 1 for
        convolutional families; a family that cuts feature maps into patches needs more."""
        return 1

    @classmethod
    def check(cls, params: dict[str, Any], stage_params: list | None, task: str) -> Iterator[Issue]:
        """Yield semantic issues the JSON Schema cannot express (e.g. stage list structure)."""
        return iter(())


class BuildError(ValueError):
    """A spec that passed the schema but cannot be built; ``pointer`` is relative to the component's spec node."""

    def __init__(self, pointer: str, message: str) -> None:
        self.pointer, self.message = pointer, message
        super().__init__(f"{pointer}: {message}")


class UnknownComponentError(KeyError):
    def __init__(self, kind: str, name: str) -> None:
        self.kind, self.name = kind, name
        self.choices = sorted(_REGISTRY.get(kind, {}))
        super().__init__(name)

    def __str__(self) -> str:
        hint = closest(self.name, self.choices)
        suggestion = f"; did you mean {hint!r}?" if hint else ""
        return f"unknown {self.kind} {self.name!r}{suggestion} (known: {', '.join(self.choices)})"


_REGISTRY: dict[str, dict[str, type[Component]]] = {kind: {} for kind in KINDS}


def register(cls: type[Component]) -> type[Component]:
    """Class decorator adding a family to the registry; a second family under the same name is a ValueError."""
    if cls.kind not in KINDS:
        raise ValueError(f"{cls.__name__}: kind must be one of {KINDS}, not {cls.kind!r}")
    table = _REGISTRY[cls.kind]
    if cls.name in table:
        raise ValueError(
            f"{cls.kind} {cls.name!r} is registered twice: by {table[cls.name].origin} "
            f"({table[cls.name].__module__}) and by {cls.origin} ({cls.__module__})"
        )
    if _plugin_package is not None:
        cls.origin = _plugin_package
    table[cls.name] = cls
    return cls


_plugin_package: str | None = None


@contextmanager
def registering_for(package: str) -> Iterator[None]:
    """Families registered inside this block come from plugin ``package`` (their ``origin``)."""
    global _plugin_package
    _plugin_package = package
    try:
        yield
    finally:
        _plugin_package = None


def registered(kind: str) -> list[type[Component]]:
    """What is registered under ``kind`` right now (no loading): for the plugin loader."""
    return list(_REGISTRY[kind].values())


def template_dirs() -> list[Path]:
    """Where templates are found: npc's own folder first, then each plugin family's template_dir."""
    _ensure_loaded()
    dirs = [Path(__file__).parent / "templates"]
    for cls in list_components():
        if cls.template_dir is not None and Path(cls.template_dir) not in dirs:
            dirs.append(Path(cls.template_dir))
    return dirs


def get(kind: str, name: str) -> type[Component]:
    _ensure_loaded()
    try:
        return _REGISTRY[kind][name]
    except KeyError:
        raise UnknownComponentError(kind, name) from None


def list_components(kind: str | None = None) -> list[type[Component]]:
    """Registered families sorted by (kind, name): a stable order for schema, docs and tests."""
    _ensure_loaded()
    kinds = [kind] if kind else list(KINDS)
    return [_REGISTRY[k][n] for k in kinds for n in sorted(_REGISTRY[k])]


def closest(word: str, choices: list[str] | tuple[str, ...]) -> str | None:
    matches = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None


_loaders: list[Callable[[], None]] = []


def on_first_use(loader: Callable[[], None]) -> None:
    """Run ``loader`` once, before the registry is first read. ``npc.compiler`` registers the built-in families and
    the entry-point plugins this way (as timm's models/__init__ imports each family), so that this module, which
    every family and plugin imports, imports none of them."""
    _loaders.append(loader)


def _ensure_loaded() -> None:
    while _loaders:
        _loaders.pop(0)()
