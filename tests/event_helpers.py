"""Builders for the event tests: categories of their own (independent of the shipped catalog),
points inside a township, the demo accounts as actors, and a report shortcut."""

from __future__ import annotations

import json
from typing import Any

import pytest
import shapely
from shapely.geometry import shape
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citybrain.core.actor import Actor
from citybrain.core.models import AuditLog
from citybrain.events import service
from citybrain.events.models import EventCategory, EventLog
from citybrain.events.schemas import EventReportIn
from citybrain.geo import service as geo_service
from citybrain.org import auth as org_auth
from citybrain.org import service as org_service

SILULU = "370306001000"
WANGCUN = "370306102000"

LIMITS = {
    "accept": {"value": 1, "unit": "working_hours"},
    "dispatch": {"value": 1, "unit": "working_hours"},
    "handle": {"value": 4, "unit": "working_hours"},
    "verify": {"value": 1, "unit": "working_days"},
    "close": {"value": 1, "unit": "working_days"},
}

# code, name, major, department, township_handles, public, active
CATEGORIES = [
    ("TE0101", "测试暴露垃圾", "TE01", "cityadmin", False, True, True),
    ("TE0102", "测试道路不洁", "TE01", "cityadmin", True, True, True),
    ("TE0201", "测试井盖位移", "TE02", "housing", False, False, True),
    ("TE0301", "测试停用小类", "TE03", "cityadmin", False, True, False),
]


def make_categories(db: Session) -> dict[str, EventCategory]:
    made = {}
    for code, name, major, dept, township, public, active in CATEGORIES:
        cat = EventCategory(code=code, kind="event", major_code=major, major_name=f"大类{major}", name=name,
                            description="", department_code=dept, township_handles=township,
                            urgency="normal", time_limits=LIMITS, keywords="", public=public, active=active)
        db.add(cat)
        made[code] = cat
    db.flush()
    return made


@pytest.fixture
def categories(db: Session) -> dict[str, EventCategory]:
    return make_categories(db)


def point_in(db: Session, township_code: str) -> tuple[float, float]:
    """A WGS-84 point well inside a township."""
    geom = shape(json.loads(geo_service.get_division(db, code=township_code).geometry))
    p = shapely.Point(geom.representative_point())
    return round(p.x, 6), round(p.y, 6)


def actor(db: Session, username: str) -> Actor:
    user = org_service.get_user_by_username(db, username=username)
    assert user is not None
    return org_auth.actor_for(user, via="session")


def report(db: Session, *, who: Actor | None, township: str | None = SILULU, **fields: Any):
    body: dict[str, Any] = {"channel": "citizen", "category_code": "TE0101", "description": "路边有暴露垃圾"}
    if township:
        body["lon"], body["lat"] = point_in(db, township)
    body.update(fields)
    return service.report(db, data=EventReportIn(**body), actor=who)


def counts(db: Session, event_id: int | None = None) -> dict[str, int]:
    from citybrain.events.models import Event

    logs = select(func.count()).select_from(EventLog)
    if event_id is not None:
        logs = logs.where(EventLog.event_id == event_id)
    return {"events": db.scalar(select(func.count()).select_from(Event)) or 0,
            "logs": db.scalar(logs) or 0,
            "audit": db.scalar(select(func.count()).select_from(AuditLog)) or 0}
