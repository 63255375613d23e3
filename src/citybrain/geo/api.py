"""GeoJSON endpoints: divisions, unit grid by bounding box, locate a point."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from citybrain.core.actor import Actor
from citybrain.core.auth import require
from citybrain.core.db import DbSession

from . import service
from .schemas import Location

router = APIRouter()
GeoReader = Annotated[Actor, require("geo:read")]


@router.get("/divisions", summary="District and township polygons as a GeoJSON FeatureCollection (WGS-84)")
def divisions(db: DbSession, _actor: GeoReader) -> dict[str, Any]:
    return service.divisions_geojson(db)


@router.get("/grids", summary="Unit-grid cells intersecting a bounding box (WGS-84)")
def grids(
    db: DbSession, _actor: GeoReader,
    bbox: Annotated[str, Query(description="minLon,minLat,maxLon,maxLat in WGS-84")],
    limit: Annotated[int, Query(ge=1, le=20000)] = 5000,
) -> dict[str, Any]:
    return service.grids_geojson(db, bbox=service.parse_bbox(bbox), limit=limit)


@router.get("/grids/{code}", summary="One unit-grid cell")
def grid_cell(db: DbSession, _actor: GeoReader, code: str) -> dict[str, Any]:
    import json

    cell = service.get_grid_cell(db, code=code)
    return {"type": "Feature", "id": cell.code, "geometry": json.loads(cell.geometry),
            "properties": {"code": cell.code, "division_code": cell.division_code, "area_m2": cell.area_m2}}


@router.get("/locate", response_model=Location, summary="Township and unit-grid cell of a point")
def locate(
    db: DbSession, _actor: GeoReader,
    lon: Annotated[float, Query(description="longitude in the given CRS")],
    lat: Annotated[float, Query(description="latitude in the given CRS")],
    crs: Annotated[str, Query(description="wgs84 (also cgcs2000), gcj02 or bd09")] = "wgs84",
) -> Location:
    return Location(**service.locate(db, lon=lon, lat=lat, crs=crs))
