"""JSON API of the IoT hub under /api/iot (devices, products, rules, alarms, dead letters)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
