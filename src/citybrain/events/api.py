"""JSON API of the unified event command (mounted at /api/events by core.api)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from citybrain.core.actor import Actor
from citybrain.core.auth import CurrentActor, require
from citybrain.core.db import DbSession
from citybrain.geo import service as geo_service
from citybrain.org import service as org_service

from . import service, workflow
from .models import EventCategory
from .schemas import (
    EventActionIn,
    EventLogRead,
    EventRead,
    EventReportIn,
    EventTrackingRead,
    EventTrackingStep,
)

router = APIRouter()

Reporter = Annotated[Actor, require("events:report")]
Reader = Annotated[Actor, require("events:read")]


@router.post("", response_model=EventRead, status_code=201,
             summary="Report an event from another system, a staff desk or a grid worker")
def report_event(body: EventReportIn, db: DbSession, actor: Reporter) -> EventRead:
    return EventRead.model_validate(service.report(db, data=body, actor=actor))


@router.get("", response_model=list[EventRead], summary="List events the caller may see, with filters")
def list_events(
    db: DbSession, actor: Reader,
    status: Annotated[list[str] | None, Query()] = None,
    category_code: str | None = None, township_code: str | None = None,
    department_id: int | None = None, overdue: bool | None = None,
    since: datetime | None = None, until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100, offset: Annotated[int, Query(ge=0)] = 0,
) -> list[EventRead]:
    events = service.list_events(db, actor=actor, status=status, category_code=category_code,
                                 township_code=township_code, department_id=department_id,
                                 overdue=overdue, since=since, until=until, limit=limit, offset=offset)
    return [EventRead.model_validate(e) for e in events]


# Not authenticated on purpose: a citizen reports without an account and follows the case with
# the tracking number alone (issue 3, "needs no account"). The answer therefore carries nothing
# personal — no reporter, no description, no exact point, no staff names.
@router.get("/track/{tracking_no}", response_model=EventTrackingRead,
            summary="Public progress of an event by tracking number (no personal data)")
def track_event(tracking_no: str, db: DbSession) -> EventTrackingRead:
    event = service.get_by_tracking(db, tracking_no=tracking_no)
    category = db.get(EventCategory, event.category_code)
    township = None
    if event.township_code:
        try:
            township = geo_service.get_division(db, code=event.township_code).name
        except Exception:  # noqa: BLE001 - a name is a courtesy, not a requirement
            township = None
    department = (org_service.get_department(db, department_id=event.department_id).name
                  if event.department_id else None)
    steps = [EventTrackingStep(at=log.at, action=log.action, status=log.to_status)
             for log in service.timeline(db, event_id=event.id) if log.action in workflow.ACTIONS
             or log.action == "report"]
    return EventTrackingRead(
        tracking_no=event.tracking_no, category_code=event.category_code,
        category_name=category.name if category else event.category_code, status=event.status,
        township_code=event.township_code, township_name=township, department_name=department,
        result=event.result if event.status == "closed" else "", created_at=event.created_at,
        updated_at=event.updated_at, due_at=event.due_at, closed_at=event.closed_at, steps=steps)


@router.get("/{event_id}", response_model=EventRead, summary="One event")
def get_event(event_id: int, db: DbSession, actor: Reader) -> EventRead:
    event = service.get_event(db, event_id=event_id)
    service.check_can_read(db, event=event, actor=actor)
    return EventRead.model_validate(event)


@router.get("/{event_id}/timeline", response_model=list[EventLogRead], summary="The event's full timeline")
def get_timeline(event_id: int, db: DbSession, actor: Reader) -> list[EventLogRead]:
    service.check_can_read(db, event=service.get_event(db, event_id=event_id), actor=actor)
    return [EventLogRead.model_validate(log) for log in service.timeline(db, event_id=event_id)]


@router.post("/{event_id}/actions/{action}", response_model=EventRead,
             summary="Apply a workflow action (accept, dispatch, handle, verify_pass, close, …)",
             responses={409: {"description": "the event changed since expected_version"}})
def act(event_id: int, action: str, body: EventActionIn, db: DbSession, actor: CurrentActor) -> EventRead:
    # Permission and department checks live in the workflow table (service.transition).
    event = service.transition(db, event_id=event_id, action=action, actor=actor,
                               expected_version=body.expected_version, note=body.note, **body.action_data())
    return EventRead.model_validate(event)
