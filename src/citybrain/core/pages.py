"""Mounts every domain's HTML pages."""

from __future__ import annotations

from fastapi import APIRouter

from citybrain.cockpit import pages as cockpit_pages
from citybrain.data import pages as data_pages
from citybrain.data import pages_manage as data_pages_manage
from citybrain.data import pages_quality as data_pages_quality
from citybrain.data import pages_sharing as data_pages_sharing
from citybrain.events import pages_catalog as events_pages_catalog
from citybrain.events import pages_evaluation as events_pages_evaluation
from citybrain.events import pages_public as events_pages_public
from citybrain.events import pages_staff as events_pages_staff
from citybrain.geo import pages as geo_pages
from citybrain.indicators import pages as indicators_pages
from citybrain.iot import pages as iot_pages
from citybrain.iot import pages_admin as iot_pages_admin
from citybrain.org import pages as org_pages
from citybrain.web import pages as web_pages


def build_page_router() -> APIRouter:
    pages = APIRouter()
    pages.include_router(web_pages.router)
    pages.include_router(org_pages.router)
    pages.include_router(geo_pages.router)
    pages.include_router(events_pages_public.router)
    pages.include_router(events_pages_evaluation.router)
    pages.include_router(events_pages_staff.router)
    pages.include_router(cockpit_pages.router)
    pages.include_router(events_pages_catalog.router)
    pages.include_router(indicators_pages.router)
    pages.include_router(iot_pages.router)
    pages.include_router(iot_pages_admin.router)
    pages.include_router(data_pages.router)
    pages.include_router(data_pages_manage.router)
    pages.include_router(data_pages_quality.router)
    pages.include_router(data_pages_sharing.router)
    return pages
