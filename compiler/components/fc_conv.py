"""FC-Conv classification head, as NetsPresso Trainer 1.4.1 builds it
(``models/heads/classification/core/fc.py``, class ``FCConv``).

Like ``fc`` but made of 1x1 convolutions: the backbone's pooled (B, C) vector is viewed as a (B, C, 1, 1) map,
goes through ``num_layers - 1`` conv-norm-activation layers (no bias), then Dropout and a biased 1x1 conv
classifier, all in one ``classifier`` Sequential; the logits are flattened back to (B, num_classes). Every conv
is the peer's ConvLayer, so its keys are ``classifier.<i>.block.conv.*`` (and ``.block.norm.*`` for the hidden
layers); with one layer the classifier's keys are ``classifier.1.block.conv.*`` (index 0 is the Dropout).
The peer has no docs page for it. Null ``act_type`` / ``norm_type`` mean relu / batch_norm, as in the peer's
ConvLayer.

Deliberate difference: ``norm_type: instance_norm`` with hidden layers is rejected. The peer builds it, but an
instance norm over the 1x1 map fails on the first forward pass ("Expected more than 1 spatial element").
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .._registry import NUM_CLASSES, BuildError, Built, Component, Feature, Issue, register
from ._common import ACTIVATIONS, NORMALIZATIONS, act_param, norm_param
from ._zoo_schema import integer, probability


@register
class FCConv(Component):
    """Classification head of 1x1 convolutions: optional conv-norm-activation layers, dropout, classifier."""

    kind = "head"
    name = "fc_conv"
    tasks = ("classification",)
    template = "fc_conv.py.jinja"
    params = {
        "num_layers": integer(1, "Number of 1x1 conv layers, the classifier included (1 = classifier only)."),
        "intermediate_channels": integer(
            None, "Width of the hidden layers; required when num_layers > 1.", nullable=True
        ),
        "act_type": act_param("relu", "Activation of the hidden layers; null means relu.", nullable=True),
        "norm_type": norm_param(
            "batch_norm", "Normalisation of the hidden layers; null means batch_norm.", nullable=True
        ),
        "dropout_prob": probability(0.0, "Dropout probability before the classifier."),
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
            kwargs["norm_layer"] = NORMALIZATIONS[params["norm_type"]]
            kwargs["act_layer"] = ACTIVATIONS[params["act_type"]]
        kwargs["dropout_prob"] = float(params["dropout_prob"])
        return Built(
            class_name="FCConv",
            kwargs=kwargs,
            outputs=(),
            template_vars={"hidden_layers": hidden_layers},
            blocks=("conv_layer",),
            output_keys=("pred",),
        )

    @classmethod
    def check(cls, params: dict[str, Any], stage_params: list | None, task: str) -> Iterator[Issue]:
        yield from _issues(cls.resolve_params(params))


def _issues(params: dict[str, Any]) -> Iterator[Issue]:
    if params["num_layers"] <= 1:
        return
    if params["intermediate_channels"] is None:
        yield Issue("/params/intermediate_channels", "required when num_layers > 1 (width of the hidden layers)")
    if params["norm_type"] == "instance_norm":
        yield Issue(
            "/params/norm_type",
            "instance_norm cannot normalise the pooled 1x1 feature map (the forward pass would fail); use batch_norm",
        )
