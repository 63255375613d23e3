"""Divisions (district and townships), the unit-grid lattice and its cells. Geometry is GeoJSON
text in WGS-84 so the same tables work on SQLite and on PostgreSQL without PostGIS."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from citybrain.core.db import Base


class Division(Base):
    __tablename__ = "division"

    code: Mapped[str] = mapped_column(String(12), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    level: Mapped[str] = mapped_column(String(20))  # district | township
    kind: Mapped[str] = mapped_column(String(20), default="")  # 街道 | 镇 | 区
    parent_code: Mapped[str | None] = mapped_column(String(12))
    geometry: Mapped[str] = mapped_column(Text)  # GeoJSON geometry, WGS-84
    approximate: Mapped[bool] = mapped_column(default=False)
    source: Mapped[str] = mapped_column(String(300), default="")
    min_lon: Mapped[float] = mapped_column(Float)
    min_lat: Mapped[float] = mapped_column(Float)
    max_lon: Mapped[float] = mapped_column(Float)
    max_lat: Mapped[float] = mapped_column(Float)
    area_km2: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime]


class GridLattice(Base):
    """The lattice the unit grid was cut from, so a point maps to its cell by arithmetic."""

    __tablename__ = "grid_lattice"

    district_code: Mapped[str] = mapped_column(ForeignKey("division.code", ondelete="CASCADE"), primary_key=True)
    epsg: Mapped[int] = mapped_column(Integer)
    origin_x: Mapped[float] = mapped_column(Float)
    origin_y: Mapped[float] = mapped_column(Float)
    cell_size_m: Mapped[float] = mapped_column(Float)


class GridCell(Base):
    __tablename__ = "grid_cell"
    __table_args__ = (
        Index("ix_grid_cell_row_col", "row", "col"),
        Index("ix_grid_cell_bbox", "min_lon", "min_lat"),
    )

    code: Mapped[str] = mapped_column(String(20), primary_key=True)
    division_code: Mapped[str] = mapped_column(ForeignKey("division.code", ondelete="CASCADE"), index=True)
    row: Mapped[int]
    col: Mapped[int]
    geometry: Mapped[str] = mapped_column(Text)
    min_lon: Mapped[float] = mapped_column(Float)
    min_lat: Mapped[float] = mapped_column(Float)
    max_lon: Mapped[float] = mapped_column(Float)
    max_lat: Mapped[float] = mapped_column(Float)
    area_m2: Mapped[float] = mapped_column(Float)
