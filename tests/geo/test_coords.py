"""WGS-84 / GCJ-02 / BD-09 conversions against published and packaged reference points."""

from __future__ import annotations

import csv
import math
from importlib import resources

import pytest

from citybrain.geo.coords import (
    CRS,
    CoordinateError,
    bd09_to_gcj02,
    from_wgs84,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    parse_crs,
    to_wgs84,
    validate_lonlat,
    wgs84_to_gcj02,
)

ZHOUCUN_SEAT_WGS84 = (117.845192, 36.803456)


def _ground_offset_m(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    """(east, north) metres from a to b; a local spherical approximation is plenty here."""
    radius = 6_371_000.0
    east = math.radians(b[0] - a[0]) * radius * math.cos(math.radians(a[1]))
    north = math.radians(b[1] - a[1]) * radius
    return east, north


def _named_places() -> list[dict[str, str]]:
    text = (
        resources.files("citybrain.geo")
        .joinpath("data", "zhoucun_named_places.csv")
        .read_text(encoding="utf-8")
    )
    return [row for row in csv.DictReader(text.splitlines()) if row["lon"]]


@pytest.mark.parametrize(
    "point", [ZHOUCUN_SEAT_WGS84, (117.69, 36.64), (117.975, 36.892), (117.80, 36.75)]
)
def test_zhoucun_gcj_offset_is_about_520m_east_25m_north(point: tuple[float, float]) -> None:
    east, north = _ground_offset_m(point, wgs84_to_gcj02(*point))
    assert 490 < east < 550
    assert 5 < north < 50


def test_packaged_named_places_agree_with_their_derived_wgs84() -> None:
    places = _named_places()
    assert len(places) == 5
    for row in places:
        lon, lat = gcj02_to_wgs84(float(row["lon"]), float(row["lat"]))
        # The CSV rounds to 6 decimals, so half a unit in the last place plus noise.
        assert lon == pytest.approx(float(row["lon_wgs84_derived"]), abs=2e-6)
        assert lat == pytest.approx(float(row["lat_wgs84_derived"]), abs=2e-6)


def test_beijing_railway_station_published_triple() -> None:
    # Documented in the geoChina R package (conv): WGS-84 (39.90105, 116.42079),
    # GCJ-02 (39.90245, 116.42703), BD-09 (39.90851, 116.43351); 5 decimals given.
    wgs, gcj, bd = (116.42079, 39.90105), (116.42703, 39.90245), (116.43351, 39.90851)
    assert wgs84_to_gcj02(*wgs) == pytest.approx(gcj, abs=1e-5)
    assert gcj02_to_wgs84(*gcj) == pytest.approx(wgs, abs=1e-5)
    assert gcj02_to_bd09(*gcj) == pytest.approx(bd, abs=1e-5)
    assert bd09_to_gcj02(*bd) == pytest.approx(gcj, abs=1e-5)
    # Chained through two independently rounded values, so allow twice the rounding.
    assert from_wgs84(*wgs, CRS.BD09) == pytest.approx(bd, abs=2e-5)
    assert to_wgs84(*bd, "bd09") == pytest.approx(wgs, abs=2e-5)


def test_amap_convert_api_documented_example() -> None:
    # Amap web-service "coordinate/convert" documentation example (coordsys=gps):
    # 116.481499,39.990475 -> 116.487585177952,39.991754014757.
    assert wgs84_to_gcj02(116.481499, 39.990475) == pytest.approx(
        (116.487585177952, 39.991754014757), abs=1e-6
    )


ROUND_TRIP_POINTS = [
    ZHOUCUN_SEAT_WGS84,
    (117.689169, 36.640889),
    (117.97507, 36.891962),
    (116.404, 39.915),
    (121.4737, 31.2304),
    (113.2644, 23.1291),
    (87.6168, 43.8256),
    (126.6424, 45.7567),
    (109.5, 18.25),
]


@pytest.mark.parametrize("point", ROUND_TRIP_POINTS)
def test_round_trips_are_tight(point: tuple[float, float]) -> None:
    assert gcj02_to_wgs84(*wgs84_to_gcj02(*point)) == pytest.approx(point, abs=1e-7)
    assert bd09_to_gcj02(*gcj02_to_bd09(*point)) == pytest.approx(point, abs=1e-7)
    for crs in CRS:
        assert to_wgs84(*from_wgs84(*point, crs), crs) == pytest.approx(point, abs=1e-6)


def test_inverse_is_a_true_inverse_not_the_one_step_approximation() -> None:
    gcj = wgs84_to_gcj02(*ZHOUCUN_SEAT_WGS84)
    back = gcj02_to_wgs84(*gcj)
    assert abs(back[0] - ZHOUCUN_SEAT_WGS84[0]) < 1e-9
    assert abs(back[1] - ZHOUCUN_SEAT_WGS84[1]) < 1e-9


def test_outside_china_gcj_is_identity() -> None:
    paris = (2.3522, 48.8566)
    assert wgs84_to_gcj02(*paris) == paris
    assert gcj02_to_wgs84(*paris) == paris
    assert to_wgs84(*paris, CRS.GCJ02) == paris


def test_wgs84_conversion_is_identity() -> None:
    assert to_wgs84(117.8, 36.8, "wgs84") == (117.8, 36.8)
    assert from_wgs84(117.8, 36.8, CRS.WGS84) == (117.8, 36.8)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("wgs84", CRS.WGS84),
        ("WGS-84", CRS.WGS84),
        ("cgcs2000", CRS.WGS84),
        ("CGCS2000", CRS.WGS84),
        ("gcj02", CRS.GCJ02),
        (" GCJ-02 ", CRS.GCJ02),
        ("bd09", CRS.BD09),
        (CRS.BD09, CRS.BD09),
    ],
)
def test_parse_crs(text: str, expected: CRS) -> None:
    assert parse_crs(text) is expected


@pytest.mark.parametrize("bad", ["utm50", "", "bd-11", None, 4326])
def test_parse_crs_rejects_unknown_names(bad: object) -> None:
    with pytest.raises(CoordinateError, match="coordinate system"):
        parse_crs(bad)  # type: ignore[arg-type]


def test_unknown_crs_message_lists_choices() -> None:
    with pytest.raises(CoordinateError, match="wgs84, gcj02, bd09"):
        to_wgs84(117.8, 36.8, "mercator")


@pytest.mark.parametrize(
    ("lon", "lat", "message"),
    [
        (float("nan"), 36.8, "longitude must be a finite number"),
        (117.8, float("nan"), "latitude must be a finite number"),
        (float("inf"), 36.8, "finite"),
        (117.8, float("-inf"), "finite"),
        (117.8, 91.0, "latitude 91.0 is out of range"),
        (117.8, -90.5, "latitude"),
        (200.0, 36.8, "longitude 200.0 is out of range"),
        (-180.1, 36.8, "longitude"),
        ("117.8", 36.8, "longitude must be a number"),
        (117.8, "36.8", "latitude must be a number"),
        (None, 36.8, "must be a number"),
        (True, 36.8, "must be a number"),
    ],
)
def test_invalid_inputs_are_refused(lon: object, lat: object, message: str) -> None:
    with pytest.raises(CoordinateError, match=message):
        validate_lonlat(lon, lat)
    for convert in (wgs84_to_gcj02, gcj02_to_wgs84, gcj02_to_bd09, bd09_to_gcj02):
        with pytest.raises(CoordinateError):
            convert(lon, lat)  # type: ignore[arg-type]
    with pytest.raises(CoordinateError):
        to_wgs84(lon, lat, "gcj02")  # type: ignore[arg-type]


def test_coordinate_error_is_a_value_error() -> None:
    assert issubclass(CoordinateError, ValueError)


def test_validate_accepts_ints_and_range_limits() -> None:
    assert validate_lonlat(180, -90) == (180.0, -90.0)
    assert validate_lonlat(-180.0, 90.0) == (-180.0, 90.0)
