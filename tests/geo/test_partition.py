"""Generated township partition of 周村区: exactness, identity and plausibility."""

from __future__ import annotations

import itertools

import pytest
import shapely

from citybrain.geo.partition import (
    DISTRICT_SEAT_WGS84,
    SEEDS_WGS84,
    load_boundary_wgs84,
    load_townships,
    partition_townships,
)
from citybrain.geo.projection import to_utm

EXPECTED = {
    "370306001000": ("丝绸路街道", "街道"),
    "370306002000": ("大街街道", "街道"),
    "370306003000": ("青年路街道", "街道"),
    "370306004000": ("永安街道", "街道"),
    "370306005000": ("城北路街道", "街道"),
    "370306100000": ("北郊镇", "镇"),
    "370306101000": ("南郊镇", "镇"),
    "370306102000": ("王村镇", "镇"),
    "370306103000": ("萌水镇", "镇"),
    "370306104000": ("商家镇", "镇"),
}


@pytest.fixture(scope="module")
def boundary() -> shapely.Geometry:
    return load_boundary_wgs84()


@pytest.fixture(scope="module")
def parts(boundary: shapely.Geometry) -> dict[str, shapely.Geometry]:
    return partition_townships(boundary)


@pytest.fixture(scope="module")
def parts_utm(parts: dict[str, shapely.Geometry]) -> dict[str, shapely.Geometry]:
    return {code: to_utm(geom) for code, geom in parts.items()}


def test_boundary_is_the_real_district(boundary: shapely.Geometry) -> None:
    assert boundary.is_valid
    min_x, min_y, max_x, max_y = boundary.bounds
    assert min_x == pytest.approx(117.689, abs=2e-3)
    assert max_x == pytest.approx(117.975, abs=2e-3)
    assert min_y == pytest.approx(36.641, abs=2e-3)
    assert max_y == pytest.approx(36.892, abs=2e-3)
    # About 306 km² per the data README.
    assert to_utm(boundary).area / 1e6 == pytest.approx(306, rel=0.01)


def test_load_townships_has_the_ten_official_units() -> None:
    townships = load_townships()
    assert len(townships) == 10
    for row in townships:
        assert (row["name"], row["type"]) == EXPECTED[row["code12"]]
        assert row["code9"] == row["code12"][:9]
    assert set(SEEDS_WGS84) == set(EXPECTED)


def test_every_township_gets_a_valid_non_empty_piece(parts: dict[str, shapely.Geometry]) -> None:
    assert set(parts) == set(EXPECTED)
    for geom in parts.values():
        assert geom.is_valid
        assert not geom.is_empty
        assert geom.geom_type in {"Polygon", "MultiPolygon"}


def test_union_equals_boundary(
    boundary: shapely.Geometry, parts_utm: dict[str, shapely.Geometry]
) -> None:
    district = to_utm(boundary)
    union = shapely.union_all(list(parts_utm.values()))
    assert shapely.symmetric_difference(union, district).area / district.area < 1e-3
    total = sum(geom.area for geom in parts_utm.values())
    assert total == pytest.approx(district.area, rel=1e-3)


def test_pieces_do_not_overlap(parts_utm: dict[str, shapely.Geometry]) -> None:
    for (a, ga), (b, gb) in itertools.combinations(parts_utm.items(), 2):
        assert shapely.intersection(ga, gb).area < 1.0, (a, b)  # m²


def test_subdistricts_are_small_and_urban(parts_utm: dict[str, shapely.Geometry]) -> None:
    seat = to_utm(shapely.Point(DISTRICT_SEAT_WGS84))
    street_areas = [parts_utm[c].area for c in EXPECTED if EXPECTED[c][1] == "街道"]
    town_areas = [parts_utm[c].area for c in EXPECTED if EXPECTED[c][1] == "镇"]
    assert all(2e6 < a < 15e6 for a in street_areas)
    assert max(street_areas) < min(town_areas)
    for code, (_, kind) in EXPECTED.items():
        if kind == "街道":
            assert parts_utm[code].centroid.distance(seat) < 4000


def test_towns_fit_the_four_digit_grid_sequence(parts_utm: dict[str, shapely.Geometry]) -> None:
    # 9,999 cells of 1 ha each, minus headroom for border-split cells.
    assert all(geom.area < 90e6 for geom in parts_utm.values())


def test_seat_is_in_a_subdistrict(parts: dict[str, shapely.Geometry]) -> None:
    seat = shapely.Point(DISTRICT_SEAT_WGS84)
    owners = [code for code, geom in parts.items() if geom.covers(seat)]
    assert len(owners) == 1
    assert EXPECTED[owners[0]][1] == "街道"


def test_each_seed_lies_in_its_own_township(parts: dict[str, shapely.Geometry]) -> None:
    for code, seed in SEEDS_WGS84.items():
        assert parts[code].covers(shapely.Point(seed)), code


def test_rough_placement_of_towns(parts: dict[str, shapely.Geometry]) -> None:
    centroid = {code: geom.centroid for code, geom in parts.items()}
    seat_lat = DISTRICT_SEAT_WGS84[1]
    assert centroid["370306100000"].y > seat_lat  # 北郊 north
    assert centroid["370306101000"].y < seat_lat  # 南郊 south
    # 王村 is the westernmost unit.
    assert min(centroid, key=lambda c: centroid[c].x) == "370306102000"
    assert centroid["370306103000"].y < seat_lat  # 萌水 south
    assert centroid["370306104000"].y < seat_lat  # 商家 south-east
    assert centroid["370306104000"].x > centroid["370306103000"].x


def test_partition_is_deterministic(boundary: shapely.Geometry, parts) -> None:
    again = partition_townships(boundary)
    assert all(shapely.equals_exact(again[c], parts[c], tolerance=0) for c in parts)


def test_loaded_boundary_is_a_fresh_copy() -> None:
    assert load_boundary_wgs84() is not load_boundary_wgs84()
