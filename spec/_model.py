"""The normalised, validated model spec the compiler and runtime consume.

Both checkpoint forms (the documented flat strings and the newer object) become one :class:`Checkpoint`;
``full: ~`` and ``full: {name: ~}`` both mean "built from backbone/neck/head".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Checkpoint", "ComponentSpec", "LossSpec", "ModelSpec", "normalise"]


@dataclass(frozen=True)
class Checkpoint:
    path: str | None = None  # weights to start from (.safetensors / .pth state dict)
    use_pretrained: bool = False
    load_head: bool = True
    optimizer_path: str | None = None  # training state to resume from
    fx_model: str | None = None  # torch.fx GraphModule trained instead of compiling the architecture
    remap_keys: tuple[tuple[str, str], ...] = ()  # (old prefix, new prefix) renames applied when weights load


@dataclass(frozen=True)
class ComponentSpec:
    kind: str
    name: str
    params: dict[str, Any]  # as written in the spec (defaults are filled by the compiler)
    stage_params: list | None
    pointer: str  # JSON pointer of the component's node in the spec file


@dataclass(frozen=True)
class LossSpec:
    criterion: str
    weight: float
    params: dict[str, Any]
    pointer: str


@dataclass(frozen=True)
class ModelSpec:
    task: str
    name: str
    checkpoint: Checkpoint
    freeze_backbone: bool
    components: tuple[ComponentSpec, ...]  # (full,) or (backbone, [neck,] head)
    losses: tuple[LossSpec, ...] = ()
    postprocessor: dict[str, Any] = field(default_factory=dict)
    path: str = "<string>"
    # Param values that read what the compiler infers (``=backbone.channels[-1]``), still as text in ``components``:
    # the compiler resolves them component by component (see ``npc.spec._expressions.LateValues``).
    late: Any = field(default=None, compare=False, repr=False)

    @property
    def is_full(self) -> bool:
        return len(self.components) == 1 and self.components[0].kind == "full"

    def component(self, kind: str) -> ComponentSpec | None:
        return next((c for c in self.components if c.kind == kind), None)


def normalise(document: dict[str, Any], path: str = "<string>", late: Any = None) -> ModelSpec:
    """A schema-valid document → :class:`ModelSpec`. Call only after :func:`validate` reported no errors.

    ``late``: the source's :class:`~._expressions.LateValues` (``Source.late``), when values read inferred ones."""
    model = document["model"]
    return ModelSpec(
        task=model["task"],
        name=model["name"],
        checkpoint=_checkpoint(model),
        freeze_backbone=bool(model.get("freeze_backbone") or False),
        components=_components(model["architecture"]),
        losses=tuple(_loss(i, loss) for i, loss in enumerate(model.get("losses") or [])),
        postprocessor=dict((model.get("postprocessor") or {}).get("params") or {}),
        path=path,
        late=late,
    )


def _checkpoint(model: dict[str, Any]) -> Checkpoint:
    raw = model.get("checkpoint")
    fx_model = model.get("fx_model_checkpoint") or model.get("fx_model_path")
    if isinstance(raw, dict):
        return Checkpoint(
            path=raw.get("path"),
            use_pretrained=bool(raw.get("use_pretrained", raw.get("path") is not None)),
            load_head=bool(raw.get("load_head", True)),
            optimizer_path=raw.get("optimizer_path") or model.get("resume_optimizer_checkpoint"),
            fx_model=fx_model,
            remap_keys=tuple((raw.get("remap_keys") or {}).items()),
        )
    # The documented flat form: a path string plus separate optimizer / head fields.
    return Checkpoint(
        path=raw,
        use_pretrained=raw is not None,
        load_head=bool(model.get("load_checkpoint_head", True)),
        optimizer_path=model.get("resume_optimizer_checkpoint"),
        fx_model=fx_model,
    )


def _components(architecture: dict[str, Any]) -> tuple[ComponentSpec, ...]:
    full = architecture.get("full")
    if isinstance(full, dict) and full.get("name") is not None:
        params = {k: v for k, v in full.items() if k != "name"}
        return (ComponentSpec("full", full["name"], params, None, "/model/architecture/full"),)
    out = []
    for kind in ("backbone", "neck", "head"):
        node = architecture.get(kind)
        if node is not None:
            out.append(
                ComponentSpec(
                    kind,
                    node["name"],
                    dict(node.get("params") or {}),
                    node.get("stage_params"),
                    f"/model/architecture/{kind}",
                )
            )
    return tuple(out)


def _loss(index: int, loss: dict[str, Any]) -> LossSpec:
    weight = loss.get("weight")
    params = {k: v for k, v in loss.items() if k not in ("criterion", "weight")}
    return LossSpec(loss["criterion"], 1.0 if weight is None else float(weight), params, f"/model/losses/{index}")
