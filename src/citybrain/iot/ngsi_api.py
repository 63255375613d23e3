"""NGSI-LD context API (subset) at /ngsi-ld/v1."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
