"""JSON for the big screen: the shared snapshot, the map's divisions, drill-down and replay.

Every route needs ``cockpit:read``: a leader or administrator (session or bearer token) or a
wall screen's display cookie (see ``display.py``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from citybrain.core.actor import Actor
from citybrain.core.db import DbSession
from citybrain.core.errors import Unauthorized
from citybrain.geo import service as geo_service

from . import aggregates, display
from .live import Aggregator

router = APIRouter()


def aggregator(request: Request) -> Aggregator:
    """The app's one aggregator (started by the lifespan; made here when there is none)."""
    agg = getattr(request.app.state, "cockpit", None)
    if agg is None:
        agg = request.app.state.cockpit = Aggregator(lambda: request.app.state.sessionmaker())
    return agg


def cockpit_reader(request: Request, db: DbSession) -> Actor:
    actor = display.cockpit_actor(request, db)
    if actor is None:
        raise Unauthorized("authentication required")
    actor.check("cockpit:read")
    return actor


Reader = Annotated[Actor, Depends(cockpit_reader)]


def snapshot_for(request: Request, db: Session) -> dict[str, Any]:
    return aggregator(request).current(db)


@router.get("/snapshot", summary="The cockpit snapshot: vital signs, map points, ticker, panels (no personal data)")
def snapshot(request: Request, db: DbSession, _actor: Reader) -> JSONResponse:
    return JSONResponse(snapshot_for(request, db), headers={"Cache-Control": "no-store"})


@router.get("/divisions", summary="District and township polygons for the big screen (GeoJSON, WGS-84)")
def divisions(db: DbSession, _actor: Reader) -> dict[str, Any]:
    # Wall screens hold only cockpit:read, not geo:read: the map comes through here.
    return geo_service.divisions_geojson(db)


@router.get("/townships/{code}", summary="Drill-down of one township: open events by category, overdue, list")
def township(db: DbSession, _actor: Reader, code: str) -> dict[str, Any]:
    return aggregates.township(db, code=code)


@router.get("/replay", summary="Events reported or changed in the last hours, by hour, from the timeline")
def replay(db: DbSession, _actor: Reader, hours: Annotated[int, Query(ge=1, le=72)] = 24) -> dict[str, Any]:
    return aggregates.replay(db, hours=hours)
