"""Thing models (物模型): what each sensor product reports, and the check every message passes.

Products are data, shipped as ``data/products.toml`` (format in ``data/README.md``) and parsed
into frozen dataclasses by :func:`load_products`. :func:`citybrain.iot.payload.validate_telemetry` turns one raw
message into a :class:`Telemetry` or raises :class:`PayloadError` whose ``code`` is what the
dead-letter store and /metrics count by.

The message shapes and the checks are in :mod:`citybrain.iot.payload`. Because of its flat
shape, ``ts`` and ``values`` may not be property identifiers.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from importlib import resources
from typing import Any

IDENTIFIER_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
RESERVED = frozenset({"ts", "values"})
DEFAULT_MAX_LENGTH = 256
# Epoch-ms timestamps before this are almost always seconds sent as milliseconds.
EARLIEST_TS = datetime(2000, 1, 1, tzinfo=UTC)

Value = int | float | bool | str


class PropertyType(StrEnum):
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    STRING = "string"
    ENUM = "enum"


class EventLevel(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class PayloadCode(StrEnum):
    TOO_LARGE = "too_large"
    MALFORMED_JSON = "malformed_json"
    NOT_AN_OBJECT = "not_an_object"
    UNKNOWN_PROPERTY = "unknown_property"
    WRONG_TYPE = "wrong_type"
    OUT_OF_RANGE = "out_of_range"
    BAD_TIMESTAMP = "bad_timestamp"
    FUTURE_TIMESTAMP = "future_timestamp"
    EMPTY = "empty"


class PayloadError(ValueError):
    """A message refused by its thing model; ``code`` is a :class:`PayloadCode` value."""

    def __init__(self, code: str, message: str, *, prop: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = PayloadCode(code)
        self.message = message
        self.prop = prop


@dataclass(frozen=True, slots=True)
class Unit:
    code: str  # UCUM-like code, e.g. "ug/m3", "Cel"
    display: str  # what people read, e.g. "μg/m³"
    uncefact: str | None = None  # UN/CEFACT common code, for NGSI-LD unitCode


@dataclass(frozen=True, slots=True)
class Property:
    identifier: str
    name: str
    type: PropertyType
    unit: Unit | None = None
    min: float | None = None
    max: float | None = None
    values: tuple[tuple[str, str], ...] = ()  # enum: (value, display name)
    max_length: int | None = None  # string only
    description: str = ""

    def check(self, value: Any) -> Value:
        """The value as stored (int for int, float for float …), or PayloadError."""
        kind = self.type
        if kind is PropertyType.BOOL:
            if not isinstance(value, bool):
                raise self._wrong(value)
            return value
        if kind in (PropertyType.STRING, PropertyType.ENUM):
            if not isinstance(value, str):
                raise self._wrong(value)
            if "\x00" in value:
                # No database text type stores NUL, and no sensor means to send one.
                raise PayloadError("out_of_range", f"{self.identifier} contains a NUL character", prop=self.identifier)
            if kind is PropertyType.ENUM and value not in dict(self.values):
                allowed = ", ".join(v for v, _ in self.values)
                raise PayloadError(
                    "out_of_range", f"{self.identifier} = {value!r} is not one of {allowed}", prop=self.identifier
                )
            limit = self.max_length or DEFAULT_MAX_LENGTH
            if kind is PropertyType.STRING and len(value) > limit:
                raise PayloadError(
                    "out_of_range", f"{self.identifier} is longer than {limit} characters", prop=self.identifier
                )
            return value
        # Numbers. bool is an int subclass in Python; a device sending true for a number is wrong.
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._wrong(value)
        if isinstance(value, float) and not math.isfinite(value):
            raise PayloadError(
                "out_of_range", f"{self.identifier} = {value} is not a finite number", prop=self.identifier
            )
        if kind is PropertyType.INT:
            if isinstance(value, float):
                if not value.is_integer():
                    raise self._wrong(value)
                value = int(value)
        else:
            value = float(value)
        if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
            raise PayloadError(
                "out_of_range",
                f"{self.identifier} = {value} is outside [{_fmt(self.min)}, {_fmt(self.max)}]",
                prop=self.identifier,
            )
        return value

    def _wrong(self, value: Any) -> PayloadError:
        got = type(value).__name__
        return PayloadError(
            "wrong_type", f"{self.identifier} must be {self.type.value}, got {got}", prop=self.identifier
        )


@dataclass(frozen=True, slots=True)
class Event:
    identifier: str
    name: str
    level: EventLevel = EventLevel.INFO
    params: tuple[Property, ...] = ()


@dataclass(frozen=True, slots=True)
class Command:
    identifier: str
    name: str
    params: tuple[Property, ...] = ()


@dataclass(frozen=True)
class Product:
    identifier: str
    name: str
    category: str
    online_timeout_s: int
    retention_days: int
    properties: tuple[Property, ...]
    events: tuple[Event, ...] = ()
    commands: tuple[Command, ...] = ()
    _by_id: Mapping[str, Property] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {p.identifier: p for p in self.properties})

    def get_property(self, identifier: str) -> Property | None:
        return self._by_id.get(identifier)


@dataclass(frozen=True, slots=True)
class Telemetry:
    values: dict[str, Value]
    ts: datetime  # aware, UTC
    ts_reported: bool  # False when the message carried no ts and the receive time was used


# --- loading the catalog ----------------------------------------------------------------------

_PRODUCT_KEYS = {
    "identifier",
    "name",
    "category",
    "online_timeout_s",
    "retention_days",
    "properties",
    "events",
    "commands",
}
_PROPERTY_KEYS = {"identifier", "name", "type", "unit", "min", "max", "values", "max_length", "description"}
_EVENT_KEYS = {"identifier", "name", "level", "params"}
_COMMAND_KEYS = {"identifier", "name", "params"}
_UNIT_KEYS = {"code", "display", "uncefact"}


def load_products(text: str | None = None) -> dict[str, Product]:
    """Parse and validate a products file (the shipped one when ``text`` is None).

    Any problem raises ValueError naming the product and property at fault.
    """
    if text is None:
        text = resources.files("citybrain.iot").joinpath("data/products.toml").read_text(encoding="utf-8")
    doc = tomllib.loads(text)
    extra = set(doc) - {"product"}
    if extra:
        raise ValueError(f"products file: unknown top-level keys {sorted(extra)}")
    products: dict[str, Product] = {}
    for index, raw in enumerate(doc.get("product", [])):
        where = f"product #{index + 1}"
        if isinstance(raw, dict) and isinstance(raw.get("identifier"), str):
            where = f"product {raw['identifier']!r}"
        product = _product(raw, where)
        if product.identifier in products:
            raise ValueError(f"{where}: duplicate product identifier")
        products[product.identifier] = product
    return products


def _product(raw: Any, where: str) -> Product:
    _keys(raw, _PRODUCT_KEYS, where, required=("identifier", "name", "category", "online_timeout_s", "retention_days"))
    identifier = _identifier(raw["identifier"], where)
    properties = _properties(raw.get("properties", []), where, "property")
    if not properties:
        raise ValueError(f"{where}: a product needs at least one property")
    reserved = RESERVED & {p.identifier for p in properties}
    if reserved:
        raise ValueError(f"{where}: property identifiers {sorted(reserved)} are reserved for the message envelope")
    events = tuple(_event(e, f"{where} event #{i + 1}") for i, e in enumerate(_list(raw.get("events", []), where)))
    commands = tuple(
        _command(c, f"{where} command #{i + 1}") for i, c in enumerate(_list(raw.get("commands", []), where))
    )
    _unique([e.identifier for e in events], f"{where}: duplicate event identifier")
    _unique([c.identifier for c in commands], f"{where}: duplicate command identifier")
    return Product(
        identifier=identifier,
        name=_text(raw["name"], where, "name"),
        category=_identifier(raw["category"], f"{where} category"),
        online_timeout_s=_positive_int(raw["online_timeout_s"], where, "online_timeout_s"),
        retention_days=_positive_int(raw["retention_days"], where, "retention_days"),
        properties=properties,
        events=events,
        commands=commands,
    )


def _event(raw: Any, where: str) -> Event:
    _keys(raw, _EVENT_KEYS, where, required=("identifier", "name"))
    level = raw.get("level", "info")
    if level not in set(EventLevel):
        raise ValueError(f"{where}: unknown level {level!r} (known: {', '.join(EventLevel)})")
    return Event(
        identifier=_identifier(raw["identifier"], where),
        name=_text(raw["name"], where, "name"),
        level=EventLevel(level),
        params=_properties(raw.get("params", []), where, "param"),
    )


def _command(raw: Any, where: str) -> Command:
    _keys(raw, _COMMAND_KEYS, where, required=("identifier", "name"))
    return Command(
        identifier=_identifier(raw["identifier"], where),
        name=_text(raw["name"], where, "name"),
        params=_properties(raw.get("params", []), where, "param"),
    )


def _properties(raw: Any, where: str, noun: str) -> tuple[Property, ...]:
    props = []
    for index, item in enumerate(_list(raw, where)):
        label = f"{where} {noun} #{index + 1}"
        if isinstance(item, dict) and isinstance(item.get("identifier"), str):
            label = f"{where} {noun} {item['identifier']!r}"
        props.append(_property(item, label))
    _unique([p.identifier for p in props], f"{where}: duplicate {noun} identifier")
    return tuple(props)


def _property(raw: Any, where: str) -> Property:
    _keys(raw, _PROPERTY_KEYS, where, required=("identifier", "name", "type"))
    try:
        kind = PropertyType(raw["type"])
    except ValueError:
        raise ValueError(f"{where}: unknown type {raw['type']!r} (known: {', '.join(PropertyType)})") from None
    numeric = kind in (PropertyType.INT, PropertyType.FLOAT)
    low, high = raw.get("min"), raw.get("max")
    if (low is not None or high is not None) and not numeric:
        raise ValueError(f"{where}: min/max only apply to int and float properties")
    for label, bound in (("min", low), ("max", high)):
        if bound is not None and (
            isinstance(bound, bool) or not isinstance(bound, int | float) or not math.isfinite(bound)
        ):
            raise ValueError(f"{where}: {label} must be a finite number")
    if low is not None and high is not None and low > high:
        raise ValueError(f"{where}: min {low} is greater than max {high}")
    values: tuple[tuple[str, str], ...] = ()
    if kind is PropertyType.ENUM:
        raw_values = raw.get("values")
        if not isinstance(raw_values, dict) or not raw_values:
            raise ValueError(f"{where}: an enum needs a non-empty 'values' table of value = display name")
        values = tuple((str(k), _text(v, where, f"values.{k}")) for k, v in raw_values.items())
    elif "values" in raw:
        raise ValueError(f"{where}: 'values' only applies to enum properties")
    max_length = raw.get("max_length")
    if max_length is not None:
        if kind is not PropertyType.STRING:
            raise ValueError(f"{where}: max_length only applies to string properties")
        max_length = _positive_int(max_length, where, "max_length")
    return Property(
        identifier=_identifier(raw["identifier"], where),
        name=_text(raw["name"], where, "name"),
        type=kind,
        unit=_unit(raw.get("unit"), where),
        min=low,
        max=high,
        values=values,
        max_length=max_length,
        description=str(raw.get("description", "")),
    )


def _unit(raw: Any, where: str) -> Unit | None:
    if raw is None:
        return None
    _keys(raw, _UNIT_KEYS, f"{where} unit", required=("code", "display"))
    uncefact = raw.get("uncefact")
    return Unit(
        code=_text(raw["code"], where, "unit.code"),
        display=_text(raw["display"], where, "unit.display"),
        uncefact=None if uncefact is None else _text(uncefact, where, "unit.uncefact"),
    )


def _keys(raw: Any, allowed: set[str], where: str, *, required: tuple[str, ...]) -> None:
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected a table")
    unknown = set(raw) - allowed
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
    missing = [k for k in required if k not in raw]
    if missing:
        raise ValueError(f"{where}: missing {', '.join(missing)}")


def _list(raw: Any, where: str) -> list[Any]:
    if not isinstance(raw, list):
        raise ValueError(f"{where}: expected an array of tables")
    return raw


def _identifier(raw: Any, where: str) -> str:
    if not isinstance(raw, str) or not IDENTIFIER_RE.match(raw):
        raise ValueError(f"{where}: identifier {raw!r} must match {IDENTIFIER_RE.pattern}")
    return raw


def _text(raw: Any, where: str, key: str) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise ValueError(f"{where}: {key} must be a non-empty string")
    return raw


def _positive_int(raw: Any, where: str, key: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw <= 0:
        raise ValueError(f"{where}: {key} must be a positive integer")
    return raw


def _unique(items: list[str], message: str) -> None:
    seen: set[str] = set()
    for item in items:
        if item in seen:
            raise ValueError(f"{message} {item!r}")
        seen.add(item)


def _fmt(bound: float | None) -> str:
    return "…" if bound is None else f"{bound:g}"
