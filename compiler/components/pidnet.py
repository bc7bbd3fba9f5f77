"""PIDNet full segmentation model family, as NetsPresso Trainer 1.4.1 builds it
(``models/full/experimental/pidnet.py``).

Its parameters sit beside ``name`` under ``architecture.full``. Three branches (proportional: detail, integral:
context, derivative: boundaries) are fused by a boundary-attention module; ``m == 2`` selects the light variant
(PAPPM context module, light fusion), other values the full one (DAPPM, Bag). The defaults are PIDNet-S.

Peer behaviour reproduced here (each one changes the state_dict or the outputs):
- The two stem convs have a bias as well as a BatchNorm; the context module and the fusion are plain
  ``nn.Sequential`` layers and the heads plain BatchNorm/conv attributes (keys ``spp.scale1.1.weight``,
  ``dfm.conv_p.0.weight``, ``seghead_p.bn1.weight``), not ConvLayers.
- In a residual layer the last block ends without ReLU, and so does a first Bottleneck (expansion 2), while a
  first BasicBlock keeps its ReLU even when it is the only block; ``layer3_d`` (and ``layer4_d`` in the full
  variant) is one bare block without the ReLU, so its keys have no index.
- Both auxiliary heads (``seghead_p``, ``seghead_d``) always exist, so they are in the state_dict, and the model
  returns ``{"extra_p", "extra_d", "pred"}`` in eval mode too, all at 1/8 of the input resolution (no upsampling).
- The auxiliary heads read the P and D features after a ReLU: the peer's in-place ReLU before ``layer4_`` and
  ``layer5_d`` also rectifies the tensors it kept for those heads.

Deliberate differences:
- Under ``torch.fx``/``torch.jit`` tracing the peer returns ``None`` for the auxiliary outputs; the compiled model
  always computes them (drop them after export if unwanted).
"""

from __future__ import annotations

from typing import Any

from .._registry import NUM_CLASSES, Built, Component, Feature, register
from ._zoo_schema import integer

LIGHT_M = 2  # the peer picks the light variant (PAPPM, light fusion) exactly for m == 2


@register
class PIDNet(Component):
    """PIDNet real-time segmentation model with proportional, integral and derivative branches."""

    kind = "full"
    name = "pidnet"
    tasks = ("segmentation",)
    inline_params = True
    template = "pidnet.py.jinja"
    params = {
        "m": integer(
            2,
            "Residual blocks in the first two stages and in the detail branch (2 selects the light "
            "PAPPM/Light-Bag variant).",
        ),
        "n": integer(3, "Residual blocks in the third and fourth stages of the context branch."),
        "channels": integer(32, "Base width of the network (S: 32, M and L: 64)."),
        "ppm_channels": integer(96, "Width of the pyramid pooling module."),
        "head_channels": integer(128, "Width of the segmentation heads."),
    }

    @classmethod
    def build(
        cls, params: dict[str, Any], stage_params: list | None, inputs: tuple[Feature, ...], *, task: str
    ) -> Built:
        return Built(
            class_name="PIDNet",
            kwargs={
                "num_classes": NUM_CLASSES,
                "m": params["m"],
                "n": params["n"],
                "channels": params["channels"],
                "ppm_channels": params["ppm_channels"],
                "head_channels": params["head_channels"],
            },
            outputs=(),
            template_vars={"light": params["m"] == LIGHT_M},
            blocks=("conv_layer",),
            output_keys=("extra_p", "extra_d", "pred"),
        )
