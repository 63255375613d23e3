"""Parsers for the NGSI-LD geo-query, temporal-query and paging parameters (ETSI GS CIM 009
§4.10–4.11). Pure functions: strings in, small immutable values out, and :class:`QueryError`
(answered as 400 BadRequestData) for anything malformed. The ``q`` language is in
:mod:`citybrain.iot.ngsi_query`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import shapely
from pyproj import Geod
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from .ngsi_query import QueryError

MAX_COORDINATES = 2000
GEOD = Geod(ellps="WGS84")


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
