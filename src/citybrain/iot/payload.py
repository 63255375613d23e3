"""Checking one telemetry message against its product's thing model.

Accepted shapes (both JSON objects)::

    {"ts": "2026-11-26T08:00:00+08:00", "values": {"pm25": 41.0, "pm10": 77}}   # nested
    {"ts": 1795996800000, "pm25": 41.0, "pm10": 77}                             # flat

``ts`` is optional in both (the receive time ``now`` is used instead); it is an ISO 8601 string
with a time zone, or Unix epoch milliseconds. A nested message has no other top-level keys.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from .thingmodel import EARLIEST_TS, RESERVED, PayloadError, Product, Telemetry, Value


def validate_telemetry(
    product: Product,
    payload: bytes | bytearray | str | Mapping[str, Any],
    *,
    now: datetime,
    max_bytes: int = 16384,
    max_future: timedelta = timedelta(minutes=5),
) -> Telemetry:
    """Check one telemetry message against ``product``'s thing model.

    ``payload`` is the raw message (its size is checked against ``max_bytes`` before parsing)
    or an already-parsed object, e.g. one device's entry in a gateway batch (no size check).
    The first problem found raises :class:`PayloadError`.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    doc = _parse(payload, max_bytes) if isinstance(payload, bytes | bytearray | str) else payload
    if not isinstance(doc, Mapping):
        raise PayloadError("not_an_object", f"expected a JSON object, got {_json_type(doc)}")
    if "values" in doc:
        extra = set(doc) - RESERVED
        if extra:
            raise PayloadError(
                "unknown_property", f"a message with 'values' may only also carry 'ts', not {sorted(extra)}"
            )
        raw_values = doc["values"]
        if not isinstance(raw_values, Mapping):
            raise PayloadError("not_an_object", f"'values' must be an object, got {_json_type(raw_values)}")
    else:
        raw_values = {k: v for k, v in doc.items() if k != "ts"}
    if not raw_values:
        raise PayloadError("empty", "the message carries no property values")
    values: dict[str, Value] = {}
    for key, value in raw_values.items():
        prop = product.get_property(key)
        if prop is None:
            raise PayloadError("unknown_property", f"{product.identifier} has no property {key!r}", prop=str(key))
        values[key] = prop.check(value)
    if doc.get("ts") is None:
        return Telemetry(values=values, ts=now.astimezone(UTC), ts_reported=False)
    ts = parse_timestamp(doc["ts"])
    if ts > now + max_future:
        raise PayloadError(
            "future_timestamp", f"ts {ts.isoformat()} is more than {max_future} ahead of {now.isoformat()}"
        )
    return Telemetry(values=values, ts=ts, ts_reported=True)


def _parse(payload: bytes | bytearray | str, max_bytes: int) -> Any:
    size = len(payload.encode("utf-8")) if isinstance(payload, str) else len(payload)
    if size > max_bytes:
        raise PayloadError("too_large", f"{size} bytes is over the {max_bytes}-byte limit")
    if not payload.strip():
        raise PayloadError("empty", "the message is empty")
    try:
        return json.loads(payload, parse_constant=_reject_constant, object_pairs_hook=_no_duplicates)
    except PayloadError:
        raise
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise PayloadError("malformed_json", str(exc)) from None


def _reject_constant(name: str) -> Any:
    raise PayloadError("malformed_json", f"{name} is not valid JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise PayloadError("malformed_json", f"duplicate key {key!r}")
        result[key] = value
    return result


def parse_timestamp(raw: Any) -> datetime:
    if isinstance(raw, str):
        try:
            ts = datetime.fromisoformat(raw)
        except ValueError:
            raise PayloadError("bad_timestamp", f"ts {raw!r} is not ISO 8601") from None
        if ts.tzinfo is None:
            raise PayloadError("bad_timestamp", f"ts {raw!r} has no time zone")
        ts = ts.astimezone(UTC)
    elif isinstance(raw, int | float) and not isinstance(raw, bool):
        if not math.isfinite(raw):
            raise PayloadError("bad_timestamp", f"ts {raw} is not a finite number")
        try:
            ts = datetime.fromtimestamp(raw / 1000, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise PayloadError("bad_timestamp", f"ts {raw} is not a valid epoch-milliseconds value") from None
    else:
        raise PayloadError(
            "bad_timestamp", f"ts must be an ISO 8601 string or epoch milliseconds, got {_json_type(raw)}"
        )
    if ts < EARLIEST_TS:
        raise PayloadError(
            "bad_timestamp", f"ts {ts.isoformat()} is before {EARLIEST_TS.year} (seconds sent as milliseconds?)"
        )
    return ts


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


EARLIEST_MS = int(EARLIEST_TS.timestamp() * 1000)
_NUMBER = (int, float)


class FastChecker:
    """The same checks as :func:`validate_telemetry` for the common case, without building
    datetimes: ``check(item, now_ms)`` returns ``(ts_ms, values)`` for an already-parsed reading
    whose values are all numbers or booleans in range and whose ``ts`` is absent or epoch ms;
    anything else (strings, enums, ISO times, any problem) is handed to ``validate_telemetry``,
    which accepts it the same way or raises the precise ``PayloadError``.
    """

    __slots__ = ("product", "max_future", "_specs")

    def __init__(self, product: Product, *, max_future: timedelta = timedelta(minutes=5)) -> None:
        from .thingmodel import PropertyType

        self.product = product
        self.max_future = max_future
        specs: dict[str, tuple[int, float, float]] = {}
        for prop in product.properties:
            low = -math.inf if prop.min is None else prop.min
            high = math.inf if prop.max is None else prop.max
            if prop.type is PropertyType.FLOAT:
                specs[prop.identifier] = (0, low, high)
            elif prop.type is PropertyType.INT:
                specs[prop.identifier] = (1, low, high)
            elif prop.type is PropertyType.BOOL:
                specs[prop.identifier] = (2, 0, 0)
        self._specs = specs  # strings and enums are absent: they take the full path

    def check(self, item: Any, now_ms: int) -> tuple[int, dict[str, Value]]:
        result = self._fast(item, now_ms)
        if result is not None:
            return result
        now = datetime.fromtimestamp(now_ms / 1000, UTC)
        tele = validate_telemetry(self.product, item, now=now, max_future=self.max_future)
        return int(tele.ts.timestamp() * 1000), tele.values

    def _fast(self, item: Any, now_ms: int) -> tuple[int, dict[str, Value]] | None:
        if type(item) is not dict:
            return None
        raw = item.get("values")
        if raw is None:
            raw = item
        elif type(raw) is not dict or len(item) > 2 or (len(item) == 2 and "ts" not in item):
            return None
        ts = item.get("ts")
        if ts is None:
            ts = now_ms
        elif type(ts) is not int or ts < EARLIEST_MS or ts > now_ms + self.max_future.total_seconds() * 1000:
            return None
        specs = self._specs
        values: dict[str, Value] = {}
        for key, value in raw.items():
            if key == "ts" and raw is item:
                continue
            spec = specs.get(key)
            if spec is None:
                return None
            kind = spec[0]
            vtype = type(value)
            if kind == 2:
                if vtype is not bool:
                    return None
            elif vtype is float or vtype is int:
                if not spec[1] <= value <= spec[2]:
                    return None
                if kind == 0:
                    value = float(value)
                elif vtype is float:
                    return None
            else:
                return None
            values[key] = value
        return (ts, values) if values else None
