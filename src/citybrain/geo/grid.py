"""Unit grid (万米单元网格) for digital city management, per GB/T 30428 practice.

The grid is a fixed square lattice in UTM 50N (EPSG:32650) metres, so every cell is a true
100 m x 100 m square on the ground.  The lattice is anchored at an origin that is the
north-west corner of the district's UTM bounding box rounded OUTWARD to whole kilometres:

    origin_x = floor(min_x / 1000) * 1000      origin_y = ceil(max_y / 1000) * 1000

Rows count southward from origin_y and columns eastward from origin_x, so (row, col) of any
point is two divisions (`lattice_index`).  Rounding to kilometres rather than to the cell
size keeps the origin stable for any cell size dividing 1 km, and small edits to the
outline do not shift the lattice.  For Zhoucun the origin is `ZHOUCUN_GRID_ORIGIN`.

Each lattice square is clipped to every township it overlaps, so a square straddling a
township border yields one `GridCell` per township.  Codes are 16 digits: 9-digit township
code + "000" (community not known) + 4-digit sequence, numbered within each township west
to east along a row and rows north to south.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import shapely
from numpy.typing import NDArray

from citybrain.geo.coords import validate_lonlat
from citybrain.geo.projection import lonlat_to_utm, to_utm, to_wgs84_geom

__all__ = [
    "DEFAULT_CELL_SIZE_M",
    "ORIGIN_STEP_M",
    "ZHOUCUN_GRID_ORIGIN",
    "GridCell",
    "GridIndex",
    "cell_square_utm",
    "generate_grid",
    "lattice_index",
    "lattice_origin",
]

DEFAULT_CELL_SIZE_M = 100.0
ORIGIN_STEP_M = 1000.0
# lattice_origin(load_boundary_wgs84()) in EPSG:32650 metres; fixed here so lookups do not
# need the boundary and so the lattice is reproducible (a test checks they agree).
ZHOUCUN_GRID_ORIGIN: tuple[float, float] = (561000.0, 4084000.0)

_MAX_SEQUENCE = 9999
# Overlay debris below this area (m²) is not a real piece of a cell.
_MIN_PIECE_AREA_M2 = 1e-3
_POLYGONAL = {"Polygon", "MultiPolygon"}
# About 1 mm: far below any real feature, far above reprojection noise.
_EDGE_TOLERANCE_DEG = 1e-8


@dataclass(frozen=True)
class GridCell:
    code: str  # 16 digits: township code9 + "000" + 4-digit sequence
    division_code: str  # 12-digit township code (code12)
    geometry: shapely.Geometry  # WGS-84 lon/lat
    row: int  # lattice row, counted southward from the origin
    col: int  # lattice column, counted eastward from the origin


def lattice_origin(
    geometries_wgs84: shapely.Geometry | Iterable[shapely.Geometry],
) -> tuple[float, float]:
    """North-west lattice origin (EPSG:32650 metres) for the given WGS-84 geometries."""
    if isinstance(geometries_wgs84, shapely.Geometry):
        geometries_wgs84 = [geometries_wgs84]
    utm = to_utm(np.asarray(list(geometries_wgs84), dtype=object))
    min_x, _, _, max_y = shapely.total_bounds(utm)
    return (
        math.floor(min_x / ORIGIN_STEP_M) * ORIGIN_STEP_M,
        math.ceil(max_y / ORIGIN_STEP_M) * ORIGIN_STEP_M,
    )


def _check_cell_size(cell_size: float) -> float:
    if not (isinstance(cell_size, int | float) and math.isfinite(cell_size) and cell_size > 0):
        raise ValueError(f"cell_size must be a positive number of metres, got {cell_size!r}")
    return float(cell_size)


def lattice_index(
    lon: float,
    lat: float,
    cell_size: float = DEFAULT_CELL_SIZE_M,
    origin: tuple[float, float] = ZHOUCUN_GRID_ORIGIN,
) -> tuple[int, int]:
    """(row, col) of the lattice square containing a WGS-84 point.

    Squares are half-open: a point on a line belongs to the square east/south of it.
    """
    lon, lat = validate_lonlat(lon, lat)
    cell_size = _check_cell_size(cell_size)
    x, y = lonlat_to_utm(lon, lat)
    return math.floor((origin[1] - y) / cell_size), math.floor((x - origin[0]) / cell_size)


def cell_square_utm(
    row: int,
    col: int,
    cell_size: float = DEFAULT_CELL_SIZE_M,
    origin: tuple[float, float] = ZHOUCUN_GRID_ORIGIN,
) -> shapely.Polygon:
    """The full lattice square (EPSG:32650 metres) at (row, col)."""
    x0, y0 = origin
    return shapely.box(
        x0 + col * cell_size,
        y0 - (row + 1) * cell_size,
        x0 + (col + 1) * cell_size,
        y0 - row * cell_size,
    )


def _squares_over(
    bounds: tuple[float, float, float, float], cell_size: float, origin: tuple[float, float]
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.object_]]:
    """All lattice squares touching a UTM bounding box, row-major (north->south, west->east)."""
    min_x, min_y, max_x, max_y = bounds
    x0, y0 = origin
    cols = np.arange(math.floor((min_x - x0) / cell_size), math.floor((max_x - x0) / cell_size) + 1)
    rows = np.arange(math.floor((y0 - max_y) / cell_size), math.floor((y0 - min_y) / cell_size) + 1)
    row_grid, col_grid = np.meshgrid(rows, cols, indexing="ij")
    row_flat, col_flat = row_grid.ravel(), col_grid.ravel()
    squares = shapely.box(
        x0 + col_flat * cell_size,
        y0 - (row_flat + 1) * cell_size,
        x0 + (col_flat + 1) * cell_size,
        y0 - row_flat * cell_size,
    )
    return row_flat, col_flat, squares


def _polygonal(geom: shapely.Geometry) -> shapely.Geometry | None:
    """Polygon parts of an overlay result, or None if nothing of substance is left."""
    if geom.geom_type in _POLYGONAL:
        return geom if geom.area > _MIN_PIECE_AREA_M2 else None
    parts = [p for p in shapely.get_parts(geom) if p.geom_type == "Polygon"]
    parts = [p for p in parts if p.area > _MIN_PIECE_AREA_M2]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)


def _clip_to_township(
    township_utm: shapely.Geometry, cell_size: float, origin: tuple[float, float]
) -> tuple[list[int], list[int], list[shapely.Geometry]]:
    """Lattice pieces (UTM) of one township, in row-major order."""
    rows, cols, squares = _squares_over(township_utm.bounds, cell_size, origin)
    shapely.prepare(township_utm)
    # Most squares are wholly inside; only those crossing the border need a real overlay.
    inside = shapely.contains_properly(township_utm, squares)
    crossing = shapely.intersects(township_utm, squares) & ~inside
    pieces = np.where(inside, squares, None)
    pieces[crossing] = shapely.intersection(squares[crossing], township_utm)
    out_rows: list[int] = []
    out_cols: list[int] = []
    out_geoms: list[shapely.Geometry] = []
    for i in np.flatnonzero(inside | crossing):
        piece = pieces[i] if inside[i] else _polygonal(pieces[i])
        if piece is not None:
            out_rows.append(int(rows[i]))
            out_cols.append(int(cols[i]))
            out_geoms.append(piece)
    return out_rows, out_cols, out_geoms


def _township_code9(code12: str) -> str:
    if len(code12) != 12 or not code12.isdigit() or not code12.endswith("000"):
        raise ValueError(f"expected a 12-digit township code ending in 000, got {code12!r}")
    return code12[:9]


def generate_grid(
    townships: Mapping[str, shapely.Geometry],
    cell_size: float = DEFAULT_CELL_SIZE_M,
    origin: tuple[float, float] | None = None,
) -> list[GridCell]:
    """Clip the lattice to each township (code12 -> WGS-84 geometry); cells sorted by code.

    `origin` defaults to `lattice_origin` of the townships, which for the Zhoucun partition
    equals `ZHOUCUN_GRID_ORIGIN`.
    """
    cell_size = _check_cell_size(cell_size)
    if origin is None:
        origin = lattice_origin(townships.values())
    cells: list[GridCell] = []
    for code12 in sorted(townships):
        code9 = _township_code9(code12)
        township_utm = shapely.make_valid(to_utm(townships[code12]))
        rows, cols, geoms_utm = _clip_to_township(township_utm, cell_size, origin)
        if len(geoms_utm) > _MAX_SEQUENCE:
            raise ValueError(
                f"township {code12} needs {len(geoms_utm)} cells; the 4-digit sequence "
                f"allows {_MAX_SEQUENCE}"
            )
        geoms = to_wgs84_geom(np.asarray(geoms_utm, dtype=object))
        for seq, (row, col, geom) in enumerate(zip(rows, cols, geoms, strict=True), start=1):
            cells.append(GridCell(f"{code9}000{seq:04d}", code12, geom, row, col))
    return cells


class GridIndex:
    """O(1) point -> cell lookup: lattice arithmetic, then point-in-polygon among pieces."""

    def __init__(
        self,
        cells: Iterable[GridCell],
        cell_size: float = DEFAULT_CELL_SIZE_M,
        origin: tuple[float, float] = ZHOUCUN_GRID_ORIGIN,
    ) -> None:
        self.cell_size = _check_cell_size(cell_size)
        self.origin = origin
        self._by_square: dict[tuple[int, int], list[GridCell]] = defaultdict(list)
        for cell in sorted(cells, key=lambda c: c.code):
            self._by_square[(cell.row, cell.col)].append(cell)

    def lookup(self, lon: float, lat: float) -> GridCell | None:
        """The cell covering a WGS-84 point, or None outside the gridded area."""
        pieces = self._by_square.get(lattice_index(lon, lat, self.cell_size, self.origin))
        if not pieces:
            return None
        point = shapely.Point(lon, lat)
        for cell in pieces:  # ties on a border go to the lowest code, deterministically
            if cell.geometry.covers(point):
                return cell
        # Reprojected edges can miss a point on the square's own edge by float noise.
        for cell in pieces:
            if shapely.dwithin(cell.geometry, point, _EDGE_TOLERANCE_DEG):
                return cell
        return None
