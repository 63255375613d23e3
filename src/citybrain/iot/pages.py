"""Staff pages of the IoT hub: devices and map, device detail, alarm console, dead letters."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
