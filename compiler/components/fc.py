"""FC classification head, as NetsPresso Trainer 1.4.1 builds it (``models/heads/classification/core/fc.py``).

The head reads the backbone's last output, which for classification is already pooled to (B, C). Its layers are
``num_layers - 1`` times (Linear, activation), then Dropout and the final Linear, all in one ``classifier``
Sequential, so with one layer the classifier's keys are ``classifier.1.*`` (index 0 is the Dropout).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .._registry import NUM_CLASSES, BuildError, Built, Component, Feature, Issue, register
from ._common import ACTIVATIONS, act_param, param


@register
class FC(Component):
    """Fully connected classification head: optional hidden layers, dropout, then the classifier."""

    kind = "head"
    name = "fc"
    tasks = ("classification",)
    template = "fc.py.jinja"
    params = {
        "num_layers": param(
            "integer", 1, "Number of linear layers, the classifier included (1 = classifier only).", minimum=1
        ),
        "intermediate_channels": param(
            ["integer", "null"], None, "Width of the hidden layers; required when num_layers > 1.", minimum=1
        ),
        "act_type": act_param(None, "Activation after each hidden layer; required when num_layers > 1."),
        "dropout_prob": param("number", 0.0, "Dropout probability before the classifier.", minimum=0, maximum=1),
    }

    @classmethod
    def build(
        cls, params: dict[str, Any], stage_params: list | None, inputs: tuple[Feature, ...], *, task: str
    ) -> Built:
        for issue in _issues(params):
            raise BuildError(issue.pointer, issue.message)
        hidden_layers = params["num_layers"] > 1
        kwargs: dict[str, Any] = {"in_channels": inputs[-1].channels, "num_classes": NUM_CLASSES}
        if hidden_layers:
            kwargs["num_layers"] = params["num_layers"]
            kwargs["intermediate_channels"] = params["intermediate_channels"]
            kwargs["act_layer"] = ACTIVATIONS[params["act_type"]]
        kwargs["dropout_prob"] = float(params["dropout_prob"])
        return Built(
            class_name="FC",
            kwargs=kwargs,
            outputs=(),
            template_vars={"hidden_layers": hidden_layers},
            output_keys=("pred",),
        )

    @classmethod
    def check(cls, params: dict[str, Any], stage_params: list | None, task: str) -> Iterator[Issue]:
        yield from _issues(cls.resolve_params(params))


def _issues(params: dict[str, Any]) -> Iterator[Issue]:
    if params.get("num_layers", 1) > 1:
        for key in ("intermediate_channels", "act_type"):
            if params.get(key) is None:
                yield Issue(f"/params/{key}", f"{key} is required when num_layers > 1")
