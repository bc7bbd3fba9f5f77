"""GELAN backbone family (YOLOv9's), as NetsPresso Trainer 1.4.1 builds it (``models/backbones/experimental/gelan.py``).

Every stage is a list of rows, one per block, whose first item names the block. The emitted backbone gets the
rows as ``(block class, out_channels, *args)`` tuples and builds ``block(in_channels, out_channels, *args)``.

Peer behaviour reproduced here:
- ``elan`` rows carry ``use_identity`` but the peer's basic ELAN never reads it; the emitted row drops it.
  ``repncspelan`` rows pass it down to every RepConv, which then gets a BatchNorm-only ``rbr_identity`` branch.
- Doc vs source: the docs list conv, elan, repncspelan, aconv and adown rows; the source also builds
  ``['sppelan', out_channels, hidden_channels]`` (``hidden_channels: ~`` means ``out_channels // 2``).
- Every BatchNorm gets ``eps=1e-3, momentum=0.03`` after construction (YOLOv9's settings).
- ELAN blocks split their 1x1 conv's output with ``chunk(2)``, so an odd ``part_channels`` works: the second
  half has ``part_channels // 2`` channels and the fusing conv reads ``part_channels + 2 * (part_channels // 2)``.
- ``return_stage_idx: ~`` (or ``[]``) means the last stage only. Classification ignores it: the last stage is
  average-pooled to (B, C) for the classifier.

Deliberate differences (specs the peer mishandles are rejected instead):
- The block kind must be written lower-case (the peer lower-cases it), as in every peer example.
- ``adown`` needs an even input and output width, and ``repncspelan`` a ``part_channels`` of at least 4: the
  peer builds mismatched or zero-width convs otherwise and fails at run time.
- ``return_stage_idx`` must be increasing and in range (the peer returns features in stage order).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .._registry import Built, Code, Component, Feature, Issue, register
from ._common import ACTIVATIONS, act_param
from ._zoo_schema import field, integer, return_stage_idx_issues, return_stage_idx_param, row, rows

OUT = field("integer", "output channels.", minimum=1)
PART = field("integer", "width of the first 1x1 conv, split in two halves.", minimum=2)
IDENTITY = field("boolean", "give the re-parameterisable blocks an identity branch.")

# Row kind -> (class in the emitted module, shared block template defining it, stride factor).
BLOCKS: dict[str, tuple[Code, str | None, int]] = {
    "conv": (Code("ConvLayer"), None, 1),  # strided by its own row
    "elan": (Code("ELAN"), "gelan_elan", 1),
    "repncspelan": (Code("RepNCSPELAN"), "gelan_repncspelan", 1),
    "sppelan": (Code("SPPELAN"), "gelan_sppelan", 1),
    "aconv": (Code("AConv"), "gelan_aconv", 2),
    "adown": (Code("ADown"), "gelan_adown", 2),
}


@register
class GELAN(Component):
    """GELAN backbone (YOLOv9): conv, ELAN, RepNCSP-ELAN, SPP-ELAN and AConv/ADown downsampling blocks by row."""

    kind = "backbone"
    name = "gelan"
    tasks = ("classification", "detection")
    template = "gelan.py.jinja"
    params = {
        "stem_out_channels": integer(32, "Output channels of the stem convolution."),
        "stem_kernel_size": integer(3, "Kernel size of the stem convolution."),
        "stem_stride": integer(2, "Stride of the stem convolution."),
        "return_stage_idx": return_stage_idx_param(),
        "act_type": act_param("silu", "Activation used throughout the network."),
    }
    stage_params = rows(
        "One stage: a list of blocks, one row each.",
        row(
            "conv",
            ("out_channels", OUT),
            ("kernel_size", field("integer", "kernel size.", minimum=1)),
            ("stride", field("integer", "stride.", minimum=1)),
        ),
        row("elan", ("out_channels", OUT), ("part_channels", PART), ("use_identity", IDENTITY)),
        row(
            "repncspelan",
            ("out_channels", OUT),
            ("part_channels", field("integer", "width of the first 1x1 conv, split in two halves.", minimum=4)),
            ("use_identity", IDENTITY),
            ("depth", field("integer", "number of RepNCSP bottlenecks in each branch.", minimum=1)),
        ),
        row(
            "sppelan",
            ("out_channels", OUT),
            (
                "hidden_channels",
                field(["integer", "null"], "width before pooling (null: out_channels // 2).", minimum=1),
            ),
        ),
        row("aconv", ("out_channels", OUT)),
        row("adown", ("out_channels", field("integer", "output channels (must be even).", minimum=2))),
    )

    @classmethod
    def build(
        cls, params: dict[str, Any], stage_params: list | None, inputs: tuple[Feature, ...], *, task: str
    ) -> Built:
        stages = stage_params or []
        features = _stage_features(params, stages)
        global_pool = task == "classification"
        kwargs: dict[str, Any] = {
            "stem_out_channels": params["stem_out_channels"],
            "stem_kernel_size": params["stem_kernel_size"],
            "stem_stride": params["stem_stride"],
            "stages": [[_row(block) for block in stage] for stage in stages],
            "act_layer": ACTIVATIONS[params["act_type"]],
        }
        if global_pool:  # the last stage, pooled to (B, C) inside the backbone as in the peer
            selected = [len(stages) - 1]
        else:
            selected = list(params["return_stage_idx"] or [len(stages) - 1])
            kwargs["return_stage_idx"] = selected
        used = {block[0] for stage in stages for block in stage}
        shared = [BLOCKS[kind][1] for kind in BLOCKS if kind in used and BLOCKS[kind][1]]
        return Built(
            class_name="GELAN",
            kwargs=kwargs,
            outputs=tuple(features[index] for index in selected),
            stages=features,
            selected=tuple(selected),
            template_vars={"global_pool": global_pool},
            blocks=("conv_layer", *shared),
        )

    @classmethod
    def check(cls, params: dict[str, Any], stage_params: list | None, task: str) -> Iterator[Issue]:
        params = cls.resolve_params(params)
        stages = stage_params or []
        if not stages:
            yield Issue("/stage_params", "gelan needs at least one stage")
            return
        yield from return_stage_idx_issues(params, len(stages))
        channels = params["stem_out_channels"]
        for index, stage in enumerate(stages):
            for position, block in enumerate(stage):
                yield from _block_issues(f"/stage_params/{index}/{position}", block, channels)
                channels = block[1]


def _row(block: list) -> tuple:
    """The emitted row: the block's class, then its constructor arguments after ``in_channels``."""
    kind, out_channels, *args = block
    if kind == "elan":
        args = args[:1]  # part_channels; the peer's basic ELAN ignores use_identity
    elif kind == "sppelan" and args[0] is None:
        args = [out_channels // 2]
    return (BLOCKS[kind][0], out_channels, *args)


def _stage_features(params: dict[str, Any], stages: list) -> tuple[Feature, ...]:
    features, stride = [], params["stem_stride"]
    for stage in stages:
        for block in stage:
            stride *= block[3] if block[0] == "conv" else BLOCKS[block[0]][2]
        features.append(Feature(stage[-1][1], stride))
    return tuple(features)


def _block_issues(pointer: str, block: list, in_channels: int) -> Iterator[Issue]:
    if block[0] == "adown":
        if in_channels % 2:
            yield Issue(pointer, f"adown splits its input in two halves, but the input has {in_channels} channels")
        if block[1] % 2:
            yield Issue(f"{pointer}/1", f"adown's out_channels ({block[1]}) must be even (two halves)")
