"""Parser and evaluator of the NGSI-LD ``q`` language (ETSI GS CIM 009 §4.9), and the safe
regular expressions of ``idPattern`` and ``~=``; geo-queries, temporal queries and paging are
in :mod:`citybrain.iot.ngsi_params`. Pure functions: strings in, small immutable trees out, and
:class:`QueryError` (answered as 400 BadRequestData) for anything malformed.

``q`` grammar accepted (a superset of the spec's ABNF in two places: parentheses may nest, and
``;`` binds tighter than ``|`` as in every boolean notation)::

    query  = and *("|" and)
    and    = term *(";" term)
    term   = "(" query ")" / path [op value]
    path   = name *("." name)            ; pm25, pm25.observedAt
    op     = "==" / "!=" / ">=" / ">" / "<=" / "<" / "~=" / "!~="
    value  = literal ".." literal        ; a range, only after == and !=
           / literal *("," literal)      ; a list, only after == and !=
    literal = number / "string" / true / false / dateTime / date / URI

A bare ``path`` tests that the attribute exists. Strings must be quoted: an unquoted word is
refused with a hint, so ``status==occupied`` cannot silently match nothing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

MAX_Q_LENGTH = 2000
MAX_PATTERN_LENGTH = 256


class QueryError(ValueError):
    """A malformed query parameter; the message says what and where."""


# --- q: the tree ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Comparison:
    path: tuple[str, ...]
    op: str | None  # None: the attribute exists
    value: Any = None  # a literal, a tuple (list) or a Range
    pattern: re.Pattern[str] | None = None


@dataclass(frozen=True, slots=True)
class Range:
    low: Any
    high: Any


@dataclass(frozen=True, slots=True)
class BoolOp:
    op: str  # "and" | "or"
    items: tuple[Node, ...]


Node = Comparison | BoolOp
# How a query reads an entity: (attribute path) -> (found, value).
Lookup = Callable[[tuple[str, ...]], tuple[bool, Any]]

_OPS = ("!~=", "~=", "==", "!=", ">=", "<=", ">", "<")
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
_NUMBER_RE = re.compile(r"-?(?:\d+(?:\.\d+)?|\.\d+)(?:[eE][+-]?\d+)?")
_DATETIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?")
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_URI_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:[^\s;|(),\"']+")
_WORD_RE = re.compile(r"[^\s;|(),\"'=<>!~]+")


def parse_q(text: str) -> Node:
    if not text.strip():
        raise QueryError("q is empty")
    if len(text) > MAX_Q_LENGTH:
        raise QueryError(f"q is longer than {MAX_Q_LENGTH} characters")
    parser = _QParser(text)
    node = parser.query()
    parser.skip_space()
    if parser.pos != len(text):
        raise parser.error("unexpected text")
    return node


class _QParser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.depth = 0

    def error(self, message: str) -> QueryError:
        shown = self.text[self.pos:self.pos + 20] or "end of q"
        return QueryError(f"q: {message} at position {self.pos} ({shown!r})")

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] == " ":
            self.pos += 1

    def peek(self, token: str) -> bool:
        self.skip_space()
        return self.text.startswith(token, self.pos)

    def query(self) -> Node:
        items = [self.conjunction()]
        while self.peek("|"):
            self.pos += 1
            items.append(self.conjunction())
        return items[0] if len(items) == 1 else BoolOp("or", tuple(items))

    def conjunction(self) -> Node:
        items = [self.term()]
        while self.peek(";"):
            self.pos += 1
            items.append(self.term())
        return items[0] if len(items) == 1 else BoolOp("and", tuple(items))

    def term(self) -> Node:
        if self.peek("("):
            self.pos += 1
            self.depth += 1
            if self.depth > 20:
                raise self.error("parentheses nested too deeply")
            node = self.query()
            if not self.peek(")"):
                raise self.error("expected ')'")
            self.pos += 1
            self.depth -= 1
            return node
        path = self.path()
        self.skip_space()
        op = next((o for o in _OPS if self.text.startswith(o, self.pos)), None)
        if op is None:
            rest = self.text[self.pos:self.pos + 1]
            if rest and rest not in ";|)":
                raise self.error("unknown operator (use ==, !=, >, >=, <, <=, ~=, !~=)")
            return Comparison(path, None)
        self.pos += len(op)
        self.skip_space()
        if op in ("~=", "!~="):
            raw = self.literal()
            if not isinstance(raw, str):
                raise self.error(f"{op} needs a quoted regular expression")
            return Comparison(path, op, raw, compile_pattern(raw, "q"))
        first = self.literal()
        if self.text.startswith("..", self.pos):
            if op not in ("==", "!="):
                raise self.error("a range a..b is only allowed after == or !=")
            self.pos += 2
            high = self.literal()
            if _kind(first) != _kind(high) or _kind(first) in ("bool", "other"):
                raise self.error("a range needs two numbers, two strings or two date-times")
            return Comparison(path, op, Range(first, high))
        if self.peek(","):
            if op not in ("==", "!="):
                raise self.error("a list of values is only allowed after == or !=")
            values = [first]
            while self.peek(","):
                self.pos += 1
                self.skip_space()
                values.append(self.literal())
            return Comparison(path, op, tuple(values))
        if op in (">", ">=", "<", "<=") and _kind(first) in ("bool", "other"):
            raise self.error(f"{op} needs a number, a string or a date-time")
        return Comparison(path, op, first)

    def path(self) -> tuple[str, ...]:
        parts = []
        while True:
            self.skip_space()
            match = _NAME_RE.match(self.text, self.pos)
            if match is None:
                raise self.error("expected an attribute name")
            parts.append(match.group())
            self.pos = match.end()
            if not self.text.startswith(".", self.pos) or self.text.startswith("..", self.pos):
                return tuple(parts)
            self.pos += 1

    def literal(self) -> Any:
        text, pos = self.text, self.pos
        if text.startswith('"', pos):
            end = pos + 1
            out = []
            while end < len(text) and text[end] != '"':
                if text[end] == "\\" and text[end + 1:end + 2] in ('"', "\\"):
                    end += 1  # \" and \\ are escapes; any other backslash is kept (regular expressions)
                out.append(text[end])
                end += 1
            if end >= len(text):
                raise self.error("unterminated string")
            self.pos = end + 1
            return "".join(out)
        for regex, convert in ((_DATETIME_RE, _datetime_literal), (_DATE_RE, _date_literal)):
            match = regex.match(text, pos)
            if match and not _continues(text, match.end()):
                self.pos = match.end()
                try:
                    return convert(match.group())
                except ValueError:
                    raise self.error(f"{match.group()!r} is not a valid date or date-time") from None
        match = _NUMBER_RE.match(text, pos)
        if match and not _continues(text, match.end()):
            self.pos = match.end()
            number = float(match.group())
            if not math.isfinite(number):
                raise self.error("number out of range")
            return int(number) if number.is_integer() and abs(number) < 2**53 else number
        for word, value in (("true", True), ("false", False)):
            if text.startswith(word, pos) and not _continues(text, pos + len(word)):
                self.pos = pos + len(word)
                return value
        match = _URI_RE.match(text, pos)
        if match:
            self.pos = match.end()
            return match.group()
        match = _WORD_RE.match(text, pos)
        if match:
            raise self.error(f'string values must be quoted: "{match.group()}"')
        raise self.error("expected a value")


def _continues(text: str, end: int) -> bool:
    """A literal must end at an operator, separator or the end of q (``1..5`` ends at ``..``)."""
    return end < len(text) and text[end] not in ";|), " and not text.startswith("..", end)


def _datetime_literal(raw: str) -> datetime:
    value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _date_literal(raw: str) -> date:
    return date.fromisoformat(raw)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, datetime):
        return "datetime"
    if isinstance(value, date):
        return "date"
    if isinstance(value, str):
        return "string"
    return "other"


# --- q: evaluation ------------------------------------------------------------------------------


def evaluate(node: Node, lookup: Lookup) -> bool:
    if isinstance(node, BoolOp):
        if node.op == "and":
            return all(evaluate(item, lookup) for item in node.items)
        return any(evaluate(item, lookup) for item in node.items)
    found, actual = lookup(node.path)
    if not found:
        return False
    if node.op is None:
        return True
    if node.pattern is not None:
        matched = isinstance(actual, str) and node.pattern.search(actual) is not None
        return matched if node.op == "~=" else isinstance(actual, str) and not matched
    if isinstance(node.value, Range):
        inside = _compare(actual, ">=", node.value.low) and _compare(actual, "<=", node.value.high)
        return inside if node.op == "==" else _comparable(actual, node.value.low) and not inside
    if isinstance(node.value, tuple):
        hit = any(_compare(actual, "==", v) for v in node.value)
        return hit if node.op == "==" else not hit
    if node.op == "!=":
        return not _compare(actual, "==", node.value)
    return _compare(actual, node.op, node.value)


def _coerce(actual: Any, wanted: Any) -> Any:
    """The entity's value in the literal's kind (an observedAt string read as a datetime)."""
    if isinstance(wanted, datetime | date) and isinstance(actual, str):
        try:
            parsed = _datetime_literal(actual)
        except ValueError:
            return None
        return parsed.date() if not isinstance(wanted, datetime) else parsed
    return actual


def _comparable(actual: Any, wanted: Any) -> bool:
    actual = _coerce(actual, wanted)
    return actual is not None and _kind(actual) == _kind(wanted)


def _compare(actual: Any, op: str, wanted: Any) -> bool:
    actual = _coerce(actual, wanted)
    if actual is None or _kind(actual) != _kind(wanted):
        return False  # a number never equals nor orders against a string
    if op == "==":
        return actual == wanted
    if op == ">":
        return actual > wanted
    if op == ">=":
        return actual >= wanted
    if op == "<":
        return actual < wanted
    if op == "<=":
        return actual <= wanted
    raise AssertionError(op)


def attributes_used(node: Node) -> set[str]:
    if isinstance(node, BoolOp):
        return set().union(*(attributes_used(i) for i in node.items))
    return {node.path[0]}


# --- safe regular expressions (idPattern, ~=) ------------------------------------------------------

_FORBIDDEN = {"GROUPREF", "GROUPREF_EXISTS", "ASSERT", "ASSERT_NOT"}
_REPEATS = {"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"}


def compile_pattern(raw: str, where: str) -> re.Pattern[str]:
    """A regular expression that cannot backtrack catastrophically: short, no back-references or
    look-arounds, and no repetition inside a repetition (``(a+)+``, ``(a|aa)*``)."""
    if len(raw) > MAX_PATTERN_LENGTH:
        raise QueryError(f"{where}: pattern longer than {MAX_PATTERN_LENGTH} characters")
    try:
        tree = sre_parse.parse(raw)
    except re.error as exc:
        raise QueryError(f"{where}: invalid regular expression: {exc}") from None
    _check_tree(tree, where, inside_repeat=False)
    return re.compile(raw)


def _check_tree(items: Any, where: str, *, inside_repeat: bool) -> None:
    for op, arg in items:
        name = str(op)
        if name in _FORBIDDEN:
            raise QueryError(f"{where}: back-references and look-arounds are not supported")
        if name in _REPEATS:
            low, high, sub = arg
            if inside_repeat and (high is sre_parse.MAXREPEAT or high > 1):
                raise QueryError(f"{where}: nested repetition like (a+)+ is not allowed")
            _check_tree(sub, where, inside_repeat=inside_repeat or high is sre_parse.MAXREPEAT or high > 1)
        elif name == "SUBPATTERN":
            _check_tree(arg[-1], where, inside_repeat=inside_repeat)
        elif name == "BRANCH":
            if inside_repeat and len(arg[1]) > 1:
                raise QueryError(f"{where}: alternatives inside a repetition are not allowed")
            for branch in arg[1]:
                _check_tree(branch, where, inside_repeat=inside_repeat)
