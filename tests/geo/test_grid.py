"""Unit grid (万米单元网格): codes, ordering, coverage and point lookup."""

from __future__ import annotations

import random
from collections import defaultdict

import numpy as np
import pytest
import shapely

from citybrain.geo.grid import (
    ZHOUCUN_GRID_ORIGIN,
    GridCell,
    GridIndex,
    cell_square_utm,
    generate_grid,
    lattice_index,
    lattice_origin,
)
from citybrain.geo.partition import (
    DISTRICT_SEAT_WGS84,
    load_boundary_wgs84,
    load_townships,
    partition_townships,
)
from citybrain.geo.projection import to_utm, utm_to_lonlat

CELL_AREA_M2 = 100.0 * 100.0


@pytest.fixture(scope="module")
def boundary() -> shapely.Geometry:
    return load_boundary_wgs84()


@pytest.fixture(scope="module")
def townships(boundary: shapely.Geometry) -> dict[str, shapely.Geometry]:
    return partition_townships(boundary)


@pytest.fixture(scope="module")
def cells(townships: dict[str, shapely.Geometry]) -> list[GridCell]:
    return generate_grid(townships)


@pytest.fixture(scope="module")
def cells_utm(cells: list[GridCell]) -> np.ndarray:
    return to_utm(np.asarray([c.geometry for c in cells], dtype=object))


@pytest.fixture(scope="module")
def index(cells: list[GridCell]) -> GridIndex:
    return GridIndex(cells)


def test_origin_constant_matches_the_boundary(boundary, townships) -> None:
    assert lattice_origin(boundary) == ZHOUCUN_GRID_ORIGIN
    assert lattice_origin(townships.values()) == ZHOUCUN_GRID_ORIGIN
    assert all(v % 1000 == 0 for v in ZHOUCUN_GRID_ORIGIN)


def test_cell_count_is_about_one_per_hectare(cells: list[GridCell]) -> None:
    # ~307 km² -> ~30,700 whole hectares, plus border squares split between townships.
    assert 30_000 < len(cells) < 35_000


def test_codes_are_unique_16_digits_and_carry_the_township(cells: list[GridCell]) -> None:
    codes = [c.code for c in cells]
    assert len(set(codes)) == len(codes)
    known = {t["code12"] for t in load_townships()}
    for cell in cells:
        assert len(cell.code) == 16 and cell.code.isdigit()
        assert cell.division_code in known
        assert cell.code[:12] == cell.division_code[:9] + "000"
    assert codes == sorted(codes)


def test_sequence_runs_west_to_east_then_north_to_south(cells: list[GridCell]) -> None:
    by_township: dict[str, list[GridCell]] = defaultdict(list)
    for cell in cells:
        by_township[cell.division_code].append(cell)
    assert len(by_township) == 10
    for members in by_township.values():
        sequences = [int(c.code[12:]) for c in members]
        assert sequences == list(range(1, len(members) + 1))
        positions = [(c.row, c.col) for c in members]
        assert positions == sorted(positions)
        assert len(set(positions)) == len(positions)  # one piece per square per township


def test_split_squares_differ_in_township(cells: list[GridCell]) -> None:
    by_square: dict[tuple[int, int], list[GridCell]] = defaultdict(list)
    for cell in cells:
        by_square[(cell.row, cell.col)].append(cell)
    split = [group for group in by_square.values() if len(group) > 1]
    assert split, "township borders should split some squares"
    for group in split:
        assert len({c.division_code for c in group}) == len(group)


def test_cells_are_valid_and_inside_district_and_township(
    cells: list[GridCell], boundary, townships
) -> None:
    geoms = np.asarray([c.geometry for c in cells], dtype=object)
    assert shapely.is_valid(geoms).all()
    # Pieces are cut in UTM and reprojected; 1e-7 degrees (~1 cm) absorbs that float noise.
    slack = 1e-7
    assert shapely.covers(boundary.buffer(slack), geoms).all()
    for code, geom in townships.items():
        mine = np.asarray([c.division_code == code for c in cells])
        assert shapely.covers(geom.buffer(slack), geoms[mine]).all()


def test_total_cell_area_equals_district_area(boundary, cells_utm) -> None:
    areas = shapely.area(cells_utm)
    assert areas.max() == pytest.approx(CELL_AREA_M2, rel=1e-6)
    assert areas.sum() == pytest.approx(to_utm(boundary).area, rel=1e-3)


def test_cells_match_their_lattice_square(cells: list[GridCell], cells_utm) -> None:
    rng = random.Random(7)
    for i in rng.sample(range(len(cells)), 500):
        cell = cells[i]
        square = cell_square_utm(cell.row, cell.col)
        assert square.buffer(1e-3).covers(cells_utm[i])
        point = cell.geometry.representative_point()
        assert lattice_index(point.x, point.y) == (cell.row, cell.col)


def test_lattice_index_of_known_positions() -> None:
    x0, y0 = ZHOUCUN_GRID_ORIGIN
    assert lattice_index(*utm_to_lonlat(x0 + 50, y0 - 50)) == (0, 0)
    assert lattice_index(*utm_to_lonlat(x0 + 1234.5, y0 - 5678.9)) == (56, 12)
    assert lattice_index(*utm_to_lonlat(x0 + 1234.5, y0 - 5678.9), cell_size=1000) == (5, 1)
    with pytest.raises(ValueError, match="cell_size"):
        lattice_index(117.8, 36.8, cell_size=0)
    with pytest.raises(ValueError, match="latitude"):
        lattice_index(117.8, 95.0)


def test_lookup_finds_the_covering_cell(index: GridIndex, boundary, townships) -> None:
    rng = random.Random(11)
    min_x, min_y, max_x, max_y = boundary.bounds
    found = 0
    while found < 300:
        lon, lat = rng.uniform(min_x, max_x), rng.uniform(min_y, max_y)
        point = shapely.Point(lon, lat)
        if not boundary.contains(point):
            assert index.lookup(lon, lat) is None or boundary.distance(point) < 1e-6
            continue
        cell = index.lookup(lon, lat)
        assert cell is not None
        assert cell.geometry.distance(point) < 1e-8
        assert townships[cell.division_code].distance(point) < 1e-8
        found += 1


def test_lookup_falls_back_to_point_in_polygon_on_split_squares(
    cells: list[GridCell], index: GridIndex
) -> None:
    by_square: dict[tuple[int, int], list[GridCell]] = defaultdict(list)
    for cell in cells:
        by_square[(cell.row, cell.col)].append(cell)
    checked = 0
    for group in by_square.values():
        if len(group) < 2:
            continue
        for cell in group:
            point = cell.geometry.representative_point()
            assert index.lookup(point.x, point.y) == cell
        checked += 1
        if checked >= 50:
            break
    assert checked == 50


def test_district_seat_is_in_a_subdistrict_cell(index: GridIndex) -> None:
    cell = index.lookup(*DISTRICT_SEAT_WGS84)
    assert cell is not None
    kinds = {t["code12"]: t["type"] for t in load_townships()}
    assert kinds[cell.division_code] == "街道"
    assert (cell.row, cell.col) == lattice_index(*DISTRICT_SEAT_WGS84)


def test_generate_grid_rejects_bad_input(townships) -> None:
    with pytest.raises(ValueError, match="12-digit"):
        generate_grid({"370306": townships["370306001000"]})
    with pytest.raises(ValueError, match="cell_size"):
        generate_grid(townships, cell_size=-100)


def test_coarser_lattice_nests_in_the_same_origin(townships) -> None:
    coarse = generate_grid(
        {"370306002000": townships["370306002000"]}, cell_size=1000.0, origin=ZHOUCUN_GRID_ORIGIN
    )
    assert coarse and all(c.code.startswith("370306002000") for c in coarse)
    assert max(to_utm(c.geometry).area for c in coarse) == pytest.approx(1e6, rel=1e-6)
