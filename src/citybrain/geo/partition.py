"""Approximate township (镇/街道) polygons for 周村区 (Zhoucun, 370306).

No public township boundaries exist for Zhoucun, so the demo generates a plausible
partition of the real district outline: the five 街道 share a small urban core around the
district seat and the five 镇 share the remainder, each by a Voronoi split around a seed
point.  The seeds are hand-placed approximations (from the brief's description of where
each unit lies), NOT surveyed seats; the result is suitable for a demo dashboard only.

All geometry work is done in UTM 50N so that "3.5 km" and Voronoi distances are metres;
results are returned in WGS-84.
"""

from __future__ import annotations

import csv
import io
import json
from functools import cache
from importlib import resources
from typing import TypedDict

import shapely
from shapely.geometry import shape

from citybrain.geo.projection import lonlat_to_utm, to_utm, to_wgs84_geom

__all__ = [
    "BOUNDARY_WGS84_FILE",
    "DISTRICT_CODE",
    "DISTRICT_SEAT_WGS84",
    "SEEDS_WGS84",
    "TOWNSHIPS_FILE",
    "URBAN_CORE_RADIUS_M",
    "Township",
    "load_boundary_wgs84",
    "load_townships",
    "partition_townships",
]

DISTRICT_CODE = "370306"
BOUNDARY_WGS84_FILE = "zhoucun_370306_boundary_wgs84_derived.geojson"
TOWNSHIPS_FILE = "zhoucun_370306_towns_subdistricts_2023.csv"

# Amap/DataV district "center" converted to WGS-84 (zhoucun_named_places.csv); this is the
# conventional government-seat point, used as the centre of the urban core.
DISTRICT_SEAT_WGS84: tuple[float, float] = (117.845192, 36.803456)

# Radius of the urban core shared by the five 街道. 3.5 km gives each subdistrict a few to
# ~10 km², matching a county-level seat town, and leaves the 镇 the rural remainder.
URBAN_CORE_RADIUS_M = 3500.0

# Approximate placement only (WGS-84 lon, lat). 街道 seeds sit around the seat inside the
# urban core; 镇 seeds follow the brief: 北郊 north of the city, 南郊 south, 王村 in the
# western lobe (the district reaches lon 117.69 there), 萌水 south and 商家 south-east
# around 文昌湖.  Moving a seed only moves the demo boundaries.
SEEDS_WGS84: dict[str, tuple[float, float]] = {
    "370306001000": (117.856, 36.797),  # 丝绸路街道: centre/south-east of the seat
    "370306002000": (117.834, 36.806),  # 大街街道: old town (周村古商城) west of the seat
    "370306003000": (117.838, 36.786),  # 青年路街道: south-west
    "370306004000": (117.873, 36.808),  # 永安街道: east
    "370306005000": (117.850, 36.826),  # 城北路街道: north
    "370306100000": (117.900, 36.850),  # 北郊镇: north of the city
    "370306101000": (117.880, 36.760),  # 南郊镇: south of the city
    "370306102000": (117.750, 36.680),  # 王村镇: western lobe
    "370306103000": (117.835, 36.705),  # 萌水镇: south (文昌湖 area)
    "370306104000": (117.915, 36.720),  # 商家镇: south-east (文昌湖 area)
}

# Straight edges in one CRS are curves in the other (metres of sag over a 10 km Voronoi
# edge), so edges are densified before each reprojection to keep both versions aligned.
_DENSIFY_DEG = 0.001
_DENSIFY_M = 100.0

# Anything thinner than this is floating-point debris from intersecting shared edges.
_MIN_PIECE_AREA_M2 = 1e-3
# Detached fragments smaller than this (a few grid cells' worth, m²) are where a Voronoi
# edge or the core circle nicks a ragged stretch of the outline; handing them to the
# neighbour they border most keeps township shapes plausible.
_FRAGMENT_AREA_M2 = 250_000.0


class Township(TypedDict):
    code12: str
    code9: str
    name: str
    type: str


def _read_data(name: str) -> str:
    return resources.files("citybrain.geo").joinpath("data", name).read_text(encoding="utf-8")


@cache
def _boundary_wkb() -> bytes:
    collection = json.loads(_read_data(BOUNDARY_WGS84_FILE))
    geoms = [shape(feature["geometry"]) for feature in collection["features"]]
    return shapely.union_all(geoms).wkb


def load_boundary_wgs84() -> shapely.Geometry:
    """The 周村区 outline in WGS-84 (derived from Amap GCJ-02 data, ~1 m accuracy)."""
    # Cache bytes, not the object, so callers can never mutate a shared geometry.
    return shapely.from_wkb(_boundary_wkb())


def load_townships() -> list[Township]:
    """The 10 township-level units from the NBS 2023 code list, in code order."""
    reader = csv.DictReader(io.StringIO(_read_data(TOWNSHIPS_FILE)))
    rows: list[Township] = [
        {"code12": r["code12"], "code9": r["code9"], "name": r["name"], "type": r["type"]}
        for r in reader
    ]
    return sorted(rows, key=lambda r: r["code12"])


def _polygonal(geom: shapely.Geometry) -> shapely.Geometry:
    """Keep only the non-degenerate polygon parts of an overlay result."""
    parts = [
        p
        for p in shapely.get_parts(geom)
        if p.geom_type == "Polygon" and p.area > _MIN_PIECE_AREA_M2
    ]
    if not parts:
        return shapely.Polygon()
    if len(parts) == 1:
        return parts[0]
    return shapely.MultiPolygon(parts)


def _voronoi_split(
    region: shapely.Geometry, seeds: dict[str, tuple[float, float]]
) -> dict[str, shapely.Geometry]:
    """Split a planar region among seeds (x, y metres) by nearest seed."""
    points = shapely.MultiPoint(list(seeds.values()))
    # Extend well past the region so no cell is cut short by the diagram's own envelope.
    envelope = shapely.box(*region.bounds).buffer(10_000.0)
    cells = shapely.get_parts(shapely.voronoi_polygons(points, extend_to=envelope))
    pieces: dict[str, shapely.Geometry] = {}
    for code, xy in seeds.items():
        # Match by containment rather than output order, which GEOS does not promise.
        seed = shapely.Point(xy)
        cell = next(c for c in cells if c.covers(seed))
        pieces[code] = _polygonal(shapely.intersection(cell, region))
    return pieces


def _absorb_fragments(pieces: dict[str, shapely.Geometry]) -> dict[str, shapely.Geometry]:
    """Move small detached parts of a township to the neighbour sharing most border."""
    result = dict(pieces)
    for code in sorted(pieces):
        parts = sorted(shapely.get_parts(result[code]), key=lambda p: p.area, reverse=True)
        if len(parts) < 2:
            continue
        keep = [parts[0]]
        for part in parts[1:]:
            target = _best_neighbour(part, code, result) if part.area < _FRAGMENT_AREA_M2 else None
            if target is None:
                keep.append(part)
            else:
                result[target] = _polygonal(shapely.union(result[target], part))
        result[code] = _polygonal(shapely.MultiPolygon(keep))
    return result


def _best_neighbour(
    part: shapely.Geometry, owner: str, pieces: dict[str, shapely.Geometry]
) -> str | None:
    best, best_length = None, 1.0  # require at least a metre of shared edge
    for code, geom in pieces.items():
        if code == owner:
            continue
        shared = shapely.intersection(part.boundary, geom.boundary).length
        if shared > best_length:
            best, best_length = code, shared
    return best


def _check_seeds(townships: list[Township]) -> None:
    missing = {t["code12"] for t in townships} ^ set(SEEDS_WGS84)
    if missing:
        raise ValueError(f"township list and seed table disagree on codes: {sorted(missing)}")


def partition_townships(boundary: shapely.Geometry) -> dict[str, shapely.Geometry]:
    """Split a WGS-84 district boundary into the 10 townships (code12 -> WGS-84 geometry).

    The pieces are an exact partition of `boundary` up to floating point: they do not
    overlap and their union is the boundary.  Pieces may be MultiPolygons where a Voronoi
    cell is cut by the district outline or the urban-core circle.
    """
    townships = load_townships()
    _check_seeds(townships)
    district = shapely.make_valid(to_utm(shapely.segmentize(boundary, _DENSIFY_DEG)))
    seat = shapely.Point(lonlat_to_utm(*DISTRICT_SEAT_WGS84))
    core = shapely.intersection(district, seat.buffer(URBAN_CORE_RADIUS_M, quad_segs=32))
    rural = shapely.difference(district, core)

    def seeds_of(kind: str) -> dict[str, tuple[float, float]]:
        return {
            t["code12"]: lonlat_to_utm(*SEEDS_WGS84[t["code12"]])
            for t in townships
            if t["type"] == kind
        }

    pieces = _voronoi_split(core, seeds_of("街道")) | _voronoi_split(rural, seeds_of("镇"))
    pieces = _absorb_fragments(pieces)
    empty = sorted(code for code, geom in pieces.items() if geom.is_empty)
    if empty:
        raise ValueError(f"seed placement leaves townships without area: {empty}")
    result: dict[str, shapely.Geometry] = {}
    for code in sorted(pieces):
        geom = to_wgs84_geom(shapely.segmentize(pieces[code], _DENSIFY_M))
        # Reprojection moves vertices by float noise only; repair just in case it folds a
        # hair-thin spike, so consumers always receive valid geometry.
        result[code] = geom if geom.is_valid else _polygonal_deg(shapely.make_valid(geom))
    return result


def _polygonal_deg(geom: shapely.Geometry) -> shapely.Geometry:
    parts = [p for p in shapely.get_parts(geom) if p.geom_type == "Polygon" and p.area > 0]
    return parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)
