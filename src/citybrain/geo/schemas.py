"""Responses of the geo API."""

from __future__ import annotations

from pydantic import BaseModel


class Location(BaseModel):
    lon: float
    lat: float
    crs: str
    wgs84: tuple[float, float]
    district_code: str
    district_name: str
    township_code: str
    township_name: str
    township_approximate: bool
    grid_code: str | None
