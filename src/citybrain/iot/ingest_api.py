"""HTTP ingestion: devices POST telemetry batches with their key and secret."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
