"""Parsers for the NGSI-LD query parameters (ETSI GS CIM 009 §4.9–4.11): the ``q`` language,
geo-queries and temporal queries. Pure functions: strings in, small immutable trees out, and
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

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

import shapely
from pyproj import Geod
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

MAX_Q_LENGTH = 2000
MAX_PATTERN_LENGTH = 256
MAX_COORDINATES = 2000
GEOD = Geod(ellps="WGS84")


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


# --- geo-queries ------------------------------------------------------------------------------------

GEORELS = ("near", "within", "intersects", "disjoint", "equals")
GEOMETRIES = ("Point", "LineString", "Polygon", "MultiPoint", "MultiLineString", "MultiPolygon")


@dataclass(frozen=True)
class GeoQuery:
    georel: str
    geometry: BaseGeometry
    max_distance: float | None = None  # metres, near only
    min_distance: float | None = None

    def matches(self, lon: float, lat: float) -> bool:
        if self.georel == "near":
            target = self.geometry  # a Point: near is only defined here for points
            _, _, metres = GEOD.inv(target.x, target.y, lon, lat)
            if self.max_distance is not None and metres > self.max_distance:
                return False
            return not (self.min_distance is not None and metres < self.min_distance)
        point = shapely.Point(lon, lat)
        if self.georel == "within":
            return self.geometry.covers(point)
        if self.georel == "intersects":
            return self.geometry.intersects(point)
        if self.georel == "disjoint":
            return self.geometry.disjoint(point)
        return self.geometry.equals(point)  # equals


def parse_geoquery(georel: str | None, geometry: str | None, coordinates: str | None,
                   geoproperty: str | None = None) -> GeoQuery | None:
    given = [p for p in (georel, geometry, coordinates) if p]
    if not given:
        if geoproperty:
            raise QueryError("geoproperty needs georel, geometry and coordinates")
        return None
    if len(given) != 3:
        raise QueryError("a geo-query needs all of georel, geometry and coordinates")
    assert georel is not None and geometry is not None and coordinates is not None
    if geoproperty not in (None, "", "location"):
        raise QueryError(f"geoproperty {geoproperty!r} is not supported: only 'location'")
    parts = [p.strip() for p in georel.split(";")]
    rel = parts[0]
    if rel not in GEORELS:
        raise QueryError(f"georel {rel!r} is not supported (use {', '.join(GEORELS)})")
    if geometry not in GEOMETRIES:
        raise QueryError(f"geometry {geometry!r} is not supported (use {', '.join(GEOMETRIES)})")
    geom = _geometry(geometry, coordinates)
    max_d = min_d = None
    if rel == "near":
        if geometry != "Point":
            raise QueryError("georel near needs geometry=Point")
        for modifier in parts[1:]:
            name, sep, raw = modifier.partition("==")
            if not sep or name not in ("maxDistance", "minDistance"):
                raise QueryError(f"near modifier {modifier!r}: use maxDistance==<metres> or minDistance==<metres>")
            try:
                metres = float(raw)
            except ValueError:
                raise QueryError(f"{name} must be a number of metres, got {raw!r}") from None
            if not math.isfinite(metres) or metres < 0:
                raise QueryError(f"{name} must be a non-negative number of metres")
            if name == "maxDistance":
                max_d = metres
            else:
                min_d = metres
        if max_d is None and min_d is None:
            raise QueryError("georel near needs maxDistance==<metres> or minDistance==<metres>")
    elif len(parts) > 1:
        raise QueryError(f"georel {rel} takes no modifiers")
    return GeoQuery(rel, geom, max_d, min_d)


def _geometry(kind: str, coordinates: str) -> BaseGeometry:
    try:
        coords = json.loads(coordinates, parse_constant=_no_constant)
    except ValueError:
        raise QueryError("coordinates must be a JSON array, e.g. [117.87,36.80]") from None
    count = _check_positions(coords, kind)
    if count > MAX_COORDINATES:
        raise QueryError(f"coordinates: more than {MAX_COORDINATES} positions")
    if kind in ("Polygon", "MultiPolygon"):
        for polygon in [coords] if kind == "Polygon" else coords:
            for ring in polygon:
                if len(ring) < 4 or ring[0] != ring[-1]:
                    raise QueryError("a polygon ring needs at least 4 positions and must end where it starts")
    try:
        geom = shape({"type": kind, "coordinates": coords})
    except (ValueError, TypeError, IndexError, AttributeError, shapely.errors.ShapelyError) as exc:
        raise QueryError(f"coordinates do not form a {kind}: {exc}") from None
    if geom.is_empty:
        raise QueryError(f"coordinates do not form a {kind}")
    if kind in ("Polygon", "MultiPolygon") and not geom.is_valid:
        raise QueryError(f"the polygon is not valid: {shapely.is_valid_reason(geom)}")
    return geom


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


_DEPTH = {"Point": 0, "LineString": 1, "MultiPoint": 1, "Polygon": 2, "MultiLineString": 2, "MultiPolygon": 3}


def _check_positions(coords: Any, kind: str) -> int:
    """Positions are [lon, lat] in WGS-84 degrees, nested as GeoJSON nests them for ``kind``."""
    def walk(value: Any, depth: int) -> int:
        if depth == 0:
            if (not isinstance(value, list) or len(value) not in (2, 3)
                    or not all(isinstance(c, int | float) and not isinstance(c, bool) for c in value)):
                raise QueryError(f"coordinates: each position must be [lon, lat], got {json.dumps(value)[:40]}")
            lon, lat = value[0], value[1]
            if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
                raise QueryError(f"coordinates: [{lon}, {lat}] is not a WGS-84 lon/lat position")
            return 1
        if not isinstance(value, list) or not value:
            raise QueryError(f"coordinates are not nested as a GeoJSON {kind}")
        return sum(walk(v, depth - 1) for v in value)

    return walk(coords, _DEPTH[kind])


# --- temporal queries -----------------------------------------------------------------------------

TIMERELS = ("before", "after", "between")


@dataclass(frozen=True, slots=True)
class TimeQuery:
    """A window over epoch milliseconds: ``start <= ts < end`` (None: open)."""

    start_ms: int | None = None
    end_ms: int | None = None
    last_n: int | None = None


def parse_timequery(params: Mapping[str, str | None]) -> TimeQuery:
    timerel, time_at, end_at = params.get("timerel"), params.get("timeAt"), params.get("endTimeAt")
    time_property = params.get("timeproperty")
    if time_property not in (None, "", "observedAt"):
        raise QueryError(f"timeproperty {time_property!r} is not supported: only observedAt")
    last_n = None
    if params.get("lastN") is not None:
        last_n = _positive_int(params["lastN"], "lastN")
    if not timerel:
        if time_at or end_at:
            raise QueryError("timeAt and endTimeAt need timerel (before, after or between)")
        return TimeQuery(last_n=last_n)
    if timerel not in TIMERELS:
        raise QueryError(f"timerel {timerel!r} is not one of {', '.join(TIMERELS)}")
    if not time_at:
        raise QueryError(f"timerel={timerel} needs timeAt")
    start = _instant(time_at, "timeAt")
    if timerel == "between":
        if not end_at:
            raise QueryError("timerel=between needs endTimeAt")
        end = _instant(end_at, "endTimeAt")
        if end <= start:
            raise QueryError("endTimeAt must be later than timeAt")
        return TimeQuery(start, end, last_n)
    if end_at:
        raise QueryError("endTimeAt is only used with timerel=between")
    if timerel == "before":
        return TimeQuery(None, start, last_n)
    return TimeQuery(start + 1, None, last_n)  # after: strictly later


def _instant(raw: str, name: str) -> int:
    try:
        value = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        raise QueryError(f"{name} {raw!r} is not an ISO 8601 date-time") from None
    if value.tzinfo is None:
        raise QueryError(f"{name} {raw!r} needs a time zone (e.g. ...Z)")
    return int(value.timestamp() * 1000)


def _positive_int(raw: str | None, name: str, *, maximum: int | None = None) -> int:
    try:
        value = int(str(raw))
    except ValueError:
        raise QueryError(f"{name} must be a positive integer, got {raw!r}") from None
    if value < 1:
        raise QueryError(f"{name} must be a positive integer, got {value}")
    if maximum is not None and value > maximum:
        raise QueryError(f"{name} must be at most {maximum}, got {value}")
    return value


def parse_paging(limit: str | None, offset: str | None, *, default: int = 20, maximum: int = 1000) -> tuple[int, int]:
    size = default if limit is None else _positive_int(limit, "limit", maximum=maximum)
    if offset is None:
        return size, 0
    try:
        start = int(offset)
    except ValueError:
        raise QueryError(f"offset must be a non-negative integer, got {offset!r}") from None
    if start < 0:
        raise QueryError(f"offset must be a non-negative integer, got {start}")
    return size, start


def split_list(raw: str | None) -> list[str]:
    return [item.strip() for item in (raw or "").split(",") if item.strip()]
