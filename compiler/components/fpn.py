"""FPN neck, as NetsPresso Trainer 1.4.1 builds it (``models/necks/experimental/fpn.py``, after mmdetection).

Peer behaviour reproduced here:
- Every output has the channels of the *last* input feature (``in_channels[-1]``), even when ``end_level``
  leaves that feature out. Lateral and output convs are plain biased Conv2d (no norm, no activation).
- Extra levels (``num_outs`` beyond the used inputs) are a stride-2 max pool with kernel 1 when
  ``add_extra_convs`` is false, else stride-2 3x3 convs appended to ``fpn_convs``; ``true`` means ``on_input``.
- ``relu_before_extra_convs`` applies a ReLU before every extra conv but the first.
- ``end_level`` other than -1 / the last index allows no extra level: ``num_outs`` must equal the level count.
"""

from __future__ import annotations

from typing import Any

from .._registry import BuildError, Built, Component, Feature, register
from ._common import param

EXTRA_SOURCES = ("on_input", "on_lateral", "on_output")


@register
class FPN(Component):
    """Feature Pyramid Network neck: top-down fusion, optional extra coarser levels."""

    kind = "neck"
    name = "fpn"
    tasks = ("segmentation", "detection", "pose_estimation")
    template = "fpn.py.jinja"
    params = {
        "num_outs": param(
            "integer",
            4,
            "Number of output feature maps; at least the number of input levels "
            "used. Levels beyond them are added on top (see add_extra_convs).",
            minimum=1,
        ),
        "start_level": param("integer", 0, "Index of the first input feature map used.", minimum=0),
        "end_level": param(
            "integer",
            -1,
            "Index of the last input feature map used; -1 = the last one. Any other "
            "value allows no extra levels (num_outs must equal the number of levels used).",
            minimum=-1,
        ),
        "add_extra_convs": param(
            ["boolean", "string", "null"],
            False,
            "How extra levels are made: false/null = "
            "stride-2 max pooling of the last output; a stride-2 3x3 conv on `on_input` (the "
            "last input used; also `true`), `on_lateral` or `on_output` for the first extra "
            "level, then on the previous extra level.",
            enum=[False, True, *EXTRA_SOURCES, None],
        ),
        "relu_before_extra_convs": param("boolean", False, "Apply a ReLU before each extra conv after the first."),
    }

    @classmethod
    def build(
        cls, params: dict[str, Any], stage_params: list | None, inputs: tuple[Feature, ...], *, task: str
    ) -> Built:
        num_ins, num_outs = len(inputs), params["num_outs"]
        start_level, end_level = params["start_level"], params["end_level"]
        if end_level in (-1, num_ins - 1):
            end_level = num_ins - 1
            if num_outs < num_ins - start_level:
                raise BuildError(
                    "/params/num_outs",
                    f"num_outs ({num_outs}) must be at least the number of input levels used ({num_ins - start_level})",
                )
        else:
            if end_level >= num_ins:
                raise BuildError(
                    "/params/end_level", f"end_level {end_level} out of range: the neck gets {num_ins} feature maps"
                )
            if num_outs != end_level - start_level + 1:
                raise BuildError(
                    "/params/num_outs",
                    f"with end_level {end_level}, num_outs must be "
                    f"{end_level - start_level + 1} (end_level - start_level + 1): extra levels need "
                    "end_level -1",
                )
        if start_level > end_level:
            raise BuildError(
                "/params/start_level", f"start_level {start_level} is past the last level used ({end_level})"
            )

        out_channels = inputs[-1].channels  # the peer's choice, whatever end_level is
        extra_levels = num_outs - (end_level - start_level + 1)
        source = params["add_extra_convs"]
        source = "on_input" if source is True else source or None
        outputs = [Feature(out_channels, feature.stride) for feature in inputs[start_level : end_level + 1]]
        for _ in range(extra_levels):
            outputs.append(Feature(out_channels, outputs[-1].stride * 2))
        extra_convs = extra_levels > 0 and source is not None
        kwargs: dict[str, Any] = {"in_channels": [feature.channels for feature in inputs], "out_channels": out_channels}
        if extra_levels:
            kwargs["num_outs"] = num_outs
        kwargs.update(start_level=start_level, end_level=end_level)
        return Built(
            class_name="FPN",
            kwargs=kwargs,
            outputs=tuple(outputs),
            template_vars={
                "extra_levels": extra_levels > 0,
                "extra_pool": extra_levels > 0 and source is None,
                "extra_convs": extra_convs,
                "extra_from_input": extra_convs and source == "on_input",
                "extra_from_lateral": extra_convs and source == "on_lateral",
                "relu_before_extra_convs": extra_convs and bool(params["relu_before_extra_convs"]),
            },
        )
