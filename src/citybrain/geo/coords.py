"""Conversions between WGS-84, GCJ-02 and BD-09 longitude/latitude.

Chinese web maps do not publish WGS-84 coordinates: Amap, Tencent and WeChat use GCJ-02
(WGS-84 shifted by a published, deliberately irregular formula), Baidu uses BD-09 (GCJ-02
with a further polar perturbation).  The platform stores WGS-84 and converts only at the
edges, so every function here maps one (lon, lat) pair and is pure.

The GCJ-02 forward transform has no closed-form inverse; `gcj02_to_wgs84` solves it by
fixed-point iteration, which converges because the offset varies slowly (its derivative is
of the order of 1e-3), so each step gains about three decimal digits.
"""

from __future__ import annotations

import math
from enum import StrEnum

__all__ = [
    "CRS",
    "CoordinateError",
    "bd09_to_gcj02",
    "from_wgs84",
    "gcj02_to_bd09",
    "gcj02_to_wgs84",
    "out_of_china",
    "parse_crs",
    "to_wgs84",
    "validate_lonlat",
    "wgs84_to_gcj02",
]

# Krasovsky 1940 ellipsoid, which the GCJ-02 formula is defined on.
_KRASOVSKY_A = 6378245.0
_KRASOVSKY_EE = 0.00669342162296594323
_X_PI = math.pi * 3000.0 / 180.0

# Stop iterating well below the 1e-7 degree (about 1 cm) target so that round trips stay
# comfortably inside it even after floating-point noise.
_INVERSE_TOLERANCE = 1e-10
_MAX_ITERATIONS = 50


class CoordinateError(ValueError):
    """A coordinate or coordinate-system name that cannot be used."""


class CRS(StrEnum):
    WGS84 = "wgs84"
    GCJ02 = "gcj02"
    BD09 = "bd09"


# CGCS2000 differs from WGS-84 by centimetres, far below what GCJ-02 data can resolve.
_CRS_ALIASES: dict[str, CRS] = {
    "wgs84": CRS.WGS84,
    "wgs-84": CRS.WGS84,
    "epsg:4326": CRS.WGS84,
    "cgcs2000": CRS.WGS84,
    "epsg:4490": CRS.WGS84,
    "gcj02": CRS.GCJ02,
    "gcj-02": CRS.GCJ02,
    "bd09": CRS.BD09,
    "bd-09": CRS.BD09,
}


def parse_crs(text: str | CRS) -> CRS:
    """Return the CRS named by `text` (case-insensitive; "cgcs2000" means WGS-84)."""
    if isinstance(text, CRS):
        return text
    if not isinstance(text, str):
        raise CoordinateError(f"coordinate system name must be a string, got {text!r}")
    crs = _CRS_ALIASES.get(text.strip().lower())
    if crs is None:
        known = ", ".join(c.value for c in CRS)
        raise CoordinateError(
            f"unknown coordinate system {text!r}; expected one of {known} (or cgcs2000)"
        )
    return crs


def validate_lonlat(lon: object, lat: object) -> tuple[float, float]:
    """Check that lon/lat are finite numbers in range and return them as floats."""
    values = []
    for name, value in (("longitude", lon), ("latitude", lat)):
        # bool is an int subclass, but True/False as a coordinate is always a bug.
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise CoordinateError(f"{name} must be a number, got {value!r}")
        number = float(value)
        if not math.isfinite(number):
            raise CoordinateError(f"{name} must be a finite number, got {value!r}")
        values.append(number)
    lon_f, lat_f = values
    if not -180.0 <= lon_f <= 180.0:
        raise CoordinateError(f"longitude {lon_f} is out of range (-180 to 180)")
    if not -90.0 <= lat_f <= 90.0:
        raise CoordinateError(f"latitude {lat_f} is out of range (-90 to 90)")
    return lon_f, lat_f


def out_of_china(lon: float, lat: float) -> bool:
    """True outside the rough bounding box where GCJ-02 applies (the conventional box)."""
    return not (72.004 <= lon <= 137.8347 and 0.8293 <= lat <= 55.8271)


def _lat_shift(x: float, y: float) -> float:
    shift = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
    shift += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    shift += (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    shift += (
        (160.0 * math.sin(y / 12.0 * math.pi) + 320.0 * math.sin(y / 30.0 * math.pi)) * 2.0 / 3.0
    )
    return shift


def _lon_shift(x: float, y: float) -> float:
    shift = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
    shift += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    shift += (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    shift += (
        (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    )
    return shift


def _gcj_offset(lon: float, lat: float) -> tuple[float, float]:
    """GCJ-02 minus WGS-84 at a WGS-84 point, in degrees (zero outside China)."""
    if out_of_china(lon, lat):
        return 0.0, 0.0
    # The shift functions give metres-ish on a sphere; scale them to degrees using the
    # Krasovsky meridian and prime-vertical radii of curvature at this latitude.
    rad_lat = math.radians(lat)
    w = 1.0 - _KRASOVSKY_EE * math.sin(rad_lat) ** 2
    sqrt_w = math.sqrt(w)
    meridian_radius = _KRASOVSKY_A * (1.0 - _KRASOVSKY_EE) / (w * sqrt_w)
    normal_radius = _KRASOVSKY_A / sqrt_w
    d_lat = _lat_shift(lon - 105.0, lat - 35.0) * 180.0 / (meridian_radius * math.pi)
    d_lon = (
        _lon_shift(lon - 105.0, lat - 35.0) * 180.0 / (normal_radius * math.cos(rad_lat) * math.pi)
    )
    return d_lon, d_lat


def wgs84_to_gcj02(lon: float, lat: float) -> tuple[float, float]:
    lon, lat = validate_lonlat(lon, lat)
    d_lon, d_lat = _gcj_offset(lon, lat)
    return lon + d_lon, lat + d_lat


def gcj02_to_wgs84(lon: float, lat: float) -> tuple[float, float]:
    """Invert the GCJ-02 transform iteratively (error far below 1e-7 degrees)."""
    lon, lat = validate_lonlat(lon, lat)
    if out_of_china(lon, lat):
        return lon, lat
    # Solve forward(w) == g by w <- w - (forward(w) - g), starting from the GCJ point.
    w_lon, w_lat = lon, lat
    for _ in range(_MAX_ITERATIONS):
        d_lon, d_lat = _gcj_offset(w_lon, w_lat)
        err_lon = w_lon + d_lon - lon
        err_lat = w_lat + d_lat - lat
        w_lon -= err_lon
        w_lat -= err_lat
        if abs(err_lon) < _INVERSE_TOLERANCE and abs(err_lat) < _INVERSE_TOLERANCE:
            break
    return w_lon, w_lat


def _bd_forward(lon: float, lat: float) -> tuple[float, float]:
    radius = math.hypot(lon, lat) + 0.00002 * math.sin(lat * _X_PI)
    theta = math.atan2(lat, lon) + 0.000003 * math.cos(lon * _X_PI)
    return radius * math.cos(theta) + 0.0065, radius * math.sin(theta) + 0.006


def gcj02_to_bd09(lon: float, lat: float) -> tuple[float, float]:
    lon, lat = validate_lonlat(lon, lat)
    return _bd_forward(lon, lat)


def bd09_to_gcj02(lon: float, lat: float) -> tuple[float, float]:
    """Invert BD-09, refining the usual closed-form approximation to sub-1e-9 degrees.

    The textbook inverse evaluates the perturbation at the BD point instead of the GCJ
    point, which leaves errors of a few 1e-6 degrees; a few Newton-free fixed-point steps
    remove them so that GCJ -> BD -> GCJ round trips are exact to float noise.
    """
    lon, lat = validate_lonlat(lon, lat)
    x, y = lon - 0.0065, lat - 0.006
    radius = math.hypot(x, y) - 0.00002 * math.sin(y * _X_PI)
    theta = math.atan2(y, x) - 0.000003 * math.cos(x * _X_PI)
    g_lon, g_lat = radius * math.cos(theta), radius * math.sin(theta)
    for _ in range(_MAX_ITERATIONS):
        f_lon, f_lat = _bd_forward(g_lon, g_lat)
        err_lon, err_lat = f_lon - lon, f_lat - lat
        g_lon -= err_lon
        g_lat -= err_lat
        if abs(err_lon) < _INVERSE_TOLERANCE and abs(err_lat) < _INVERSE_TOLERANCE:
            break
    return g_lon, g_lat


def to_wgs84(lon: float, lat: float, crs: str | CRS) -> tuple[float, float]:
    """Convert a point given in `crs` to WGS-84."""
    source = parse_crs(crs)
    if source is CRS.WGS84:
        return validate_lonlat(lon, lat)
    if source is CRS.GCJ02:
        return gcj02_to_wgs84(lon, lat)
    return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))


def from_wgs84(lon: float, lat: float, crs: str | CRS) -> tuple[float, float]:
    """Convert a WGS-84 point to `crs`."""
    target = parse_crs(crs)
    if target is CRS.WGS84:
        return validate_lonlat(lon, lat)
    gcj = wgs84_to_gcj02(lon, lat)
    if target is CRS.GCJ02:
        return gcj
    return gcj02_to_bd09(*gcj)
