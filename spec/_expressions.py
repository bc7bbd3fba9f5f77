"""Expressions in specs: a top-level ``vars:`` section and ``"=..."`` values, resolved before validation.

``resolve_expressions(source)`` evaluates every string value that starts with ``=`` (in JSON, YAML and .npc
alike) against the ``vars`` section and returns a new :class:`Source` with the results in place and ``vars``
removed; positions are kept, so later diagnostics still point into the file. ``"==text"`` is the literal string
``"=text"``.

Expressions are parsed by the ``expression`` rule of ``npc.lark`` into a closed set of frozen node types and
evaluated by walking them — never ``eval``. Every result is bounded (magnitude, length, nesting, size), unknown
names and functions are errors naming the column inside the expression, and reference cycles among vars are
reported by name instead of looped on.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from lark import Lark, Transformer_NonRecursive, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from ._diagnostics import Diagnostic
from ._source import MAX_DEPTH, MAX_NODES, Source, pointer_join

__all__ = [
    "FUNCTIONS",
    "GRAPH_NAMES",
    "Deferred",
    "ExpressionError",
    "Inferred",
    "LateError",
    "LateValues",
    "evaluate",
    "parse_expression",
    "parser",
    "resolve_expressions",
]

# An expression is a formula in one value, not a program; longer text is almost surely a mistake or an attack.
MAX_EXPRESSION_CHARS = 1000
# Deeper nesting than this never helps a spec and would only exercise the recursion limit.
MAX_EXPRESSION_DEPTH = 32
# Every number an expression produces stays below this magnitude: channel counts and ratios are far smaller,
# and it keeps `10 ** 10 ** 10`-style input from eating memory or time.
MAX_MAGNITUDE = 1e12
# Strings and lists an expression builds stay small (a name, a stage list).
MAX_RESULT_SIZE = 10_000
# `round(x, n)` digits; beyond this the float cannot tell the difference anyway.
MAX_ROUND_DIGITS = 15

KEYWORDS = frozenset({"true", "false", "null", "if", "else", "and", "or", "not"})
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Components whose inferred values an expression may read (`=backbone.channels[-1]`), in data-flow order.
GRAPH_NAMES = ("backbone", "neck", "head", "full")


@dataclass(frozen=True)
class Inferred:
    """What the compiler inferred for one built component: ``channels``/``strides`` of the features it hands on
    (and, for a backbone, ``stage_channels``/``stage_strides`` of every stage). Read with ``backbone.channels``."""

    name: str
    values: dict[str, list[int]]


class Deferred(Exception):  # noqa: N818 - a signal, not an error: the value needs the compiler's inference
    """Raised while resolving before compilation when an expression reads a graph record (``backbone.…``)."""

    def __init__(self, name: str, line: int = 1, column: int = 1) -> None:
        self.name, self.line, self.column = name, line, column  # where in the expression it was read
        super().__init__(name)


# ---- grammar --------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def parser() -> Lark:
    """The npc LALR parser (both start rules); trees go through a non-recursive builder, so depth is no risk."""
    return Lark.open(
        "npc.lark",
        rel_to=__file__,
        parser="lalr",
        start=["file", "expression"],
        propagate_positions=True,
        maybe_placeholders=True,
    )


# ---- nodes ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Node:
    line: int  # 1-based, in the text that was parsed
    column: int


@dataclass(frozen=True, kw_only=True)
class Literal(Node):
    value: Any  # str, int, float, bool or None


@dataclass(frozen=True, kw_only=True)
class ListDisplay(Node):
    items: tuple[Expression, ...]


@dataclass(frozen=True, kw_only=True)
class Reference(Node):
    name: str


@dataclass(frozen=True, kw_only=True)
class Attribute(Node):
    """``value.name``: only on a graph record (``backbone.channels``); other attribute access is refused."""

    value: Expression
    name: str


@dataclass(frozen=True, kw_only=True)
class Subscript(Node):
    value: Expression
    index: Expression


@dataclass(frozen=True, kw_only=True)
class Call(Node):
    function: str
    arguments: tuple[Expression, ...]


@dataclass(frozen=True, kw_only=True)
class Unary(Node):
    op: str  # "-", "+", "not"
    operand: Expression


@dataclass(frozen=True, kw_only=True)
class Arithmetic(Node):
    """One precedence level, left to right: a + b - c is (("+", b), ("-", c)) after a."""

    first: Expression
    rest: tuple[tuple[str, Expression], ...]  # operators: + - * / // %


@dataclass(frozen=True, kw_only=True)
class Power(Node):
    base: Expression
    exponent: Expression


@dataclass(frozen=True, kw_only=True)
class Compare(Node):
    first: Expression
    rest: tuple[tuple[str, Expression], ...]  # a < b <= c: (("<", b), ("<=", c))


@dataclass(frozen=True, kw_only=True)
class Logical(Node):
    op: str  # "and", "or"
    operands: tuple[Expression, ...]


@dataclass(frozen=True, kw_only=True)
class Conditional(Node):
    test: Expression
    then: Expression
    otherwise: Expression


# Any of the node classes above; the set is closed: evaluate() dispatches on exactly these (see _RULES).
Expression = Node


def _at(meta_or_token: Any) -> dict[str, int]:
    return {"line": meta_or_token.line, "column": meta_or_token.column}


def decode_string(token: str) -> str:
    """A STRING or SINGLE_QUOTED token's value (JSON escapes, and ``\\'`` in single quotes)."""
    if token.startswith("'"):  # rewrite as a JSON string: \' becomes ', a bare " gets escaped
        body = re.sub(r'\\.|"', lambda m: {"\\'": "'", '"': '\\"'}.get(m.group(), m.group()), token[1:-1])
        token = f'"{body}"'
    return json.loads(token)


def number_value(text: str) -> int | float:
    return float(text) if any(c in text for c in ".eE") else int(text)


def _pairs(items: list) -> tuple[tuple[str, Expression], ...]:
    """[op, operand, op, operand, ...] → ((op, operand), ...)."""
    return tuple((str(items[i]), items[i + 1]) for i in range(0, len(items), 2))


class ExpressionBuilder(Transformer_NonRecursive):
    """Parse-tree rules of the ``expression`` section → :data:`Expression` nodes (one method per rule)."""

    @v_args(meta=True)
    def conditional(self, meta, children):
        then, test, otherwise = children
        return Conditional(test=test, then=then, otherwise=otherwise, **_at(meta))

    @v_args(meta=True)
    def or_test(self, meta, children):
        return Logical(op="or", operands=tuple(children), **_at(meta))

    @v_args(meta=True)
    def and_test(self, meta, children):
        return Logical(op="and", operands=tuple(children), **_at(meta))

    @v_args(meta=True)
    def negation(self, meta, children):
        return Unary(op="not", operand=children[0], **_at(meta))

    @v_args(meta=True)
    def comparison(self, meta, children):
        return Compare(first=children[0], rest=_pairs(children[1:]), **_at(meta))

    @v_args(meta=True)
    def sum(self, meta, children):
        return Arithmetic(first=children[0], rest=_pairs(children[1:]), **_at(meta))

    @v_args(meta=True)
    def product(self, meta, children):
        return Arithmetic(first=children[0], rest=_pairs(children[1:]), **_at(meta))

    @v_args(meta=True)
    def unary(self, meta, children):
        op, operand = children
        return Unary(op=str(op), operand=operand, **_at(meta))

    @v_args(meta=True)
    def power(self, meta, children):
        base, exponent = children
        return Power(base=base, exponent=exponent, **_at(meta))

    @v_args(meta=True)
    def attribute(self, meta, children):
        value, name = children
        return Attribute(value=value, name=str(name), **_at(meta))

    @v_args(meta=True)
    def subscript(self, meta, children):
        value, index = children
        return Subscript(value=value, index=index, **_at(meta))

    @v_args(meta=True)
    def call(self, meta, children):
        name, *arguments = children
        return Call(function=str(name), arguments=tuple(a for a in arguments if a is not None), **_at(meta))

    @v_args(meta=True)
    def list_display(self, meta, children):
        return ListDisplay(items=tuple(c for c in children if c is not None), **_at(meta))

    @v_args(meta=True)
    def reference(self, meta, children):
        return Reference(name=str(children[0]), **_at(meta))

    @v_args(meta=True)
    def numeral(self, meta, children):
        return Literal(value=number_value(children[0]), **_at(meta))

    @v_args(meta=True)
    def text(self, meta, children):
        return Literal(value=decode_string(children[0]), **_at(meta))

    # Shared with the document section: a .npc value `true` and an expression `true` are the same literal.
    @v_args(meta=True)
    def true(self, meta, children):
        return Literal(value=True, **_at(meta))

    @v_args(meta=True)
    def false(self, meta, children):
        return Literal(value=False, **_at(meta))

    @v_args(meta=True)
    def null(self, meta, children):
        return Literal(value=None, **_at(meta))


# ---- syntax errors --------------------------------------------------------------------------------------


class ExpressionError(Exception):
    """A problem in one expression, at a 1-based line/column of the expression text."""

    def __init__(self, message: str, line: int = 1, column: int = 1) -> None:
        self.message, self.line, self.column = message, line, column
        super().__init__(message)


# Named syntax errors, each recognised from a catalogue of bad examples (lark's match_examples: same parser
# state, and the same token where possible). General situations come first; token-specific ones refine them.
_SYNTAX_CATALOGUE: dict[str, list[str]] = {
    "expected a value": [
        "1 +",
        "1 *",
        "1 + +",
        "-",
        "a and",
        "not",
        "1 <",
        "1 **",
        "[",
        "[1,",
        ",",
        "max(,)",
        "a[]",
        "a if b else",
    ],
    "missing ',' between items": ["[1 2]", "max(1 2)", "[a b]", "f(a b)", "[1 'a']"],
    "missing operator between values": ["a b", "1 2", "[1] 2", "a 'b'", 'a "b"', "a true", "a [1]]", "(1 2)", "(a b"],
    "unclosed '('": ["(1 + 2", "max(1, 2", "round(a", "max(", "(", "max(1,"],
    "unclosed '['": ["[1, 2", "a[0", "[1"],
    "'if' needs an 'else'": ["a if b", "a if b > 1", "a if b c"],
    "unexpected ')'": ["1)", "(1))", "a)", ")"],
    "unexpected ']'": ["1]", "a]", "]"],
    "unexpected ','": ["1, 2", "a,"],
    "use '==' to compare": ["a = 1", "(a = 1)"],
    "an object cannot be written in an expression; put it in vars and refer to it by name": ["{", "a + {"],
    "a name must follow '.'": ["a.", "a.1", "a.(b)"],
    "only a function can be called, by its name: round(x), max(a, b)": ["a.b(1)", "(a)(1)", "a[0](1)", "1(2)"],
}
# Characters people bring from other languages, with what to write instead.
_CHARACTER_HINTS = {
    "&": "use 'and'",
    "|": "use 'or'",
    "!": "use 'not' (or '!=' to compare)",
    "?": "write 'a if condition else b'",
    "`": "strings are quoted with ' or \"",
    '"': "unterminated string",
    "'": "unterminated string",
    "^": "use '**' for powers",
    ";": "one expression per value",
}


def parse_expression(text: str) -> Expression:
    """Parse the text after ``=``; raises :class:`ExpressionError` with a position and a named reason."""
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ExpressionError(f"expression is {len(text)} characters long; the limit is {MAX_EXPRESSION_CHARS}")
    if not text.strip():
        raise ExpressionError("empty expression: write a value after '=' (or '==' for a string starting with '=')")
    try:
        tree = parser().parse(text, start="expression")
    except UnexpectedInput as exc:
        line, column = exc.line or 1, exc.column or 1
        if getattr(getattr(exc, "token", None), "type", None) == "$END":  # point just past the last character
            lines = text.rstrip().splitlines() or [""]
            line, column = len(lines), len(lines[-1]) + 1
        raise ExpressionError(_syntax_message(exc, text), line, column) from None
    return ExpressionBuilder().transform(tree)


def _syntax_message(exc: UnexpectedInput, text: str) -> str:
    if isinstance(exc, UnexpectedCharacters):
        char = text[exc.pos_in_stream] if exc.pos_in_stream < len(text) else ""
        hint = _CHARACTER_HINTS.get(char)
        return f"unexpected character {char!r}" + (f"; {hint}" if hint else "")
    label = match_examples(exc, "expression", _SYNTAX_CATALOGUE)
    if label:
        return label
    if isinstance(exc, UnexpectedEOF):
        return "incomplete expression"
    if isinstance(exc, UnexpectedToken):
        return f"unexpected {str(exc.token)!r}" if exc.token.type != "$END" else "incomplete expression"
    return "invalid expression"


def match_examples(exc: UnexpectedInput, start: str, catalogue: dict[Any, list[str]]) -> Any:
    """The catalogue entry whose bad example fails like ``exc``: in the same parser state, preferably on the same
    token (then the same kind of token). As lark's ``UnexpectedInput.match_examples``, except that the state is
    compared without the depth of the parse stack, so one example also covers the same mistake nested deeper.
    """
    state = _position(exc)
    token = getattr(exc, "token", None)
    fallback = by_type = None
    for entry, examples in catalogue.items():
        for example in examples:
            try:
                parser().parse(example, start=start)
            except UnexpectedInput as sample:
                if _position(sample) != state or state is None:
                    continue
                sample_token = getattr(sample, "token", None)
                if token is not None and sample_token is not None and sample_token == token:
                    return entry
                if token is not None and sample_token is not None and sample_token.type == token.type:
                    by_type = by_type or entry
                fallback = fallback or entry
    return by_type or fallback


def _position(exc: UnexpectedInput) -> Any:
    state = getattr(exc, "state", None)
    return getattr(state, "position", state)


# ---- evaluation -----------------------------------------------------------------------------------------

Lookup = Callable[[str, Reference], Any]


def evaluate(node: Expression, lookup: Lookup, depth: int = 0) -> Any:
    """The value of ``node``; names are resolved through ``lookup(name, node)``."""
    if depth > MAX_EXPRESSION_DEPTH:
        raise ExpressionError(f"expression nested deeper than {MAX_EXPRESSION_DEPTH} levels", node.line, node.column)
    rule = _RULES.get(type(node))
    if rule is None:  # the node set is closed; anything else is a bug, not user input
        raise TypeError(f"not an expression node: {type(node).__name__}")
    return rule(node, lookup, depth + 1)


def _literal(node: Literal, lookup: Lookup, depth: int) -> Any:
    if isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return _bounded(node.value, node)
    return node.value


def _list(node: ListDisplay, lookup: Lookup, depth: int) -> list:
    return _sized([evaluate(item, lookup, depth) for item in node.items], node)


def _reference(node: Reference, lookup: Lookup, depth: int) -> Any:
    return lookup(node.name, node)


def _attribute(node: Attribute, lookup: Lookup, depth: int) -> Any:
    root = node.value
    while isinstance(root, (Attribute, Subscript)):
        root = root.value
    if not (isinstance(root, Reference) and root.name in GRAPH_NAMES):  # attributes exist on graph records only
        where = f"{_describe(node.value)}.{node.name}"
        raise ExpressionError(f"attribute access ({where}) is not supported", node.line, node.column)
    record = evaluate(node.value, lookup, depth)
    if not isinstance(record, Inferred):
        raise ExpressionError(f"{_describe(node.value)} has no attribute {node.name!r}", node.line, node.column)
    if node.name not in record.values:
        known = ", ".join(f"{record.name}.{key}" for key in record.values)
        raise ExpressionError(
            f"{record.name} has no inferred value {node.name!r} (known: {known})", node.line, node.column
        )
    return record.values[node.name]


def _describe(node: Expression) -> str:
    if isinstance(node, Reference):
        return node.name
    if isinstance(node, Attribute):
        return f"{_describe(node.value)}.{node.name}"
    return "(...)"


def _subscript(node: Subscript, lookup: Lookup, depth: int) -> Any:
    value, index = evaluate(node.value, lookup, depth), evaluate(node.index, lookup, depth)
    if isinstance(value, dict):
        if not isinstance(index, str) or index not in value:
            raise ExpressionError(f"no key {index!r} (keys: {', '.join(map(str, value))})", node.line, node.column)
        return value[index]
    if not isinstance(value, (list, str)):
        raise ExpressionError(f"cannot index {_type_name(value)}", node.line, node.column)
    if not _is_int(index):
        raise ExpressionError(f"index must be an integer, got {_type_name(index)}", node.index.line, node.index.column)
    if not -len(value) <= index < len(value):
        raise ExpressionError(f"index {index} out of range (length {len(value)})", node.index.line, node.index.column)
    return value[index]


def _unary(node: Unary, lookup: Lookup, depth: int) -> Any:
    operand = evaluate(node.operand, lookup, depth)
    if node.op == "not":
        return not _boolean(operand, node.operand, "'not'")
    _number(operand, node.operand, f"unary '{node.op}'")
    return -operand if node.op == "-" else operand


def _arithmetic(node: Arithmetic, lookup: Lookup, depth: int) -> Any:
    left = evaluate(node.first, lookup, depth)
    left_node: Expression = node.first
    for op, right_node in node.rest:
        right = evaluate(right_node, lookup, depth)
        left = _apply(op, left, right, left_node, right_node)
        left_node = node
    return left


def _apply(op: str, left: Any, right: Any, left_node: Expression, right_node: Expression) -> Any:
    if op == "+" and isinstance(left, str) and isinstance(right, str):
        return _sized(left + right, right_node)
    if op == "+" and isinstance(left, list) and isinstance(right, list):
        return _sized(left + right, right_node)
    _number(left, left_node, f"'{op}'")
    _number(right, right_node, f"'{op}'")
    if op in ("/", "//", "%") and right == 0:
        raise ExpressionError("division by zero", right_node.line, right_node.column)
    return _bounded(_ARITHMETIC[op](left, right), right_node)


_ARITHMETIC: dict[str, Callable[[Any, Any], Any]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
    "//": lambda a, b: a // b,
    "%": lambda a, b: a % b,
}


def _power(node: Power, lookup: Lookup, depth: int) -> int | float:
    """``base ** exponent``, refusing before computing anything that would leave the magnitude limit."""
    base, exponent = evaluate(node.base, lookup, depth), evaluate(node.exponent, lookup, depth)
    _number(base, node.base, "'**'")
    _number(exponent, node.exponent, "'**'")
    if base == 0 and exponent < 0:
        raise ExpressionError("division by zero (0 raised to a negative power)", node.line, node.column)
    if base < 0 and not float(exponent).is_integer():
        raise ExpressionError("a negative number to a fractional power is not a real number", node.line, node.column)
    if abs(base) not in (0, 1) and exponent * math.log10(abs(base)) >= math.log10(MAX_MAGNITUDE):
        raise ExpressionError(f"result of '**' would exceed {MAX_MAGNITUDE:g}", node.line, node.column)
    try:
        result = base**exponent
    except (OverflowError, ZeroDivisionError):
        raise ExpressionError(f"result of '**' would exceed {MAX_MAGNITUDE:g}", node.line, node.column) from None
    return _bounded(result, node)


def _compare(node: Compare, lookup: Lookup, depth: int) -> bool:
    left = evaluate(node.first, lookup, depth)
    for op, operand in node.rest:
        right = evaluate(operand, lookup, depth)
        if op in ("==", "!="):
            holds = _equal(left, right) == (op == "==")
        else:
            holds = _order(left, right, op, operand)
        if not holds:
            return False
        left = right
    return True


def _equal(a: Any, b: Any) -> bool:
    """JSON equality: true is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return a == b


def _order(a: Any, b: Any, op: str, node: Expression) -> bool:
    comparable = (_is_number(a) and _is_number(b)) or (isinstance(a, str) and isinstance(b, str))
    if not comparable:
        raise ExpressionError(f"cannot compare {_type_name(a)} {op} {_type_name(b)}", node.line, node.column)
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def _logical(node: Logical, lookup: Lookup, depth: int) -> bool:
    stop = node.op == "or"  # or stops at the first true operand, and at the first false one
    for operand in node.operands:
        if _boolean(evaluate(operand, lookup, depth), operand, f"'{node.op}'") == stop:
            return stop
    return not stop


def _conditional(node: Conditional, lookup: Lookup, depth: int) -> Any:
    if _boolean(evaluate(node.test, lookup, depth), node.test, "'if'"):
        return evaluate(node.then, lookup, depth)
    return evaluate(node.otherwise, lookup, depth)


def _call(node: Call, lookup: Lookup, depth: int) -> Any:
    function = FUNCTIONS.get(node.function)
    if function is None:
        hint = difflib.get_close_matches(node.function, list(FUNCTIONS), n=1)
        message = f"unknown function {node.function!r}"
        message += f"; did you mean {hint[0]!r}?" if hint else f" (functions: {', '.join(sorted(FUNCTIONS))})"
        raise ExpressionError(message, node.line, node.column)
    arguments = [evaluate(argument, lookup, depth) for argument in node.arguments]
    try:
        return _bounded(function(*arguments), node)
    except _ArgumentError as exc:
        raise ExpressionError(f"{node.function}(): {exc}", node.line, node.column) from None


_RULES: dict[type, Callable[[Any, Lookup, int], Any]] = {
    Literal: _literal,
    ListDisplay: _list,
    Reference: _reference,
    Attribute: _attribute,
    Subscript: _subscript,
    Unary: _unary,
    Arithmetic: _arithmetic,
    Power: _power,
    Compare: _compare,
    Logical: _logical,
    Conditional: _conditional,
    Call: _call,
}


# ---- functions: pure, on numbers and lists --------------------------------------------------------------


class _ArgumentError(Exception):
    pass


def _numbers(args: tuple, *, empty_ok: bool = False) -> list[int | float]:
    """``f(a, b, c)`` or ``f([a, b, c])``: the numbers, checked."""
    values = list(args[0]) if len(args) == 1 and isinstance(args[0], list) else list(args)
    if not values and not empty_ok:
        raise _ArgumentError("needs at least one number")
    for value in values:
        if not _is_number(value):
            raise _ArgumentError(f"expected numbers, got {_type_name(value)}")
    return values


def _one_number(args: tuple) -> int | float:
    if len(args) != 1:
        raise _ArgumentError(f"takes one argument, got {len(args)}")
    if not _is_number(args[0]):
        raise _ArgumentError(f"expected a number, got {_type_name(args[0])}")
    return args[0]


def _round(*args: Any) -> int | float:
    """``round(x)`` → an integer; ``round(x, digits)`` → a number with that many decimals."""
    if len(args) == 2:
        if not _is_int(args[1]) or abs(args[1]) > MAX_ROUND_DIGITS:
            raise _ArgumentError(f"digits must be an integer within ±{MAX_ROUND_DIGITS}")
        return round(_one_number(args[:1]), args[1])
    if len(args) > 2:
        raise _ArgumentError(f"takes a number and optional digits, got {len(args)} arguments")
    return round(_one_number(args))


def _length(*args: Any) -> int:
    if len(args) != 1 or not isinstance(args[0], (list, str, dict)):
        raise _ArgumentError("takes one list or string")
    return len(args[0])


# Python's semantics (round half to even, as NetsPresso Trainer's own `round(...)` scaling does).
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": lambda *args: abs(_one_number(args)),
    "ceil": lambda *args: math.ceil(_one_number(args)),
    "float": lambda *args: float(_one_number(args)),
    "floor": lambda *args: math.floor(_one_number(args)),
    "int": lambda *args: int(_one_number(args)),
    "len": _length,
    "max": lambda *args: max(_numbers(args)),
    "min": lambda *args: min(_numbers(args)),
    "round": _round,
    "sum": lambda *args: sum(_numbers(args, empty_ok=True)),
}


# ---- value guards ---------------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _type_name(value: Any) -> str:
    if isinstance(value, Inferred):
        return f"the {value.name} record (use {', '.join(f'{value.name}.{key}' for key in value.values)})"
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "list", dict: "object"}.get(
        type(value), "null" if value is None else type(value).__name__
    )


def _number(value: Any, node: Expression, where: str) -> None:
    if not _is_number(value):
        raise ExpressionError(f"{where} needs numbers, got {_type_name(value)}", node.line, node.column)


def _boolean(value: Any, node: Expression, where: str) -> bool:
    if not isinstance(value, bool):
        raise ExpressionError(
            f"{where} needs true or false, got {_type_name(value)}; compare explicitly (e.g. x > 0)",
            node.line,
            node.column,
        )
    return value


def _bounded(value: Any, node: Expression) -> Any:
    if _is_number(value):
        if isinstance(value, float) and not math.isfinite(value):
            raise ExpressionError("result is not a finite number", node.line, node.column)
        if abs(value) >= MAX_MAGNITUDE:
            raise ExpressionError(f"number {value:g} exceeds the limit of {MAX_MAGNITUDE:g}", node.line, node.column)
    return value


def _sized(value: str | list, node: Expression) -> str | list:
    if len(value) > MAX_RESULT_SIZE:
        raise ExpressionError(f"result longer than {MAX_RESULT_SIZE} items", node.line, node.column)
    return value


def value_size(value: Any, limit: int) -> int:
    """Number of values in ``value`` (containers count once each), counting no further than ``limit + 1``."""
    count, stack = 0, [value]
    while stack and count <= limit:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return count


def value_depth(value: Any) -> int:
    depth, stack = 0, [(value, 0)]
    while stack:
        item, level = stack.pop()
        depth = max(depth, level)
        if depth > MAX_DEPTH:
            break
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((child, level + 1) for child in children)
    return depth


# ---- resolution over a document -------------------------------------------------------------------------


class _Failed(Exception):
    """An expression failed and its diagnostic is already recorded; its users fail silently."""


def resolve_expressions(source: Source) -> tuple[Source, list[Diagnostic]]:
    """``source`` with every ``"=..."`` value evaluated and ``vars`` removed, plus one diagnostic per problem.

    A value that reads what the compiler infers (``=backbone.channels[-1]``) cannot be known yet: it keeps its text
    and is listed in the returned source's ``late`` (:class:`LateValues`), which the compiler resolves while it
    walks the graph, just before it builds the component that holds the value.
    """
    if not _needs_resolution(source.data):
        return source, []
    resolver = _Resolver(source)
    data = resolver.run()
    positions = {p: at for p, at in source.positions.items() if p != "/vars" and not p.startswith("/vars/")}
    diagnostics = sorted(resolver.diagnostics, key=lambda d: (d.line or 0, d.col or 0, d.pointer))
    late = LateValues(resolver, data) if resolver.late else None
    return Source(data, source.path, positions, late=late), diagnostics


def _needs_resolution(data: Any) -> bool:
    if isinstance(data, dict) and "vars" in data:
        return True
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, str) and item.startswith("="):
            return True
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


# Where a value may read inferred values: the params of a component that comes after the one it reads.
LATE_SLOT = re.compile(r"/model/architecture/(backbone|neck|head|full)/(params|stage_params)/.+")


class _Resolver:
    def __init__(self, source: Source) -> None:
        self.source = source
        self.diagnostics: list[Diagnostic] = []
        self.definitions: dict[str, Any] = {}
        self.values: dict[str, Any] = {}
        self.failed: set[str] = set()
        self.late_vars: dict[str, str] = {}  # vars that read inferred values -> the first graph name they read
        self.late: dict[str, str] = {}  # pointer -> expression text of document values left to the compiler
        self.active: list[str] = []  # vars being resolved, outermost first: a cycle is a repeat in here
        self.produced = 0  # values created by expressions so far, against MAX_NODES

    def run(self) -> Any:
        data = self.source.data
        if not isinstance(data, dict):
            return self._value(data, "")
        self._read_vars(data.get("vars", {}))
        for name in self.definitions:
            try:
                self._lookup_var(name)
            except (_Failed, Deferred):
                pass
        out = {}
        for key, value in data.items():
            if key != "vars":
                out[key] = self._value(value, pointer_join("", key))
        return out

    def _read_vars(self, section: Any) -> None:
        if section is None:
            return
        if not isinstance(section, dict):
            self._report("/vars", "vars must be a mapping of names to values")
            return
        for name, value in section.items():
            if not IDENTIFIER.fullmatch(name) or name in KEYWORDS:
                self._report(
                    pointer_join("/vars", name),
                    f"variable name {name!r} is not usable in expressions: use letters, digits and _ "
                    f"(not starting with a digit, not one of {', '.join(sorted(KEYWORDS))})",
                )
                continue
            if name in GRAPH_NAMES:
                self._report(
                    pointer_join("/vars", name),
                    f"variable name {name!r} is taken: `{name}.channels` etc. read what the compiler infers",
                )
                continue
            self.definitions[name] = value

    def _value(self, value: Any, pointer: str, *, late_ok: bool = True) -> Any:
        """``value`` with its expressions evaluated; a failed expression keeps its text (and is reported), and so
        does one that reads inferred values (listed in ``self.late``; in a var, :class:`Deferred` propagates)."""
        if isinstance(value, dict):
            return {key: self._value(item, pointer_join(pointer, key), late_ok=late_ok) for key, item in value.items()}
        if isinstance(value, list):
            return [self._value(item, pointer_join(pointer, i), late_ok=late_ok) for i, item in enumerate(value)]
        if isinstance(value, str) and value.startswith("=="):
            return value[1:]
        if isinstance(value, str) and value.startswith("="):
            try:
                return self._evaluate(value, pointer)
            except _Failed:
                return value
            except Deferred as needed:
                if not late_ok:
                    raise
                self._defer(value, pointer, needed)
                return value
        return value

    def _defer(self, text: str, pointer: str, needed: Deferred) -> None:
        """Leave ``text`` to the compiler, if it sits where the value it reads is known by then."""
        slot = LATE_SLOT.fullmatch(pointer)
        name = needed.name
        if slot is None:
            message = (
                f"{name}.… is inferred by the compiler: such values can only be used in the params or "
                "stage_params of a later component (a neck's or head's params)"
            )
        elif GRAPH_NAMES.index(name) >= GRAPH_NAMES.index(slot.group(1)) or "full" in (name, slot.group(1)):
            message = _not_known_yet(name, slot.group(1))
        else:
            self.late[pointer] = text
            return
        self._report(pointer, _locate_in(ExpressionError(message, needed.line, needed.column), text))

    def _strict_value(self, value: Any, pointer: str) -> Any:
        """Like :meth:`_value`, but a failure inside raises :class:`_Failed` (for vars, whose users then fail)."""
        before = len(self.diagnostics)
        result = self._value(value, pointer, late_ok=False)
        if len(self.diagnostics) > before:
            raise _Failed
        return result

    def _evaluate(self, text: str, pointer: str) -> Any:
        try:
            node = parse_expression(text[1:])
            result = evaluate(node, lambda name, ref: self._reference(name, ref))
            self._check_result(result, pointer)
        except ExpressionError as exc:
            self._report(pointer, _locate_in(exc, text))
            raise _Failed from None
        return _copy(result)  # results may share a var's lists (or one list twice); the document gets its own

    def _reference(self, name: str, node: Reference) -> Any:
        if name in GRAPH_NAMES:
            raise Deferred(name, node.line, node.column)
        if name not in self.definitions:
            raise ExpressionError(_unknown_name(name, list(self.definitions)), node.line, node.column)
        try:
            return self._lookup_var(name)
        except Deferred as needed:  # a var that reads inferred values: point at its use here
            raise Deferred(needed.name, node.line, node.column) from None

    def _lookup_var(self, name: str) -> Any:
        if name in self.values:
            return self.values[name]
        if name in self.failed:
            raise _Failed
        if name in self.late_vars:
            raise Deferred(self.late_vars[name])
        if name in self.active:
            cycle = self.active[self.active.index(name) :] + [name]
            self.failed.update(cycle)
            self._report(pointer_join("/vars", cycle[0]), f"reference cycle: {' -> '.join(cycle)}")
            raise _Failed
        self.active.append(name)
        try:
            value = self._strict_value(self.definitions[name], pointer_join("/vars", name))
        except _Failed:
            self.failed.add(name)
            raise
        except Deferred as needed:
            self.late_vars[name] = needed.name
            raise
        finally:
            self.active.pop()
        self.values[name] = value
        return value

    def _check_result(self, result: Any, pointer: str) -> None:
        if isinstance(result, Inferred):
            raise ExpressionError(f"{_type_name(result)} is not a value itself")
        size = value_size(result, MAX_RESULT_SIZE)
        if size > MAX_RESULT_SIZE:
            raise ExpressionError(f"result has more than {MAX_RESULT_SIZE} values")
        self.produced += size
        if self.produced > MAX_NODES:
            raise ExpressionError(f"expressions produce more than {MAX_NODES} values in all")
        if pointer.count("/") + value_depth(result) > MAX_DEPTH:
            raise ExpressionError(f"result nests deeper than {MAX_DEPTH} levels in the document")

    def _report(self, pointer: str, message: str) -> None:
        line, col = self.source.position(pointer) or (None, None)
        self.diagnostics.append(Diagnostic(self.source.path, pointer, message, line, col, "expression"))


def _not_known_yet(needed: str, holder: str) -> str:
    if "full" in (needed, holder):
        return "a full model has no inferred values to read, and its params cannot read any"
    if needed == holder:
        return f"reference cycle: the {holder}'s params cannot read {needed}.…, which the compiler infers from them"
    return (
        f"{needed}.… is not known when the {holder} is built: values flow input → backbone → neck → head, "
        f"so a {holder} can only read what comes before it"
    )


def _shown_value(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


class LateValues:
    """The document values that read inferred values, resolved by the compiler component by component.

    The compiler calls :meth:`resolve` just before it builds the component at ``holder`` (a JSON pointer such as
    ``/model/architecture/neck``), with the :class:`Inferred` records of the components built so far; the result
    is checked against the schema and the component's own rules before the compiler uses it.
    """

    def __init__(self, resolver: _Resolver, document: Any) -> None:
        self._resolver = resolver
        self._document = document
        self.texts: dict[str, str] = dict(resolver.late)  # pointer -> expression text
        self.resolved: dict[str, Any] = {}

    @property
    def pointers(self) -> list[str]:
        return list(self.texts)

    def under(self, holder: str) -> list[str]:
        return [pointer for pointer in self.texts if pointer.startswith(holder + "/")]

    def evaluate(self, holder: str, inferred: dict[str, dict[str, list[int]]]) -> dict[str, Any]:
        """pointer -> value for every late value under ``holder``; raises :class:`LateError` on the first failure."""
        records = {name: Inferred(name, dict(values)) for name, values in inferred.items()}
        architecture = self._document["model"]["architecture"]
        present = {kind for kind in GRAPH_NAMES if isinstance(architecture.get(kind), dict)}
        out = {}
        for pointer in self.under(holder):
            text = self.texts[pointer]
            scope = _LateScope(self._resolver, records, holder, present)
            try:
                node = parse_expression(text[1:])
                result = evaluate(node, scope.lookup)
                self._resolver._check_result(result, pointer)
            except ExpressionError as exc:
                raise LateError(pointer, _locate_in(exc, text)) from None
            out[pointer] = _copy(result)
        self.resolved.update(out)
        return out

    def resolve(self, holder: str, inferred: dict[str, dict[str, list[int]]]) -> dict[str, Any]:
        """:meth:`evaluate`, then the values are checked as if written in the spec (schema, the component's rules);
        the compiler's entry point. Problems raise the compiler's ``CompileError`` at the value's pointer."""
        from ..compiler import CompileError  # the compiler calls this; it never imports the spec package itself
        from ._validate import late_problems

        try:
            values = self.evaluate(holder, inferred)
        except LateError as exc:
            raise CompileError(exc.pointer, exc.message) from None
        pending = [pointer for pointer in self.texts if pointer not in self.resolved]
        for pointer, message in late_problems(self.document(), holder, list(values), pending):
            origin = next((p for p in values if pointer == p or pointer.startswith(p + "/")), None)
            if origin is not None:
                message += f" ({self.texts[origin]} gave {_shown_value(values[origin])})"
            raise CompileError(pointer, message)
        return values

    def document(self) -> Any:
        """The document with every value resolved so far in place (for validation)."""
        document = _copy(self._document)
        for pointer, value in self.resolved.items():
            _set(document, pointer, value)
        return document


class LateError(Exception):
    def __init__(self, pointer: str, message: str) -> None:
        self.pointer, self.message = pointer, message
        super().__init__(f"{pointer}: {message}")


class _LateScope:
    """Names during late evaluation: graph records of the components built so far, and vars (late ones are
    evaluated again here, with the records; cycles among them are named, never looped on)."""

    def __init__(self, resolver: _Resolver, records: dict[str, Inferred], holder: str, present: set[str]) -> None:
        self.resolver, self.records, self.holder = resolver, records, holder.rsplit("/", 1)[-1]
        self.present = present  # the components the spec has
        self.values: dict[str, Any] = {}
        self.active: list[str] = []

    def lookup(self, name: str, node: Reference) -> Any:
        if name in GRAPH_NAMES:
            if name not in self.present:
                raise ExpressionError(f"this spec has no {name}", node.line, node.column)
            if name not in self.records:
                raise ExpressionError(_not_known_yet(name, self.holder), node.line, node.column)
            return self.records[name]
        resolver = self.resolver
        if name in resolver.values:
            return resolver.values[name]
        if name not in resolver.late_vars:  # unknown or failed vars were reported before the compiler ran
            raise ExpressionError(_unknown_name(name, list(resolver.definitions)), node.line, node.column)
        if name in self.values:
            return self.values[name]
        if name in self.active:
            cycle = self.active[self.active.index(name) :] + [name]
            raise ExpressionError(f"reference cycle: {' -> '.join(cycle)}", node.line, node.column)
        self.active.append(name)
        try:
            value = self._value(resolver.definitions[name], name)
        except _InVar as exc:
            if self.active != [name]:
                raise
            raise ExpressionError(exc.message, node.line, node.column) from None  # at the outermost use
        finally:
            self.active.pop()
        self.values[name] = value
        return value

    def _value(self, value: Any, var: str) -> Any:
        if isinstance(value, dict):
            return {key: self._value(item, var) for key, item in value.items()}
        if isinstance(value, list):
            return [self._value(item, var) for item in value]
        if isinstance(value, str) and value.startswith("=="):
            return value[1:]
        if isinstance(value, str) and value.startswith("="):
            try:
                return evaluate(parse_expression(value[1:]), self.lookup)
            except _InVar:
                raise
            except ExpressionError as exc:  # located in the var's own text, then reported where the var is used
                raise _InVar(f"in var {var!r}: {_locate_in(exc, value)}") from None
        return value


class _InVar(ExpressionError):
    """A late var failed; its message already says where inside the var."""


def _set(document: Any, pointer: str, value: Any) -> None:
    tokens = [token.replace("~1", "/").replace("~0", "~") for token in pointer.split("/")[1:]]
    target = document
    for token in tokens[:-1]:
        target = target[int(token)] if isinstance(target, list) else target[token]
    if isinstance(target, list):
        target[int(tokens[-1])] = value
    else:
        target[tokens[-1]] = value


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value


def _unknown_name(name: str, known: list[str]) -> str:
    constants = {"True": "true", "False": "false", "None": "null"}
    if name in constants:
        return f"unknown variable {name!r}; write {constants[name]}"
    message = f"unknown variable {name!r}"
    hint = difflib.get_close_matches(name, known, n=1)
    if hint:
        return f"{message}; did you mean {hint[0]!r}?"
    if name in FUNCTIONS:
        return f"{message}; {name} is a function: call it, {name}(...)"
    return message + (f" (vars: {', '.join(known)})" if known else " (there is no vars section)")


# Long expressions are shown as an excerpt around the column the message is about.
_SHOWN_CHARS = 60


def _locate_in(exc: ExpressionError, text: str) -> str:
    """The message with where it happened: ``... at column 5 of "=a + * b"`` (columns count the ``=``)."""
    column = exc.column + 1 if exc.line == 1 else exc.column
    where = f"column {column}" if exc.line == 1 else f"line {exc.line}, column {column}"
    shown = text
    if len(text) > _SHOWN_CHARS:
        start = max(0, min(column - _SHOWN_CHARS // 2, len(text) - _SHOWN_CHARS))
        end = start + _SHOWN_CHARS
        shown = ("..." if start else "") + text[start:end] + ("..." if end < len(text) else "")
    return f"{exc.message} (at {where} of {shown!r})"
