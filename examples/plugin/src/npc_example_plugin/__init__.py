"""npc plugin: ``tinyconv``, a plain stack of strided conv-norm-activation stages (an example for plugin authors)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from npc.plugin import ACTIVATIONS, BuildError, Built, Component, Feature, act_param, register


@register
class TinyConv(Component):
    """Tiny plain-conv backbone: one stride-2 3x3 conv-BN-activation layer per stage (plugin example)."""

    kind = "backbone"
    name = "tinyconv"
    tasks = ("classification", "segmentation", "detection")
    template = "npc_example_tinyconv.py.jinja"  # prefixed: plugin templates may not shadow npc's own
    template_dir = Path(__file__).parent / "templates"
    params = {"act_type": act_param("relu", "Activation after every conv.")}
    stage_params = {
        "type": "object",
        "description": "One stage: a stride-2 3x3 conv to `channels`.",
        "properties": {"channels": {"type": "integer", "minimum": 1, "description": "Output width of the stage."}},
        "required": ["channels"],
        "additionalProperties": False,
    }

    @classmethod
    def build(
        cls, params: dict[str, Any], stage_params: list | None, inputs: tuple[Feature, ...], *, task: str
    ) -> Built:
        if not stage_params:
            raise BuildError("/stage_params", "tinyconv needs at least one stage")
        widths = [stage["channels"] for stage in stage_params]
        stages = tuple(Feature(width, 2 ** (index + 1)) for index, width in enumerate(widths))
        pooled = task == "classification"
        selected = (len(stages) - 1,) if pooled else tuple(range(len(stages)))
        return Built(
            class_name="TinyConv",
            kwargs={"channels": widths, "act_layer": ACTIVATIONS[params["act_type"]]},
            outputs=tuple(stages[i] for i in selected),
            stages=stages,
            selected=selected,
            template_vars={"global_pool": pooled},
        )
