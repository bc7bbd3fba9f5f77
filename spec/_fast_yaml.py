"""A fast path for reading YAML specs: libyaml (PyYAML's C parser) composes the node tree, and one walk turns it
into the plain data and the pointer → (line, column) map that ``spec/_load.py``'s ruamel.yaml path gives.

ruamel.yaml's round-trip loader is pure Python and took ~70 ms of an ~85 ms check of the largest zoo spec;
composing with libyaml takes ~1 ms. Only the parse is borrowed from PyYAML: libyaml is a YAML 1.1 *parser*, but
no tag is resolved by PyYAML's (1.1) rules. Every untagged plain scalar is resolved here by ruamel.yaml's own
YAML 1.2 table (``ruamel.yaml.resolver.implicit_resolvers``), exactly as ruamel's loader resolves it: ``yes``,
``no``, ``on``, ``off``, ``y``, ``n`` are strings; ``true``/``false`` booleans; ``1e-3`` a float; ``~``/``null``/empty
a null; ``010`` the integer 10 (1.2 has no bare-zero octal). Whatever this walk is not sure to read as ruamel
does is not read here at all: :func:`fast_load` returns None and the caller parses the text with ruamel, so errors
(syntax, duplicate keys, non-string keys, tags, limits) keep ruamel's words and positions. That covers:

- any explicit tag (``!!str``, ``!include``, the non-specific ``!``) and a ``%`` directive (``%YAML 1.1``
  switches ruamel to 1.1 rules);
- plain scalars that ruamel resolves to something other than str/bool/null/decimal int/finite float: ``0x1F``,
  ``0o17``, ``0b1``, ``1_000``, ``.inf``, ``.nan``, timestamps, the merge key ``<<`` and the value key ``=``;
- mapping keys that are not strings (``1:``, ``null:``, ``[a]:``) and duplicate keys;
- more than ``MAX_NODES`` values or ``MAX_DEPTH`` levels (aliases expanded), and anything libyaml rejects.

``tests/unit/spec/test_load_fast.py`` checks, for every zoo spec and every YAML/JSON file under tests/specs
and examples (and for mutated copies of them), that whenever this path answers, its data and positions equal
ruamel's.
"""

from __future__ import annotations

import math
import re
from typing import Any

from ruamel.yaml.resolver import implicit_resolvers

try:  # PyYAML built with libyaml (the wheels on PyPI are); without it every text goes through ruamel
    from yaml import YAMLError as _YAMLError
    from yaml._yaml import CParser as _CParser
    from yaml.nodes import MappingNode, ScalarNode
except ImportError:  # pragma: no cover - depends on the installation
    _CParser = None

__all__ = ["AVAILABLE", "fast_load"]

AVAILABLE = _CParser is not None

# Tags this module gives to untagged nodes; any other tag on a node was written in the text (explicit).
_PLAIN, _QUOTED, _MAP, _SEQ = "npc:plain", "npc:quoted", "npc:map", "npc:seq"
_EXPLICIT = "npc:explicit"

# Texts left to ruamel outright: a `%YAML`/`%TAG` directive; the non-specific tag `!` on a plain scalar (libyaml
# reports `! 5` as untagged); a tab (ruamel refuses one inside a plain scalar, libyaml keeps it); the YAML 1.1 line
# breaks NEL, LS, PS, which libyaml counts as lines and ruamel does not; a byte-order mark, which libyaml drops
# anywhere in the text; an anchor or alias name followed by one of `?:%@` and a backquote, which end the name for
# libyaml and belong to it for YAML 1.2 (`*a: 1` is the alias `a:` to ruamel).
_LEAVE_TO_RUAMEL = re.compile(
    r"^%|(?:^|[\s\[\]{},])!(?=[\s\[\]{},]|$)|[\t\x85\u2028\u2029\ufeff]|[&*][\w-]+[?:%@`]", re.MULTILINE
)

# ruamel.yaml's YAML 1.2 implicit resolvers, by first character, in its order (VersionedResolver.resolve).
_RESOLVERS: dict[str, list[tuple[str, re.Pattern[str]]]] = {}
for _versions, _tag, _regexp, _first in implicit_resolvers:
    if (1, 2) in _versions:
        for _char in _first:
            _RESOLVERS.setdefault(_char, []).append((_tag, _regexp))

_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_DECIMAL = re.compile(r"[-+]?[0-9]+")


class _Unsupported(Exception):
    """This text is read by ruamel instead (see the module docstring)."""


if AVAILABLE:

    class _Composer(_CParser):
        """libyaml's composer with tags left for :func:`_scalar` (no path resolvers, no PyYAML 1.1 rules)."""

        def descend_resolver(self, parent: Any, index: Any) -> None:
            pass

        def ascend_resolver(self) -> None:
            pass

        def resolve(self, kind: type, value: Any, implicit: Any) -> str:
            if kind is ScalarNode:
                return _PLAIN if implicit[0] else _QUOTED if implicit[1] else _EXPLICIT
            if not implicit:  # `! {a: 1}`: the non-specific tag on a collection
                return _EXPLICIT
            return _MAP if kind is MappingNode else _SEQ


def _resolve(value: str) -> str | None:
    """The tag ruamel.yaml (YAML 1.2) gives an untagged plain scalar; None for a string."""
    for tag, regexp in _RESOLVERS.get(value[:1], ()):
        if regexp.match(value):
            return tag
    return None


def _scalar(value: str) -> Any:
    tag = _resolve(value)
    if tag is None:
        return value
    if tag == _NULL:
        return None
    if tag == _BOOL:
        return value in ("true", "True", "TRUE")
    if tag == _INT and _DECIMAL.fullmatch(value):
        return int(value)  # ValueError past Python's digit limit: ruamel says so
    if tag == _FLOAT and "_" not in value:
        number = float(value)  # ValueError for .inf/.nan (Python spells them inf/nan): ruamel reads those
        if math.isfinite(number):
            return number
    raise _Unsupported(tag)


def fast_load(text: str, max_nodes: int, max_depth: int) -> tuple[Any, dict[str, tuple[int, int]]] | None:
    """(plain data, pointer → (line, col) 1-based) as ruamel's path gives them, or None: read it with ruamel."""
    if not AVAILABLE or _LEAVE_TO_RUAMEL.search(text):
        return None
    try:
        parser = _Composer(text)
        try:
            root = parser.get_single_node()
        finally:
            parser.dispose()
        if root is None:
            return None
        positions: dict[str, tuple[int, int]] = {}
        if root.tag in (_MAP, _SEQ):
            positions[""] = (root.start_mark.line + 1, root.start_mark.column + 1)
        data = _Walk(positions, max_nodes, max_depth).plain(root, "", 0)
    except (_Unsupported, _YAMLError, RecursionError, ValueError, TypeError, AttributeError):
        return None
    return data, positions


class _Walk:
    """Node tree → plain dict/list/str/int/float/bool/None, recording key and item positions on the way."""

    def __init__(self, positions: dict[str, tuple[int, int]], max_nodes: int, max_depth: int) -> None:
        self.positions, self.left, self.max_depth = positions, max_nodes, max_depth

    def plain(self, node: Any, pointer: str, depth: int) -> Any:
        if depth > self.max_depth:
            raise _Unsupported("depth")
        self.left -= 1
        if self.left < 0:
            raise _Unsupported("size")
        tag = node.tag
        if tag == _PLAIN:
            if node.style:  # a quoted scalar tagged `!` (libyaml reports it as plain-implicit)
                raise _Unsupported("tag")
            return _scalar(node.value)
        if tag == _QUOTED:
            return node.value
        if tag == _MAP:
            out: dict[str, Any] = {}
            positions = self.positions
            for key_node, value_node in node.value:
                key_tag, key = key_node.tag, key_node.value
                plain_string = key_tag == _PLAIN and not key_node.style and _resolve(key) is None
                if key_tag != _QUOTED and not plain_string:  # a key that is not a string, or a merge key `<<`
                    raise _Unsupported("key")
                if key in out:
                    raise _Unsupported("duplicate key")
                child = f"{pointer}/{key.replace('~', '~0').replace('/', '~1')}"
                mark = key_node.start_mark
                positions[child] = (mark.line + 1, mark.column + 1)
                out[key] = self.plain(value_node, child, depth + 1)
            return out
        if tag == _SEQ:
            items = []
            positions = self.positions
            for index, item in enumerate(node.value):
                child = f"{pointer}/{index}"
                mark = item.start_mark
                positions[child] = (mark.line + 1, mark.column + 1)
                items.append(self.plain(item, child, depth + 1))
            return items
        raise _Unsupported("tag")
