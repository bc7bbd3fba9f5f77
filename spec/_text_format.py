"""The .npc text form of a spec: parse it into the same document the JSON/YAML form gives, and write it back.

    model resnet18 : classification {
      backbone resnet(block_type: "basicblock") {
        stage(channels: 64, num_blocks: 2)
      }
      head fc(num_layers: 1)
      loss cross_entropy(label_smoothing: 0.1)
    }

text → lark parse tree (``npc.lark``, start ``file``) → statement nodes (frozen, with line/column) → *lowering*:
the plain dict/list/str/int/float/bool/None document plus a JSON pointer → (line, column) map, exactly what
``load_text`` gives for YAML/JSON, so validation and compilation need not know which form a spec was written in.
:func:`dump_npc` writes a document back (``npc fmt``); ``load_npc_text(dump_npc(d))`` gives ``d`` again, key
order included, and comments of a parsed .npc (or YAML) file are carried along.

What a statement means depends on the body it stands in (see docs/language.md):

- top level: ``model NAME : TASK { ... }`` is the ``model`` mapping (``task`` and ``name`` first);
- model body: ``backbone|neck|head|full NAME(...) { ... }`` fill ``architecture``, ``loss NAME(...)`` appends to
  ``losses``, ``postprocessor(...)`` sets ``postprocessor.params``;
- backbone/neck/head body: ``stage(...)`` appends a row to ``stage_params``;
- everywhere: ``key: value`` and ``key { ... }`` (same as ``key: { ... }``). A quoted key is always a plain key.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from lark import v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedInput

from ._expressions import KEYWORDS, ExpressionBuilder, Literal, Node, match_examples, number_value, parser
from ._source import MAX_DEPTH, MAX_NODES, MAX_SPEC_BYTES, LoadError, Source, pointer_join

__all__ = [
    "BadExpression",
    "BadKey",
    "EqualsForColon",
    "MissingComma",
    "MissingValue",
    "NpcDocument",
    "NpcSyntaxError",
    "UnclosedBrace",
    "UnclosedBracket",
    "UnclosedParenthesis",
    "UnexpectedCharacter",
    "UnexpectedClose",
    "UnquotedText",
    "dump_npc",
    "load_npc_text",
    "parse_npc",
    "scan_comments",
]

# Words that mean something in a given body (unquoted keys only).
SLOTS = ("full", "backbone", "neck", "head")
MODEL_WORDS = frozenset({*SLOTS, "loss"})
COMPONENT_WORDS = frozenset({"stage"})


# ---- statement nodes ------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Key(Node):
    text: str
    quoted: bool  # "backbone" (quoted) is a plain key even where `backbone` starts a component


@dataclass(frozen=True, kw_only=True)
class ObjectValue(Node):
    body: Body


@dataclass(frozen=True, kw_only=True)
class ArrayValue(Node):
    items: tuple[Value, ...]


@dataclass(frozen=True, kw_only=True)
class Formula(Node):
    text: str  # the document's string: "=" and the expression exactly as written


Value = Literal | ObjectValue | ArrayValue | Formula


@dataclass(frozen=True, kw_only=True)
class Pair(Node):
    key: Key
    value: Value


@dataclass(frozen=True, kw_only=True)
class Arguments(Node):
    items: tuple[Pair | Value, ...]


@dataclass(frozen=True, kw_only=True)
class Block(Node):
    key: Key
    label: Key | None = None
    task: Key | None = None
    arguments: Arguments | None = None
    body: Body | None = None
    end: tuple[int, int] = (0, 0)  # where the statement ends (line, column): comments before it stay inside


@dataclass(frozen=True)
class Body:
    statements: tuple[Pair | Block, ...]


def _at(meta: Any) -> dict[str, int]:
    return {"line": meta.line, "column": meta.column}


def _end(meta: Any) -> tuple[int, int]:
    return (meta.end_line, meta.end_column)


class DocumentBuilder(ExpressionBuilder):
    """Parse-tree rules of the ``documents`` and ``values`` sections → statement nodes (one method per rule)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def file(self, children):
        return children[0]

    def body(self, children):
        return Body(tuple(children))

    def braces(self, children):
        return children[0]

    @v_args(meta=True)
    def pair(self, meta, children):
        key, value = children
        return Pair(key=key, value=value, **_at(meta))

    @v_args(meta=True)
    def labelled_block(self, meta, children):
        key, label, task, arguments, body = children
        return Block(key=key, label=label, task=task, arguments=arguments, body=body, end=_end(meta), **_at(meta))

    @v_args(meta=True)
    def call_block(self, meta, children):
        key, arguments, body = children
        return Block(key=key, arguments=arguments, body=body, end=_end(meta), **_at(meta))

    @v_args(meta=True)
    def plain_block(self, meta, children):
        key, body = children
        return Block(key=key, body=body, end=_end(meta), **_at(meta))

    @v_args(meta=True)
    def arguments(self, meta, children):
        return Arguments(items=tuple(c for c in children if c is not None), **_at(meta))

    @v_args(meta=True)
    def key(self, meta, children):
        token = children[0]
        quoted = token.type == "STRING"
        return Key(text=json.loads(token) if quoted else str(token), quoted=quoted, **_at(meta))

    label = key

    @v_args(meta=True)
    def object(self, meta, children):
        return ObjectValue(body=children[0], **_at(meta))

    @v_args(meta=True)
    def array(self, meta, children):
        return ArrayValue(items=tuple(c for c in children if c is not None), **_at(meta))

    @v_args(meta=True)
    def formula(self, meta, children):
        expression = self.text[meta.start_pos + 1 : meta.end_pos].lstrip()  # after "=", as written
        return Formula(text="=" + expression, **_at(meta))

    @v_args(meta=True)
    def string(self, meta, children):
        return Literal(value=json.loads(children[0]), **_at(meta))

    @v_args(meta=True)
    def number(self, meta, children):
        return Literal(value=number_value(children[0]), **_at(meta))


# ---- syntax errors --------------------------------------------------------------------------------------


class NpcSyntaxError(LoadError):
    """A .npc file that does not parse; the message names the problem and shows the line with a caret."""

    label = "syntax error"

    def __init__(self, path: str, text: str, line: int, column: int, detail: str = "") -> None:
        shown = text.splitlines()[line - 1] if 0 < line <= len(text.splitlines()) else ""
        caret = " " * (len(shown[: column - 1].expandtabs()) if shown else 0) + "^"
        message = f"{self.label}{': ' + detail if detail else ''}\n    {shown.expandtabs()}\n    {caret}"
        super().__init__(path, message, line, column)


class MissingValue(NpcSyntaxError):
    label = "expected a value"


class UnquotedText(NpcSyntaxError):
    label = "text is written in double quotes"


class MissingComma(NpcSyntaxError):
    label = "missing ',' between items"


class UnclosedBrace(NpcSyntaxError):
    label = "unclosed '{'"


class UnclosedParenthesis(NpcSyntaxError):
    label = "unclosed '('"


class UnclosedBracket(NpcSyntaxError):
    label = "unclosed '['"


class UnexpectedClose(NpcSyntaxError):
    label = "unexpected closing bracket"


class BadKey(NpcSyntaxError):
    label = "expected a statement: a key (name or quoted string) followed by ':', a name or '{'"


class EqualsForColon(NpcSyntaxError):
    label = "use ':' to give a key its value (`key: value`); '=' starts an expression (`key: = a * 2`)"


class BadExpression(NpcSyntaxError):
    label = "incomplete expression"


class UnexpectedCharacter(NpcSyntaxError):
    label = "unexpected character"


# Each class is recognised by lark's match_examples: the same parser state as one of its examples (and the same
# token where possible). General situations first; token-specific ones refine them.
_CATALOGUE: dict[type[NpcSyntaxError], list[str]] = {
    MissingValue: ["a:", "a: }", "a: ,", "a: )", "f(a: )", "a: [,]", "a: [1,,]", "f(a:,)", "a: ]", "a: :"],
    UnquotedText: ["a: b", "a: [b]", "f(a: b)", "f(b)", "a: [1, b]", "f(1, b)"],
    MissingComma: [
        "f(a: 1 b: 2)",
        "f(1 2)",
        "a: [1 2]",
        "a: [[1] [2]]",
        'f("a" "b")',
        "f(a: 1 2)",
        "a: [=x 1]",
        "a: [{} x]",
        "a: [[] x]",
        "a: [1, {} x]",
        "a: [1, [] x]",
        "a: [1, 2 3]",
        "a: [1, 2, 3 4]",
        "a: [1, 2, {} x]",
        "a: [1, 2, [] x]",
        "f(a: 1, b: 2 c: 3)",
        "f(1, 2 3)",
        "f(1, 2, 3 4)",
        "f({} x)",
        "f(a: [] b: 1)",
    ],
    UnclosedBrace: ["a {", "a { b: 1", "m n { a { b: 1 }", "a: {", "a: { b: 1"],
    UnclosedParenthesis: ["f(", "f(a: 1", "f(1,", "m n(a: [1]", "f(a: 1 }", "f(1 }", "f(a: [1] }"],
    UnclosedBracket: ["a: [", "a: [1", "a: [1,", "a: [1, 2", "a: [1, 2, 3", "f([1", "a: [1 }", "a: [1, 2 }", "f([1)"],
    UnexpectedClose: ["}", "a: 1 }", ")", "]", "a: [1])", "f(1]", "a { b: 1 ]"],
    BadKey: ["1: 2", "[1]", "a { 1 }", "-", "a: 1 2", "a b c"],
    EqualsForColon: ["a = 1", "a { b = 1 }"],
    BadExpression: ["a: =", "a: =1 +", "a: =(1", "a: =f(", "a: =1 2", "a: =[1", "a: =x if y"],
}
_CHARACTER_HINTS = {
    "'": 'single quotes are for strings inside expressions; write "..."',
    "~": "write null",
    ";": "separate statements with a newline or ','",
    "&": "expressions use 'and'",
    "|": "expressions use 'or'",
    "!": "expressions use 'not' and '!='",
    '"': "unterminated string (or a control character such as a tab inside it: write \\t)",
}
# What people bring from YAML/Python where a value is expected, with the npc spelling.
_WORD_HINTS = {"True": "true", "False": "false", "None": "null", "yes": "true", "no": "false", "Null": "null"}


def _syntax_error(exc: UnexpectedInput, text: str, path: str) -> NpcSyntaxError:
    line, column = exc.line or 1, exc.column or 1
    if getattr(getattr(exc, "token", None), "type", None) == "$END":  # point just past the last character
        lines = text.rstrip().splitlines() or [""]
        line, column = len(lines), len(lines[-1]) + 1
    if isinstance(exc, UnexpectedCharacters):
        char = text[exc.pos_in_stream] if exc.pos_in_stream < len(text) else ""
        hint = _CHARACTER_HINTS.get(char)
        return UnexpectedCharacter(path, text, line, column, f"{char!r}" + (f"; {hint}" if hint else ""))
    cls = match_examples(exc, "file", _CATALOGUE)
    token = getattr(exc, "token", None)
    if token is not None and token.type == "SINGLE_QUOTED":
        return UnexpectedCharacter(path, text, line, column, "'; " + _CHARACTER_HINTS["'"])
    if cls is UnquotedText and str(token) in _WORD_HINTS:
        return MissingValue(path, text, line, column, f"write {_WORD_HINTS[str(token)]}, not {token}")
    if cls is UnquotedText:
        return UnquotedText(path, text, line, column, f'write "{token}"')
    if cls is not None:
        return cls(path, text, line, column)
    found = "end of file" if token is None or token.type == "$END" else repr(str(token))
    return NpcSyntaxError(path, text, line, column, f"unexpected {found}")


# ---- lowering: statements → document + positions --------------------------------------------------------

FILE, MODEL, ARCHITECTURE, COMPONENT, OBJECT = "file", "model", "architecture", "component", "object"


@dataclass
class NpcDocument:
    """A parsed .npc file: the :class:`Source`, its comments and where each statement ends (for ``npc fmt``)."""

    source: Source
    comments: list[Comment] = field(default_factory=list)
    ends: dict[str, tuple[int, int]] = field(default_factory=dict)
    blank_lines: frozenset[int] = frozenset()


def load_npc_text(text: str, path: str = "<string>") -> Source:
    """The document a .npc text describes, with pointer → (line, column) positions; raises :class:`LoadError`."""
    return parse_npc(text, path).source


def parse_npc(text: str, path: str = "<string>") -> NpcDocument:
    if len(text.encode("utf-8", "surrogatepass")) > MAX_SPEC_BYTES:
        raise LoadError(path, f"file is larger than {MAX_SPEC_BYTES} bytes; specs are limited to that")
    _check_brackets(text, path)
    try:
        tree = parser().parse(text, start="file")
    except UnexpectedInput as exc:
        raise _syntax_error(exc, text, path) from None
    body = DocumentBuilder(text).transform(tree)
    lowering = _Lowering(path)
    data = lowering.body(body, "", FILE, 0)
    first = body.statements[0] if body.statements else None
    positions = {"": (first.line, first.column)} if first else {}
    positions.update(lowering.positions)
    blank = frozenset(i + 1 for i, line in enumerate(text.splitlines()) if not line.strip())
    return NpcDocument(Source(data, path, positions), scan_comments(text), lowering.ends, blank)


# Brackets nested this deep are never a spec (values nest at most MAX_DEPTH levels, and an expression's own
# parentheses add a few); refusing them before parsing keeps hostile input cheap.
MAX_BRACKETS = 2 * MAX_DEPTH
_BRACKET_TOKENS = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'|#[^\n]*|[\[{(]|[\]})]')


def _check_brackets(text: str, path: str) -> None:
    depth = 0
    for match in _BRACKET_TOKENS.finditer(text):
        token = match.group()
        if token in "[{(":
            depth += 1
            if depth > MAX_BRACKETS:
                line = text.count("\n", 0, match.start()) + 1
                column = match.start() - (text.rfind("\n", 0, match.start()) + 1) + 1
                raise LoadError(path, f"nesting deeper than {MAX_DEPTH} levels", line, column)
        elif token in "]})":
            depth = max(depth - 1, 0)


class _Lowering:
    def __init__(self, path: str) -> None:
        self.path = path
        self.positions: dict[str, tuple[int, int]] = {}
        self.ends: dict[str, tuple[int, int]] = {}
        self.count = 0

    def fail(self, node: Node, message: str) -> LoadError:
        return LoadError(self.path, message, node.line, node.column)

    def at(self, pointer: str, node: Node) -> str:
        self.positions.setdefault(pointer, (node.line, node.column))
        return pointer

    # -- bodies --

    def body(self, body: Body | None, pointer: str, context: str, depth: int, out: dict | None = None) -> dict:
        if depth > MAX_DEPTH:
            raise LoadError(self.path, f"nesting deeper than {MAX_DEPTH} levels")
        out = {} if out is None else out
        collected: dict[str, Node] = {}  # keys filled by repeated statements (losses, stage_params, architecture)
        for statement in body.statements if body else ():
            if isinstance(statement, Pair):
                self.pair(statement, out, pointer, context, depth, collected)
            else:
                self.block(statement, out, pointer, context, depth, collected)
        return out

    def put(self, out: dict, key: Key, value: Any, pointer: str) -> None:
        if key.text in out:
            raise self.fail(key, f"duplicate key {key.text!r}")
        out[key.text] = value

    def collect(self, out: dict, name: str, kind: type, key: Key, pointer: str, collected: dict[str, Node]) -> Any:
        """The list/dict that repeated statements fill (``loss`` → ``losses``), created where the first one is."""
        if name not in out:
            out[name] = kind()
            collected[name] = key
            self.at(pointer_join(pointer, name), key)
        elif name not in collected:
            raise self.fail(key, f"{name!r} is already given; use either `{name}: ...` or `{key.text}` statements")
        return out[name]

    def reserve(self, out: dict, key: Key, collected: dict[str, Node]) -> None:
        """An explicit ``losses:``/``architecture``/``stage_params:`` after statements that filled it."""
        if key.text in collected:
            where = collected[key.text]
            raise self.fail(key, f"{key.text!r} is already filled by the statements from line {where.line}")

    def pair(self, pair: Pair, out: dict, pointer: str, context: str, depth: int, collected: dict) -> None:
        word = None if pair.key.quoted else pair.key.text
        if context in (MODEL, ARCHITECTURE) and word in SLOTS:
            target = (
                out
                if context == ARCHITECTURE
                else self.collect(out, "architecture", dict, pair.key, pointer, collected)
            )
            here = pointer if context == ARCHITECTURE else pointer_join(pointer, "architecture")
            self.put_value(target, pair.key, pair.value, here, depth)
        elif context == MODEL and word == "loss":
            self.append(out, "losses", pair.key, pair.value, pointer, depth, collected)
        elif context == COMPONENT and word == "stage":
            self.append(out, "stage_params", pair.key, pair.value, pointer, depth, collected)
        else:
            self.reserve(out, pair.key, collected)
            self.put_value(out, pair.key, pair.value, pointer, depth)

    def put_value(self, out: dict, key: Key, value: Value, pointer: str, depth: int) -> None:
        here = self.at(pointer_join(pointer, key.text), key)
        self.put(out, key, self.value(value, here, depth + 1), here)

    def append(self, out: dict, name: str, key: Key, value: Any, pointer: str, depth: int, collected: dict) -> None:
        items = self.collect(out, name, list, key, pointer, collected)
        here = self.at(pointer_join(pointer_join(pointer, name), len(items)), key)
        items.append(value if not isinstance(value, Node) else self.value(value, here, depth + 2))

    def block(self, block: Block, out: dict, pointer: str, context: str, depth: int, collected: dict) -> None:
        word = None if block.key.quoted else block.key.text
        sugar = block.label is not None or block.arguments is not None
        if context == FILE and word == "model":
            self.model(block, out, pointer, depth)
        elif context in (MODEL, ARCHITECTURE) and word in SLOTS:
            self.slot(block, out, pointer, context, depth, collected)
        elif context == MODEL and word == "loss":
            self.loss(block, out, pointer, depth, collected)
        elif context == MODEL and word == "postprocessor" and sugar:
            self.postprocessor(block, out, pointer, depth)
        elif context == COMPONENT and word == "stage":
            self.stage(block, out, pointer, depth, collected)
        elif sugar:
            raise self.fail(block.label or block.arguments, _no_sugar(block.key.text, context))
        else:
            self.reserve(out, block.key, collected)
            inner = ARCHITECTURE if context == MODEL and word == "architecture" else OBJECT
            here = self.at(pointer_join(pointer, block.key.text), block.key)
            self.ends[here] = block.end
            self.put(out, block.key, self.body(block.body, here, inner, depth + 1), here)

    def model(self, block: Block, out: dict, pointer: str, depth: int) -> None:
        if block.arguments is not None:
            raise self.fail(block.arguments, "model takes no arguments; write `model NAME : TASK { ... }`")
        here = self.at(pointer_join(pointer, "model"), block.key)
        self.ends[here] = block.end
        model: dict[str, Any] = {}
        if block.task is not None:
            model["task"] = block.task.text
            self.at(pointer_join(here, "task"), block.task)
        if block.label is not None:
            model["name"] = block.label.text
            self.at(pointer_join(here, "name"), block.label)
        self.put(out, block.key, self.body(block.body, here, MODEL, depth + 1, model), here)

    def slot(self, block: Block, out: dict, pointer: str, context: str, depth: int, collected: dict) -> None:
        word = block.key.text
        if context == MODEL:
            target = self.collect(out, "architecture", dict, block.key, pointer, collected)
            pointer = pointer_join(pointer, "architecture")
        else:
            target = out
        here = self.at(pointer_join(pointer, word), block.key)
        self.ends[here] = block.end
        if block.label is None and block.arguments is not None:
            raise self.fail(block.arguments, f"{word} needs a name: `{word} NAME(...)`")
        if block.label is None:
            self.put(target, block.key, self.body(block.body, here, OBJECT, depth + 2), here)
            return
        component = {"name": block.label.text}
        self.at(pointer_join(here, "name"), block.label)
        if word == "full":  # a full model's parameters sit beside its name
            component.update(self.named_arguments(block, here, depth + 2))
            inner = OBJECT
        else:
            if block.arguments is not None:
                params = self.at(pointer_join(here, "params"), block.arguments)
                component["params"] = self.arguments(block.arguments, params, depth + 3)
            inner = COMPONENT
        self.put(target, block.key, self.body(block.body, here, inner, depth + 2, component), here)

    def loss(self, block: Block, out: dict, pointer: str, depth: int, collected: dict) -> None:
        if block.label is None and block.arguments is not None:
            raise self.fail(block.arguments, "loss needs a criterion: `loss cross_entropy(...)`")
        if block.label is None:
            self.append(out, "losses", block.key, None, pointer, depth, collected)
            here = pointer_join(pointer_join(pointer, "losses"), len(out["losses"]) - 1)
            out["losses"][-1] = self.body(block.body, here, OBJECT, depth + 3)
        else:
            self.append(out, "losses", block.key, {"criterion": block.label.text}, pointer, depth, collected)
            here = pointer_join(pointer_join(pointer, "losses"), len(out["losses"]) - 1)
            self.at(pointer_join(here, "criterion"), block.label)
            item = out["losses"][-1]
            item.update(self.named_arguments(block, here, depth + 3))
            self.body(block.body, here, OBJECT, depth + 3, item)
        self.ends[here] = block.end

    def postprocessor(self, block: Block, out: dict, pointer: str, depth: int) -> None:
        if block.label is not None:
            raise self.fail(block.label, "postprocessor takes no name: `postprocessor(score_thresh: 0.05)`")
        here = self.at(pointer_join(pointer, "postprocessor"), block.key)
        self.ends[here] = block.end
        params = self.at(pointer_join(here, "params"), block.arguments)
        value = {"params": self.arguments(block.arguments, params, depth + 2)}
        self.put(out, block.key, self.body(block.body, here, OBJECT, depth + 1, value), here)

    def stage(self, block: Block, out: dict, pointer: str, depth: int, collected: dict) -> None:
        if block.label is not None:
            raise self.fail(block.label, "stage takes no name: `stage(channels: 64, num_blocks: 2)`")
        if block.arguments is not None and block.body is not None:
            raise self.fail(block.key, "stage takes arguments or a body, not both")
        self.append(out, "stage_params", block.key, None, pointer, depth, collected)
        rows = out["stage_params"]
        here = pointer_join(pointer_join(pointer, "stage_params"), len(rows) - 1)
        self.ends[here] = block.end
        if block.arguments is not None:
            rows[-1] = self.arguments(block.arguments, here, depth + 3)
        else:
            rows[-1] = self.body(block.body, here, OBJECT, depth + 3)

    # -- arguments and values --

    def arguments(self, arguments: Arguments, pointer: str, depth: int) -> dict | list:
        """``(a: 1, b: 2)`` → a mapping, ``(1, 2)`` → a list, ``()`` → an empty mapping."""
        named = [item for item in arguments.items if isinstance(item, Pair)]
        if named and len(named) != len(arguments.items):
            odd = next(item for item in arguments.items if not isinstance(item, Pair))
            raise self.fail(odd, "arguments are either all named (`key: value`) or all positional")
        if named or not arguments.items:
            out: dict[str, Any] = {}
            for pair in named:
                self.put_value(out, pair.key, pair.value, pointer, depth - 1)
            return out
        return [
            self.value(item, self.at(pointer_join(pointer, i), item), depth) for i, item in enumerate(arguments.items)
        ]

    def named_arguments(self, block: Block, pointer: str, depth: int) -> dict:
        if block.arguments is None:
            return {}
        if any(not isinstance(item, Pair) for item in block.arguments.items):
            raise self.fail(
                block.arguments, f"{block.key.text} arguments are named: `{block.key.text} NAME(key: value)`"
            )
        return self.arguments(block.arguments, pointer, depth + 1)

    def value(self, value: Value, pointer: str, depth: int) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise self.fail(value, f"more than {MAX_NODES} values")
        if depth > MAX_DEPTH:
            raise self.fail(value, f"nesting deeper than {MAX_DEPTH} levels")
        if isinstance(value, Literal):
            return value.value
        if isinstance(value, Formula):
            return value.text
        if isinstance(value, ArrayValue):
            return [
                self.value(item, self.at(pointer_join(pointer, i), item), depth + 1)
                for i, item in enumerate(value.items)
            ]
        return self.body(value.body, pointer, OBJECT, depth)


def _no_sugar(word: str, context: str) -> str:
    allowed = {
        FILE: "model",
        MODEL: "backbone, neck, head, full, loss, postprocessor",
        ARCHITECTURE: "backbone, neck, head, full",
        COMPONENT: "stage",
    }.get(context)
    where = f"; here only {allowed} do" if allowed else ""
    return f"{word!r} takes no name or arguments{where}: write `{word} {{ ... }}` or `{word}: value`"


# ---- comments -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comment:
    line: int
    column: int
    text: str  # "# ..." without the line break
    own_line: bool  # nothing but whitespace before it on its line


def scan_comments(text: str, *, yaml: bool = False) -> list[Comment]:
    """Every ``#`` comment outside strings. For YAML, block scalars (``|``, ``>``) are skipped."""
    comments: list[Comment] = []
    block_indent: int | None = None  # inside a YAML block scalar: lines indented more than this are text
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        if block_indent is not None:
            if not stripped or indent > block_indent:
                continue
            block_indent = None
        column = _comment_start(line, yaml)
        if column is not None:
            comments.append(Comment(number, column + 1, line[column:].rstrip(), not line[:column].strip()))
        code = line[:column] if column is not None else line
        if yaml and re.search(r"(^|[\s:-])[|>][-+0-9]*\s*$", code):
            block_indent = indent
    return comments


def _comment_start(line: str, yaml: bool) -> int | None:
    quote = None
    i = 0
    while i < len(line):
        char = line[i]
        if quote:
            if char == "\\" and quote == '"':
                i += 1
            elif char == quote:
                if yaml and quote == "'" and line[i + 1 : i + 2] == "'":
                    i += 1
                else:
                    quote = None
        elif char in "\"'" and (not yaml or char == '"' or i == 0 or line[i - 1] in " \t[{,:-"):
            quote = char
        elif char == "#" and (not yaml or i == 0 or line[i - 1] in " \t"):
            return i
        i += 1
    return None


# ---- writing: document → .npc text ----------------------------------------------------------------------

# Lines are kept within this width where a value can be broken; a long string still runs past it.
WIDTH = 100
INDENT = "  "


def dump_npc(
    data: Any,
    *,
    positions: dict[str, tuple[int, int]] | None = None,
    comments: list[Comment] | None = None,
    ends: dict[str, tuple[int, int]] | None = None,
    blank_lines: frozenset[int] = frozenset(),
) -> str:
    """Canonical .npc text for ``data`` (a mapping). With the positions and comments of the file ``data`` was
    read from, comments are kept next to the statements they preceded or followed, and blank lines between
    statements are kept (one at most).
    """
    if not isinstance(data, dict):
        raise ValueError(f"a .npc file holds a mapping at the top level, not {type(data).__name__}")
    writer = _Writer(positions or {}, comments or [], ends or {}, blank_lines)
    writer.statements(data, "", FILE, 0)
    writer.flush_comments(None, 0)
    return "\n".join(writer.lines).strip("\n") + "\n" if writer.lines else ""


def quote(text: str) -> str:
    """A JSON string literal (non-ASCII kept readable; lone surrogates escaped, since files are UTF-8)."""
    quoted = json.dumps(text, ensure_ascii=False)
    if any("\ud800" <= c <= "\udfff" for c in quoted):
        quoted = "".join(c if not "\ud800" <= c <= "\udfff" else f"\\u{ord(c):04x}" for c in quoted)
    return quoted


def scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str) and value.startswith("=") and _bare_formula(value):
        return value
    return quote(value)


def _bare_formula(text: str) -> bool:
    """Whether ``text`` may be written as a bare ``=expression`` and read back as exactly this string."""
    if (
        len(text) < 2
        or text.startswith("==")
        or any(c in text for c in "\n\r\t\x0b\x0c#")
        or text[1:] != text[1:].strip()
    ):
        return False
    return _reads_back(text)


@lru_cache(maxsize=4096)
def _reads_back(text: str) -> bool:
    try:
        return load_npc_text(f"x: {text}\n").data == {"x": text}
    except LoadError:
        return False


def _name(text: str, words: frozenset[str] = frozenset()) -> str:
    """A key or label: bare when it is an identifier that means nothing special here, quoted otherwise."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", text) and text not in KEYWORDS and text not in words:
        return text
    return quote(text)


def _words(context: str) -> frozenset[str]:
    return {MODEL: MODEL_WORDS, COMPONENT: COMPONENT_WORDS}.get(context, frozenset())


class _Writer:
    def __init__(self, positions, comments, ends, blank_lines) -> None:
        self.lines: list[str] = []
        self.positions = positions
        self.pending = sorted(comments, key=lambda c: (c.line, c.column))
        self.ends = ends
        self.blank_lines = blank_lines
        self.anchors = _anchor_comments(self.pending, positions)

    # -- comments and blank lines --

    def start(self, pointers: list[str], depth: int) -> str:
        """Before a line for ``pointers``: the comments the source had above it; returns its trailing comment."""
        lines = [self.positions[p][0] for p in pointers if p in self.positions]
        if lines:
            self.flush_comments(max(lines), depth)
        trailing = ""
        for comment in [c for c in self.pending if not c.own_line and self.anchors.get(id(c)) in pointers]:
            trailing += "  " + comment.text
            self.pending.remove(comment)
        return trailing

    def flush_comments(self, before_line: int | None, depth: int) -> None:
        """Write the comments that stood above ``before_line`` (all that are left when None)."""
        while self.pending and (before_line is None or self.pending[0].line < before_line):
            comment = self.pending.pop(0)
            self.blank_line_if(comment.line)
            self.lines.append(INDENT * depth + comment.text)
        if before_line is not None:
            self.blank_line_if(before_line)

    def blank_line_if(self, line: int) -> None:
        """Keep one blank line where the source had one above ``line`` (never right after an opening bracket)."""
        if line - 1 in self.blank_lines and self.lines and self.lines[-1] and self.lines[-1][-1] not in "{([":
            self.lines.append("")

    def close(self, pointer: str, depth: int) -> None:
        """Comments the source had at the end of ``pointer``'s body stay inside it."""
        end = self.ends.get(pointer)
        if end:
            self.flush_comments(end[0], depth + 1)

    def has_comments(self, pointer: str) -> bool:
        """Whether a comment belongs strictly inside ``pointer`` (then it is not written on one line)."""
        prefix = pointer + "/"
        return any(self.anchors.get(id(c), "").startswith(prefix) for c in self.pending)

    # -- statements --

    def statements(self, data: dict, pointer: str, context: str, depth: int) -> None:
        previous_multiline = False
        for key, value in data.items():
            starts_at = len(self.lines)
            here = pointer_join(pointer, key)
            if context == FILE and key == "model" and isinstance(value, dict):
                self.model_block(value, here, depth)
            elif context == MODEL and key == "architecture" and _flattens(value):
                for index, (slot, component) in enumerate(value.items()):
                    self.slot(slot, component, pointer_join(here, slot), depth, [here] if index == 0 else [])
            elif context == MODEL and key == "losses" and isinstance(value, list) and value:
                for index, item in enumerate(value):
                    self.repeated("loss", item, pointer_join(here, index), depth, [here] if index == 0 else [])
            elif context == COMPONENT and key == "stage_params" and isinstance(value, list) and value:
                for index, row in enumerate(value):
                    self.repeated("stage", row, pointer_join(here, index), depth, [here] if index == 0 else [])
            elif context == MODEL and key == "postprocessor" and _has_params(value):
                rest = dict(list(value.items())[1:])
                self.call("postprocessor", None, value["params"], rest, here, depth, [], OBJECT)
            elif context == ARCHITECTURE and key in SLOTS:
                self.slot(key, value, here, depth, [])
            elif context == MODEL and key == "architecture" and isinstance(value, dict):
                self.block(_name(key), value, here, ARCHITECTURE, depth, [])
            else:
                self.entry(_name(key, _words(context)), value, here, depth)
            if context == FILE:
                previous_multiline = self.separate(starts_at, previous_multiline)

    def separate(self, starts_at: int, previous_multiline: bool) -> bool:
        """Top-level statements that take several lines stand apart: a blank line before and after them."""
        multiline = len([line for line in self.lines[starts_at:] if line]) > 1
        if starts_at and (multiline or previous_multiline) and "" not in self.lines[starts_at - 1 : starts_at + 1]:
            self.lines.insert(starts_at, "")
        return multiline

    def model_block(self, model: dict, pointer: str, depth: int) -> None:
        keys = list(model)
        head, rest = "model", model
        if keys[:2] == ["task", "name"] and all(isinstance(model[k], str) for k in keys[:2]):
            head = f"model {_name(model['name'])} : {_name(model['task'])}"
            rest = dict(list(model.items())[2:])
        elif keys[:1] == ["name"] and isinstance(model["name"], str):
            head = f"model {_name(model['name'])}"
            rest = dict(list(model.items())[1:])
        trailing = self.start([pointer], depth)
        self.lines.append(INDENT * depth + head + " {" + trailing)
        self.statements(rest, pointer, MODEL, depth + 1)
        self.close(pointer, depth)
        self.lines.append(INDENT * depth + "}")

    def slot(self, word: str, value: Any, pointer: str, depth: int, group: list[str]) -> None:
        """``backbone NAME(params) { stage(...) }``, ``full NAME(key: value, ...)``, or a plain value."""
        if isinstance(value, dict) and list(value)[:1] == ["name"] and isinstance(value["name"], str):
            rest = dict(list(value.items())[1:])
            if word == "full":
                self.call(word, value["name"], rest or None, {}, pointer, depth, group, OBJECT)
            elif list(rest)[:1] == ["params"] and _arguments_ok(rest["params"]):
                body = dict(list(rest.items())[1:])
                self.call(word, value["name"], rest["params"], body, pointer, depth, group, COMPONENT)
            else:
                self.call(word, value["name"], None, rest, pointer, depth, group, COMPONENT)
        elif isinstance(value, dict):
            self.block(word, value, pointer, OBJECT, depth, group)
        else:
            self.entry(word, value, pointer, depth, group)

    def repeated(self, word: str, item: Any, pointer: str, depth: int, group: list[str]) -> None:
        """One ``loss NAME(...)`` (a criterion and its settings) or one ``stage(...)`` row."""
        criterion = isinstance(item, dict) and list(item)[:1] == ["criterion"] and isinstance(item["criterion"], str)
        if word == "loss" and criterion:
            rest = dict(list(item.items())[1:])
            self.call(word, item["criterion"], rest or None, {}, pointer, depth, group, OBJECT)
        elif word == "stage" and _arguments_ok(item):
            self.call(word, None, item, {}, pointer, depth, group, OBJECT)
        elif isinstance(item, dict):
            self.block(word, item, pointer, OBJECT, depth, group)
        else:
            self.entry(word, item, pointer, depth, group)

    def call(self, word, label, arguments, body, pointer, depth, group, context) -> None:
        """``word [label](arguments) { body }``: the arguments on one line when they fit, else one per line."""
        trailing = self.start([*group, pointer], depth)
        head = word if label is None else f"{word} {_name(label)}"
        suffix = " {" if body else ""
        if arguments is None:
            self.lines.append(INDENT * depth + head + suffix + trailing)
        else:
            inner = (
                pointer_join(pointer, "params") if word in ("backbone", "neck", "head", "postprocessor") else pointer
            )
            self.arguments_lines(head, arguments, inner, depth, suffix, trailing)
        if body:
            self.statements(body, pointer, context, depth + 1)
            self.close(pointer, depth)
            self.lines.append(INDENT * depth + "}")

    def arguments_lines(self, head: str, arguments: dict | list, pointer: str, depth: int, suffix: str, trailing: str):
        inline = None if self.has_comments(pointer) else self.inline_arguments(arguments, pointer)
        if inline is not None and len(INDENT * depth + head + inline + suffix) <= WIDTH:
            self.lines.append(INDENT * depth + head + inline + suffix + trailing)
            return
        self.lines.append(INDENT * depth + head + "(" + trailing)
        items = arguments.items() if isinstance(arguments, dict) else enumerate(arguments)
        for key, value in items:
            here = pointer_join(pointer, key)
            prefix = f"{_name(key)}: " if isinstance(arguments, dict) else ""
            self.value_lines(prefix, value, here, depth + 1, ",", self.start([here], depth + 1))
        self.lines.append(INDENT * depth + ")" + suffix)

    def entry(self, name: str, value: Any, pointer: str, depth: int, group: list[str] | None = None) -> None:
        """``name: value``, or ``name { ... }`` for a mapping."""
        if isinstance(value, dict):
            self.block(name, value, pointer, OBJECT, depth, group or [])
        else:
            self.value_lines(f"{name}: ", value, pointer, depth, "", self.start([*(group or []), pointer], depth))

    def block(self, name: str, value: dict, pointer: str, context: str, depth: int, group: list[str]) -> None:
        """``name { ... }``: on one line when it fits (plain mappings only), else one statement per line."""
        trailing = self.start([*group, pointer], depth)
        inline = None if self.has_comments(pointer) else self.inline_object(value, pointer, context)
        if inline is not None and len(INDENT * depth + name + " " + inline) <= WIDTH:
            self.lines.append(INDENT * depth + name + " " + inline + trailing)
            return
        self.lines.append(INDENT * depth + name + " {" + trailing)
        self.statements(value, pointer, context, depth + 1)
        self.close(pointer, depth)
        self.lines.append(INDENT * depth + "}")

    # -- values --

    def value_lines(self, prefix: str, value: Any, pointer: str, depth: int, comma: str, trailing: str) -> None:
        """``prefix`` + ``value`` + ``comma``: on one line when it fits, else the value's items one per line."""
        inline = None if self.has_comments(pointer) else self.inline(value, pointer)
        if inline is not None and (len(INDENT * depth + prefix + inline + comma) <= WIDTH or not _breakable(value)):
            self.lines.append(INDENT * depth + prefix + inline + comma + trailing)
        elif isinstance(value, list):
            self.lines.append(INDENT * depth + prefix + "[" + trailing)
            for index, item in enumerate(value):
                here = pointer_join(pointer, index)
                self.value_lines("", item, here, depth + 1, ",", self.start([here], depth + 1))
            self.close(pointer, depth)
            self.lines.append(INDENT * depth + "]" + comma)
        else:
            self.lines.append(INDENT * depth + prefix + "{" + trailing)
            self.statements(value, pointer, OBJECT, depth + 1)
            self.close(pointer, depth)
            self.lines.append(INDENT * depth + "}" + comma)

    def inline(self, value: Any, pointer: str) -> str | None:
        """``value`` on one line, or None when a comment inside it needs lines of its own."""
        if isinstance(value, list):
            parts = [self.inline(item, pointer_join(pointer, i)) for i, item in enumerate(value)]
            return None if None in parts else "[" + ", ".join(parts) + "]"
        if isinstance(value, dict):
            return self.inline_object(value, pointer, OBJECT)
        return scalar(value)

    def inline_object(self, value: dict, pointer: str, context: str) -> str | None:
        if not value:
            return "{}"
        if context != OBJECT or self.has_comments(pointer):
            return None
        parts = []
        for key, item in value.items():
            here = pointer_join(pointer, key)
            inner = self.inline(item, here)
            separator = " " if isinstance(item, dict) else ": "
            parts.append(None if inner is None else f"{_name(key)}{separator}{inner}")
        return None if None in parts else "{ " + ", ".join(parts) + " }"

    def inline_arguments(self, arguments: dict | list, pointer: str) -> str | None:
        items = arguments.items() if isinstance(arguments, dict) else enumerate(arguments)
        names, parts = [], []
        for key, value in items:
            names.append(f"{_name(key)}: " if isinstance(arguments, dict) else "")
            parts.append(self.inline(value, pointer_join(pointer, key)))
        return None if None in parts else "(" + ", ".join(n + p for n, p in zip(names, parts)) + ")"


def _flattens(architecture: Any) -> bool:
    """``architecture`` written as ``backbone``/``neck``/``head``/``full`` statements in the model body."""
    return isinstance(architecture, dict) and bool(architecture) and all(k in SLOTS for k in architecture)


def _has_params(value: Any) -> bool:
    return isinstance(value, dict) and list(value)[:1] == ["params"] and _arguments_ok(value["params"])


def _arguments_ok(value: Any) -> bool:
    """What ``(...)`` can say: a mapping (named arguments) or a non-empty list (positional ones)."""
    return isinstance(value, dict) or (isinstance(value, list) and bool(value))


def _breakable(value: Any) -> bool:
    return isinstance(value, (list, dict)) and bool(value)


def _anchor_comments(comments: list[Comment], positions: dict[str, tuple[int, int]]) -> dict[int, str]:
    """Comment → the pointer it belongs to: a trailing comment to the outermost statement starting on its line,
    a comment on its own line to the next statement below it."""
    ordered = sorted(((at, len(p), p) for p, at in positions.items() if p), key=lambda t: (t[0], t[1]))
    anchors: dict[int, str] = {}
    for comment in comments:
        if comment.own_line:
            after = next((p for at, _, p in ordered if at[0] > comment.line), None)
        else:
            same = [(at[1], n, p) for at, n, p in ordered if at[0] == comment.line and at[1] < comment.column]
            after = min(same)[2] if same else None
        if after is not None:
            anchors[id(comment)] = after
    return anchors
