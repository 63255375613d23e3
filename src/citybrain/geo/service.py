"""One map: load a district (boundary, townships, unit grid), locate points, serve layers."""

from __future__ import annotations

import json
import math
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import shapely
from shapely.geometry import mapping, shape
from sqlalchemy import delete, func, insert, select
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from citybrain.core import audit, clock
from citybrain.core.actor import Actor
from citybrain.core.errors import Conflict, Invalid, NotFound

from . import coords
from .grid import GridCell as GridPiece
from .models import Division, GridCell, GridLattice
from .projection import UTM_EPSG, lonlat_to_utm

_BATCH = 2000
# Coordinates are stored to 7 decimals (about 1 cm): enough for 100 m cells, half the text.
_PRECISION = 7


class OutsideDistrict(Invalid):
    """A point that is valid on Earth but not inside the loaded district."""


@dataclass(frozen=True)
class TownshipInput:
    code: str
    name: str
    kind: str
    geometry: shapely.Geometry
    approximate: bool
    source: str = ""


def _geojson_text(geom: shapely.Geometry) -> str:
    rounded = shapely.set_precision(geom, 10**-_PRECISION) if not geom.is_empty else geom
    return json.dumps(mapping(rounded if rounded.is_valid else geom), separators=(",", ":"))


def _area_m2(geom: shapely.Geometry) -> float:
    from .projection import to_utm

    return float(to_utm(geom).area)


def _division_row(*, code: str, name: str, level: str, kind: str, parent: str | None,
                  geom: shapely.Geometry, approximate: bool, source: str) -> dict[str, Any]:
    min_lon, min_lat, max_lon, max_lat = geom.bounds
    return {
        "code": code, "name": name, "level": level, "kind": kind, "parent_code": parent,
        "geometry": _geojson_text(geom), "approximate": approximate, "source": source,
        "min_lon": min_lon, "min_lat": min_lat, "max_lon": max_lon, "max_lat": max_lat,
        "area_km2": round(_area_m2(geom) / 1e6, 3), "created_at": clock.now(),
    }


def district_loaded(db: Session) -> bool:
    return db.scalar(select(func.count()).select_from(Division).where(Division.level == "district")) > 0


def load_district(
    db: Session, *, code: str, name: str, boundary: shapely.Geometry, boundary_source: str,
    townships: Sequence[TownshipInput], cells: Sequence[GridPiece],
    origin: tuple[float, float], cell_size_m: float, actor: Actor,
) -> dict[str, int]:
    """Store a district, its townships and unit grid in one go (the caller's transaction)."""
    if district_loaded(db):
        raise Conflict("a district is already loaded; geography is loaded once per database")
    if not boundary.is_valid or boundary.is_empty:
        raise Invalid("the district boundary is not a valid polygon")
    codes = {t.code for t in townships}
    if len(codes) != len(townships):
        raise Invalid("township codes must be unique")
    stray = {c.division_code for c in cells} - codes
    if stray:
        raise Invalid(f"grid cells refer to unknown township(s): {sorted(stray)[:3]}")
    db.execute(insert(Division), [_division_row(
        code=code, name=name, level="district", kind="区", parent=None, geom=boundary,
        approximate=False, source=boundary_source)])
    db.execute(insert(Division), [_division_row(
        code=t.code, name=t.name, level="township", kind=t.kind, parent=code, geom=t.geometry,
        approximate=t.approximate, source=t.source) for t in townships])
    db.add(GridLattice(district_code=code, epsg=UTM_EPSG, origin_x=origin[0], origin_y=origin[1],
                       cell_size_m=cell_size_m))
    rows = []
    for cell in cells:
        min_lon, min_lat, max_lon, max_lat = cell.geometry.bounds
        rows.append({"code": cell.code, "division_code": cell.division_code, "row": cell.row,
                     "col": cell.col, "geometry": _geojson_text(cell.geometry), "min_lon": min_lon,
                     "min_lat": min_lat, "max_lon": max_lon, "max_lat": max_lat,
                     "area_m2": round(_area_m2(cell.geometry), 1)})
        if len(rows) >= _BATCH:
            db.execute(insert(GridCell), rows)
            rows = []
    if rows:
        db.execute(insert(GridCell), rows)
    db.flush()
    counts = {"townships": len(townships), "grid_cells": len(cells)}
    audit.record(db, actor=actor, action="geo.load_district", object_type="division", object_id=code,
                 after={"name": name, **counts, "cell_size_m": cell_size_m, "source": boundary_source})
    _forget_index_on_rollback(db)
    return counts


def unload_district(db: Session, *, actor: Actor) -> None:
    """Remove all geography (used before reloading a corrected district)."""
    actor.check("org:write")
    db.execute(delete(GridCell))
    db.execute(delete(GridLattice))
    db.execute(delete(Division).where(Division.level == "township"))
    db.execute(delete(Division))
    audit.record(db, actor=actor, action="geo.unload_district", object_type="division")
    _forget_index_on_rollback(db)


# --- reading -----------------------------------------------------------------------------


def count_townships(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(Division).where(Division.level == "township")) or 0


def count_grid_cells(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(GridCell)) or 0


def list_divisions(db: Session) -> list[Division]:
    return list(db.scalars(select(Division).order_by(Division.level, Division.code)))


def get_division(db: Session, *, code: str) -> Division:
    div = db.get(Division, code)
    if div is None:
        raise NotFound(f"division {code!r} does not exist")
    return div


def divisions_geojson(db: Session) -> dict[str, Any]:
    features = [{
        "type": "Feature", "id": d.code, "geometry": json.loads(d.geometry),
        "properties": {"code": d.code, "name": d.name, "level": d.level, "kind": d.kind,
                       "parent_code": d.parent_code, "approximate": d.approximate,
                       "area_km2": d.area_km2, "source": d.source},
    } for d in list_divisions(db)]
    return {"type": "FeatureCollection", "features": features}


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    parts = text.split(",")
    if len(parts) != 4:
        raise Invalid("bbox must be minLon,minLat,maxLon,maxLat")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise Invalid("bbox must be four numbers: minLon,minLat,maxLon,maxLat") from None
    min_lon, min_lat, max_lon, max_lat = values
    for lon, lat in ((min_lon, min_lat), (max_lon, max_lat)):
        try:
            coords.validate_lonlat(lon, lat)
        except coords.CoordinateError as exc:
            raise Invalid(f"bbox: {exc}") from None
    if min_lon >= max_lon or min_lat >= max_lat:
        raise Invalid("bbox minimum must be below its maximum (minLon,minLat,maxLon,maxLat)")
    return min_lon, min_lat, max_lon, max_lat


def grids_geojson(db: Session, *, bbox: tuple[float, float, float, float], limit: int) -> dict[str, Any]:
    min_lon, min_lat, max_lon, max_lat = bbox
    q = (select(GridCell).where(GridCell.max_lon >= min_lon, GridCell.min_lon <= max_lon,
                                GridCell.max_lat >= min_lat, GridCell.min_lat <= max_lat)
         .order_by(GridCell.code).limit(limit + 1))
    cells = list(db.scalars(q))
    truncated = len(cells) > limit
    features = [{
        "type": "Feature", "id": c.code, "geometry": json.loads(c.geometry),
        "properties": {"code": c.code, "division_code": c.division_code, "area_m2": c.area_m2},
    } for c in cells[:limit]]
    return {"type": "FeatureCollection", "features": features, "truncated": truncated,
            "numberReturned": len(features)}


def get_grid_cell(db: Session, *, code: str) -> GridCell:
    cell = db.get(GridCell, code)
    if cell is None:
        raise NotFound(f"grid cell {code!r} does not exist")
    return cell


# --- locate ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Index:
    district: Division
    district_geom: shapely.Geometry
    townships: list[tuple[Division, shapely.Geometry]]
    lattice: GridLattice | None
    # (row, col) → [(cell code, township code)] of every unit-grid piece: no query per locate.
    cells: dict[tuple[int, int], list[tuple[str, str]]]


@dataclass
class _Cached:
    index: _Index
    engine: weakref.ReferenceType[Any]
    stamp: tuple[Any, ...]
    checked_at: float


# How often a cached index is checked against the database. Loading or unloading in this
# process clears the cache at once (and again if that transaction rolls back); a district
# reloaded by another process (a loader run beside a running server) is noticed within this
# many seconds. Before, every locate() ran a COUNT on division to validate the cache (and a
# reload with the same number of divisions went unnoticed); now the check is count + newest
# created_at, at most once per interval per database.
_INDEX_CHECK_S = 2.0
_INDEX_CACHE: dict[str, _Cached] = {}
_INDEX_LOCK = threading.Lock()


def _stamp(db: Session) -> tuple[Any, ...]:
    count, newest = db.execute(select(func.count(), func.max(Division.created_at)).select_from(Division)).one()
    return (count or 0, str(newest))


def _forget_index(*_args: Any) -> None:
    with _INDEX_LOCK:
        _INDEX_CACHE.clear()


def _forget_index_on_rollback(db: Session) -> None:
    """Drop cached indexes now, and again if this session's transaction is rolled back: a load
    or unload that is undone must not leave its index behind."""
    _forget_index()
    if not sa_event.contains(db, "after_soft_rollback", _forget_index):
        sa_event.listen(db, "after_soft_rollback", _forget_index)


def _index(db: Session) -> _Index:
    """Prepared polygons and the grid lattice, cached per database (see ``_INDEX_CHECK_S``)."""
    bind = db.get_bind()
    # A session may be bound to an Engine or to a Connection (tests, jobs sharing a transaction).
    engine = bind.engine
    key = str(engine.url)
    now = time.monotonic()
    with _INDEX_LOCK:
        cached = _INDEX_CACHE.get(key)
    if cached is not None and cached.engine() is engine:
        if now - cached.checked_at < _INDEX_CHECK_S:
            return cached.index
        if _stamp(db) == cached.stamp:
            cached.checked_at = now
            return cached.index
    stamp = _stamp(db)
    divisions = list_divisions(db)
    district = next((d for d in divisions if d.level == "district"), None)
    if district is None:
        raise NotFound("no district is loaded; run `citybrain demo` or load one")
    geoms = {d.code: shape(json.loads(d.geometry)) for d in divisions}
    for g in geoms.values():
        shapely.prepare(g)
    for d in divisions:
        db.expunge(d)
    lattice = db.get(GridLattice, district.code)
    if lattice is not None:
        db.expunge(lattice)
    cells: dict[tuple[int, int], list[tuple[str, str]]] = {}
    for code, division_code, row, col in db.execute(
            select(GridCell.code, GridCell.division_code, GridCell.row, GridCell.col)):
        cells.setdefault((row, col), []).append((code, division_code))
    built = _Index(district, geoms[district.code],
                   [(d, geoms[d.code]) for d in divisions if d.level == "township"], lattice, cells)
    with _INDEX_LOCK:
        _INDEX_CACHE[key] = _Cached(built, weakref.ref(engine), stamp, now)
    return built


def division_name(db: Session, *, code: str) -> str | None:
    """Name of the district or a township, from the cached index (no query, no geometry)."""
    idx = _index(db)
    if code == idx.district.code:
        return idx.district.name
    return next((d.name for d, _g in idx.townships if d.code == code), None)


def locate(db: Session, *, lon: float, lat: float, crs: str = "wgs84") -> dict[str, Any]:
    """Township and unit-grid cell of a point given in WGS-84, GCJ-02 or BD-09."""
    try:
        system = coords.parse_crs(crs)
        lon, lat = coords.validate_lonlat(lon, lat)
        wlon, wlat = coords.to_wgs84(lon, lat, system)
    except coords.CoordinateError as exc:
        raise Invalid(str(exc)) from None
    idx = _index(db)
    point = shapely.Point(wlon, wlat)
    # covers(): a point exactly on the boundary line still counts as inside.
    if not idx.district_geom.covers(point):
        raise OutsideDistrict(
            f"point ({lon}, {lat}) [{system.value}] is outside {idx.district.name} ({idx.district.code})",
            lon=lon, lat=lat,
        )
    township = next((d for d, g in idx.townships if g.covers(point)), None)
    if township is None:  # a sliver between generated township pieces: take the nearest
        township = min(idx.townships, key=lambda dg: dg[1].distance(point))[0]
    return {
        "lon": lon, "lat": lat, "crs": system.value, "wgs84": (round(wlon, 7), round(wlat, 7)),
        "district_code": idx.district.code, "district_name": idx.district.name,
        "township_code": township.code, "township_name": township.name,
        "township_approximate": township.approximate,
        "grid_code": _grid_code(db, idx, point, township.code),
    }


def _grid_code(db: Session, idx: _Index, point: shapely.Point, township_code: str) -> str | None:
    lat_ = idx.lattice
    if lat_ is None:
        return None
    x, y = lonlat_to_utm(point.x, point.y)
    row = math.floor((lat_.origin_y - y) / lat_.cell_size_m)
    col = math.floor((x - lat_.origin_x) / lat_.cell_size_m)
    found = idx.cells.get((row, col))
    if not found:
        return None
    for code, division_code in found:
        if division_code == township_code:
            return code
    pieces = list(db.scalars(select(GridCell).where(GridCell.row == row, GridCell.col == col)))
    # The township test and the clipped cell disagree only on a shared edge: nearest piece wins.
    return min(pieces, key=lambda p: shape(json.loads(p.geometry)).distance(point)).code
