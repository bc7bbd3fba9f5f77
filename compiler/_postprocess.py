"""Detection post-processing in the emitted module: the head's decoder, the shared NMS and ``build_postprocessor``.

The graph's ``postprocessor`` node carries the spec's ``postprocessor.params``; the head's
:meth:`~._registry.Component.decoder` turns them (and its own params) into the decoder's arguments, with the peer's
defaults for that head. A head without a ``postprocessor_template`` gets no postprocessor. The parameter table
here is also the JSON Schema of ``postprocessor.params``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import networkx as nx

from ._graph import POSTPROCESSOR, components
from ._registry import Code
from ._render import format_assignment, literal

__all__ = ["NMS_DEFAULTS", "POSTPROCESSOR_PARAMS", "postprocessor_context", "settings"]

# Post-processing (detection / pose decode and NMS; classification's top-k). The peer's heads each read a subset.
POSTPROCESSOR_PARAMS: dict[str, dict[str, Any]] = {
    "score_thresh": {
        "type": "number",
        "minimum": 0,
        "maximum": 1,
        "description": "Discard candidate boxes whose class score is below this value.",
    },
    "nms_thresh": {
        "type": "number",
        "minimum": 0,
        "maximum": 1,
        "description": "IoU above which non-maximum suppression removes the lower-scoring box.",
    },
    "class_agnostic": {
        "type": "boolean",
        "description": "Suppress overlapping boxes across classes, not only within one class.",
    },
    "topk_candidates": {
        "type": "integer",
        "minimum": 1,
        "description": "Keep at most this many highest-scoring candidates per level before NMS.",
    },
    "detections_per_image": {
        "type": "integer",
        "minimum": 1,
        "description": "Keep at most this many boxes per image after NMS.",
    },
    "num_top_queries": {
        "type": "integer",
        "minimum": 1,
        "description": "RT-DETR: number of top-scoring queries turned into boxes.",
    },
    "reg_max": {
        "type": "integer",
        "minimum": 1,
        "description": "YOLOv9: number of distribution bins per box side (must match the head).",
    },
    "anchors": {
        "type": "array",
        "items": {"type": "array", "items": {"type": "number"}},
        "description": "YOLO-Fastest: anchor (w, h) pairs per output level, flattened per level.",
    },
    "topk_max": {
        "type": "integer",
        "minimum": 1,
        "description": "Classification: list at most this many (label, score) pairs per prediction "
        "(NetsPresso's classification postprocessor keeps the top 20).",
    },
    "simcc_split_ratio": {
        "type": "number",
        "exclusiveMinimum": 0,
        "description": "RTMPose: SimCC bins per input pixel used to decode keypoints.",
    },
}

# The peer's NMS defaults (postprocessors/detection.py ``nms``); it has no per-image cap, so none by default.
NMS_DEFAULTS: dict[str, Any] = {"nms_thresh": 0.45, "class_agnostic": False, "detections_per_image": None}

# Arrays become tuples: a keyword default must not be a mutable list shared between calls.
_ANNOTATIONS = {"number": "float", "integer": "int", "boolean": "bool", "array": "tuple"}
_CASTS: dict[str, Callable[[Any], Any]] = {"number": float, "integer": int, "boolean": bool}


def _frozen(value: Any) -> Any:
    return tuple(_frozen(item) for item in value) if isinstance(value, list) else value


def settings(postprocessor_params: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """The ``defaults`` keys, each with the spec's value where it gives one (null means the default, as in the peer)."""
    given = {key: value for key, value in postprocessor_params.items() if value is not None}
    return {key: given.get(key, default) for key, default in defaults.items()}


def postprocessor_context(graph: nx.DiGraph, render: Callable[..., str]) -> dict | None:
    """What model.py.jinja needs to emit the postprocessor: its blocks and ``build_postprocessor``'s parts."""
    if not graph.has_node(POSTPROCESSOR):
        return None
    head = components(graph)[-1]
    if head.family.postprocessor_template is None:
        return None
    given = graph.nodes[POSTPROCESSOR]["params"]
    peer = f"NetsPresso Trainer's for {head.family.name}"
    defaults = f"Defaults: the spec's postprocessor params, else {peer}." if given else f"Defaults: {peer}."
    decoder = graph.nodes[POSTPROCESSOR]["decoder"]  # planned by passes.plan_postprocessor
    nms_defaults = NMS_DEFAULTS if decoder.nms else {**NMS_DEFAULTS, "nms_thresh": None}  # None: no NMS
    arguments = {**decoder.kwargs, **settings(given, nms_defaults)}
    call_kwargs = {**{key: Code(key) for key in decoder.kwargs}, **decoder.fixed}
    call = format_assignment("decoder", decoder.class_name, call_kwargs, " " * 4)
    return {
        "blocks": [render(head.family.postprocessor_template, vars={}), render("block_nms.py.jinja", vars={})],
        "parameters": [
            f"{key}: {_annotation(key, value)} = {literal(_cast(key, value))}," for key, value in arguments.items()
        ],
        "decoder": call,
        "defaults": defaults,
    }


def _annotation(key: str, value: Any) -> str:
    annotation = _ANNOTATIONS[POSTPROCESSOR_PARAMS[key]["type"]]
    return f"{annotation} | None" if value is None else annotation


def _cast(key: str, value: Any) -> Any:
    """A spec's ``score_thresh: 1`` is emitted as ``1.0``, so the default matches its annotation."""
    cast = _CASTS.get(POSTPROCESSOR_PARAMS[key]["type"])
    return _frozen(value) if value is None or cast is None else cast(value)
