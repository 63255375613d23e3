"""Mounts every domain's JSON router under /api with its prefix and tags."""

from __future__ import annotations

from fastapi import APIRouter

from citybrain.cockpit import api as cockpit_api
from citybrain.data import api_catalog as data_api_catalog
from citybrain.data import api_loads as data_api_loads
from citybrain.data import api_quality as data_api_quality
from citybrain.data import api_sharing as data_api_sharing
from citybrain.events import api as events_api
from citybrain.geo import api as geo_api
from citybrain.indicators import api as indicators_api
from citybrain.iot import api as iot_api
from citybrain.iot import ingest_api as iot_ingest_api
from citybrain.org import api as org_api

from . import audit_api


def build_api_router() -> APIRouter:
    api = APIRouter(prefix="/api")
    api.include_router(org_api.router)
    api.include_router(geo_api.router, prefix="/geo", tags=["geo"])
    api.include_router(audit_api.router, prefix="/audit", tags=["audit"])
    api.include_router(events_api.router, prefix="/events", tags=["events"])
    api.include_router(cockpit_api.router, prefix="/cockpit", tags=["cockpit"])
    api.include_router(indicators_api.router, prefix="/indicators", tags=["indicators"])
    api.include_router(iot_api.router, prefix="/iot", tags=["iot"])
    api.include_router(iot_ingest_api.router, prefix="/iot", tags=["iot ingestion"])
    api.include_router(data_api_catalog.router, prefix="/data", tags=["data catalog"])
    api.include_router(data_api_loads.router, prefix="/data", tags=["data loads"])
    api.include_router(data_api_quality.router, prefix="/data", tags=["data quality"])
    api.include_router(data_api_sharing.router, prefix="/data", tags=["data sharing"])
    return api
