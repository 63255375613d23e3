"""WGS-84 <-> UTM zone 50N for planar work (areas, Voronoi, 100 m grid) on Zhoucun.

Zhoucun lies at about 117.7-118.0 E, inside UTM zone 50 (114-120 E), so distortion is
well under 0.1 % and metres in EPSG:32650 can be treated as ground metres.
"""

from __future__ import annotations

from functools import cache
from typing import TypeVar

import numpy as np
import shapely
from numpy.typing import NDArray
from pyproj import Transformer

__all__ = ["UTM_EPSG", "to_utm", "to_wgs84_geom", "utm_to_lonlat", "lonlat_to_utm"]

UTM_EPSG = 32650

G = TypeVar("G", shapely.Geometry, NDArray[np.object_])


@cache
def _forward() -> Transformer:
    # always_xy keeps (lon, lat) order regardless of the CRS axis definition.
    return Transformer.from_crs(4326, UTM_EPSG, always_xy=True)


@cache
def _inverse() -> Transformer:
    return Transformer.from_crs(UTM_EPSG, 4326, always_xy=True)


def _apply(transformer: Transformer, coords: NDArray[np.float64]) -> NDArray[np.float64]:
    x, y = transformer.transform(coords[:, 0], coords[:, 1])
    return np.column_stack([x, y])


def to_utm(geom: G) -> G:
    """Project a WGS-84 geometry (or array of geometries) to UTM 50N metres."""
    return shapely.transform(geom, lambda c: _apply(_forward(), c))


def to_wgs84_geom(geom: G) -> G:
    """Project a UTM 50N geometry (or array of geometries) back to WGS-84 lon/lat."""
    return shapely.transform(geom, lambda c: _apply(_inverse(), c))


def lonlat_to_utm(lon: float, lat: float) -> tuple[float, float]:
    x, y = _forward().transform(lon, lat)
    return float(x), float(y)


def utm_to_lonlat(x: float, y: float) -> tuple[float, float]:
    lon, lat = _inverse().transform(x, y)
    return float(lon), float(lat)
