"""Lossless conversion between a spec's JSON, YAML and .npc forms, and the canonical layout of each.

Every conversion keeps the document: loading the output gives the same data, key order included. Comments
survive .npc → .npc and YAML → YAML (ruamel's round trip), and YAML → .npc carries them along; JSON has none,
and .npc/JSON → YAML and anything → JSON drop them. YAML anchors are expanded outside YAML → YAML. Nothing here
evaluates expressions: ``"=..."`` strings and ``vars`` are copied as they are. ``npc fmt`` is the command.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.representer import RoundTripRepresenter
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from ._load import _parse_json, _parse_yaml, load_text
from ._source import LoadError, Source
from ._text_format import Comment, dump_npc, parse_npc, quote, scan_comments

__all__ = ["FORMATS", "SUFFIXES", "convert", "dump_json", "dump_yaml", "form_of", "load_form"]
FORMATS = ("json", "yaml", "npc")


SUFFIXES = {".json": "json", ".yaml": "yaml", ".yml": "yaml", ".npc": "npc"}


# Containers are written on one line when they fit in this width (as `ruff format` does for Python).
WIDTH = 100


# A YAML flow collection ([1, 2] or {a: 1}) is used only for short leaf data, as in NetsPresso's own configs.
YAML_FLOW_WIDTH = 80


def form_of(path: str | Path) -> str:
    """The form a file is written in, from its suffix (anything else is read as YAML, as `npc validate` does)."""
    return SUFFIXES.get(Path(path).suffix.lower(), "yaml")


@dataclass
class _Loaded:
    source: Source
    comments: list[Comment] = field(default_factory=list)
    ends: dict[str, tuple[int, int]] = field(default_factory=dict)
    blank_lines: frozenset[int] = frozenset()


def convert(text: str, path: str, to: str) -> str:
    """``text`` (the contents of ``path``, whose suffix names its form) written canonically in form ``to``."""
    form = form_of(path)
    if form == "yaml" and to == "yaml":
        return _yaml_round_trip(text, path)
    loaded = load_form(text, path, form)
    if to == "npc":
        return dump_npc(
            loaded.source.data,
            positions=loaded.source.positions,
            comments=loaded.comments,
            ends=loaded.ends,
            blank_lines=loaded.blank_lines,
        )
    if to == "json":
        return dump_json(loaded.source.data)
    return dump_yaml(loaded.source.data)


def load_form(text: str, path: str, form: str) -> _Loaded:
    if form == "npc":
        document = parse_npc(text, path)
        return _Loaded(document.source, document.comments, document.ends, document.blank_lines)
    if form == "json":  # no comments to carry, so no positions needed: the stdlib parser alone is enough
        return _Loaded(Source(_parse_json(text, path), path))
    source = load_text(text, path)
    blank = frozenset(i + 1 for i, line in enumerate(text.splitlines()) if not line.strip())
    return _Loaded(source, scan_comments(text, yaml=True), blank_lines=blank)


def dump_json(data: Any) -> str:
    """Two-space JSON; a container stays on one line when it fits in WIDTH (the top level never does)."""
    return "\n".join(_json_lines(data, 0, "", "", top=True)) + "\n"


def _json_inline(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{quote(k)}: {_json_inline(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_json_inline(v) for v in value) + "]"
    if isinstance(value, str):
        return quote(value)
    return json.dumps(value)


def _json_lines(value: Any, depth: int, prefix: str, comma: str, top: bool = False) -> list[str]:
    pad = "  " * depth
    inline = _json_inline(value)
    container = isinstance(value, (dict, list)) and bool(value)
    if not container or (not top and len(pad + prefix + inline + comma) <= WIDTH):
        return [pad + prefix + inline + comma]
    items = list(value.items()) if isinstance(value, dict) else [(None, v) for v in value]
    opening, closing = ("{", "}") if isinstance(value, dict) else ("[", "]")
    lines = [pad + prefix + opening]
    for index, (key, item) in enumerate(items):
        item_prefix = f"{quote(key)}: " if key is not None else ""
        lines += _json_lines(item, depth + 1, item_prefix, "," if index < len(items) - 1 else "")
    return lines + [pad + closing + comma]


# ---- YAML ---------------------------------------------------------------------------------------------------


class _Representer(RoundTripRepresenter):
    """Nulls as ``~``, as NetsPresso Trainer's configs write them."""


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.Representer = _Representer
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096  # never fold a long string: folding is where YAML round trips go subtly wrong
    yaml.allow_unicode = True
    return yaml


def dump_yaml(data: Any) -> str:
    """Block YAML in NetsPresso's style; short leaf lists and list rows in flow style: ``[1, 2]``, ``- {a: 1}``.

    The output is read back before it is returned: where ruamel's flow style would not round-trip (keys such as
    ``":0"``), the document is written in block style throughout.
    """
    for flow in (True, False):
        stream = io.StringIO()
        _yaml().dump(_styled(data, row=False, flow=flow), stream)
        text = stream.getvalue()
        try:
            if json.dumps(load_text(text).data) == json.dumps(data):
                return text
        except LoadError:
            pass
    raise ValueError("this document cannot be written as YAML without changing it")


def _styled(value: Any, *, row: bool, flow: bool = True) -> Any:
    """ruamel nodes with NetsPresso's styles: ``row`` marks a mapping that is one of several rows of a list."""
    if isinstance(value, dict):
        node = CommentedMap((_text(k), _styled(v, row=False, flow=flow)) for k, v in value.items())
        if not value or (flow and row and _flow_fits(value)):
            node.fa.set_flow_style()
        return node
    if isinstance(value, list):
        rows = len(value) > 1 and all(isinstance(item, dict) for item in value)
        node = CommentedSeq(_styled(v, row=rows, flow=flow) for v in value)
        if not value or (flow and _flow_fits(value)):
            node.fa.set_flow_style()
        return node
    return _text(value) if isinstance(value, str) else value


def _text(text: str) -> str:
    """Strings with characters YAML treats as line breaks or cannot show plainly go in escaped double quotes."""
    if all(c.isprintable() for c in text):
        return text
    return DoubleQuotedScalarString(text)


def _flow_fits(value: dict | list) -> bool:
    """Leaf data (scalars, or lists of scalars) short enough to read on one line."""
    children = value.values() if isinstance(value, dict) else value
    for child in children:
        if isinstance(child, dict) or (isinstance(child, list) and any(isinstance(c, (dict, list)) for c in child)):
            return False
    return len(_json_inline(value)) <= YAML_FLOW_WIDTH


def _yaml_round_trip(text: str, path: str) -> str:
    """YAML → YAML through ruamel's round trip: comments, anchors and flow styles kept, indentation made regular."""
    stream = io.StringIO()
    _yaml().dump(_parse_yaml(text, path), stream)  # duplicate keys and syntax errors as npc validate reports them
    return stream.getvalue()


_Representer.add_representer(
    type(None), lambda representer, _: representer.represent_scalar("tag:yaml.org,2002:null", "~")
)
