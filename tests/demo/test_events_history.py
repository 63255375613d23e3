"""The demo's event history and live arrivals: deterministic, patterned, really handled."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import shapely
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citybrain.core import clock
from citybrain.core.actor import system_actor
from citybrain.demo import events_history
from citybrain.demo.events_history import generate_history, plan_history, township_geometries
from citybrain.demo.live import tick
from citybrain.events import catalog
from citybrain.events.models import Event, EventLog
from citybrain.events.service import CHINA
from citybrain.geo import service as geo_service

UNTIL = datetime(2026, 11, 1, tzinfo=CHINA)


@pytest.fixture
def towns(db: Session) -> dict[str, shapely.Geometry]:
    catalog.sync_catalog(db, actor=system_actor("test"))
    return township_geometries(db)


def _plan(towns, seed: int = 5, count: int = 3000):  # noqa: ANN001, ANN202
    return plan_history(seed=seed, count=count, until=UNTIL, days=120, townships=towns)


def test_plan_is_deterministic_from_the_seed(towns) -> None:  # noqa: ANN001
    assert _plan(towns, count=300) == _plan(towns, count=300)
    assert _plan(towns, count=300) != _plan(towns, seed=6, count=300)


def test_plan_has_weekly_spatial_and_seasonal_patterns(towns) -> None:  # noqa: ANN001
    plan = _plan(towns)
    days = Counter(p.at.astimezone(CHINA).date() for p in plan)
    first = min(days)
    all_days = [first + timedelta(days=i) for i in range((max(days) - first).days + 1)]
    weekday = [days[d] for d in all_days if d.weekday() < 5]
    weekend = [days[d] for d in all_days if d.weekday() >= 5]
    assert sum(weekday) / len(weekday) > 1.4 * sum(weekend) / len(weekend)

    per_town = Counter(p.township_code for p in plan)
    density = {code: per_town[code] / towns[code].area for code in towns}
    urban = [d for code, d in density.items() if int(code[6:9]) < 100]  # 街道 001-099, 镇 100-199
    rural = [d for code, d in density.items() if int(code[6:9]) >= 100]
    assert min(urban) > max(rural)

    def share(month: int, code: str) -> float:
        in_month = [p for p in plan if p.at.astimezone(CHINA).month == month]
        return sum(p.category_code == code for p in in_month) / len(in_month)

    assert share(8, "E0109") > 3 * share(10, "E0109")  # 路面积水 in the rainy season
    assert share(8, "E0101") > share(10, "E0101")  # 暴露垃圾
    channels = Counter(p.channel for p in plan)
    assert set(channels) == {"citizen", "hotline", "grid", "sensor"}
    assert all(p.at < UNTIL for p in plan)


def _rows(db: Session) -> list[tuple]:
    return list(db.execute(select(Event.tracking_no, Event.created_at, Event.category_code, Event.channel,
                                  Event.lon, Event.lat, Event.status).order_by(Event.id)))


def test_generated_history_is_deterministic(db: Session, towns) -> None:  # noqa: ANN001
    first = db.begin_nested()
    generate_history(db, seed=3, count=60, until=UNTIL)
    once = _rows(db)
    first.rollback()
    second = db.begin_nested()
    generate_history(db, seed=3, count=60, until=UNTIL)
    assert _rows(db) == once
    second.rollback()


def test_history_walks_real_workflow_in_the_past(db: Session, towns) -> None:  # noqa: ANN001
    summary = generate_history(db, seed=11, count=300, until=UNTIL)
    assert summary["events"] == 300
    # The real clock is back.
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(seconds=5)
    events = list(db.scalars(select(Event)))
    assert len(events) == 300
    statuses = Counter(e.status for e in events)
    assert statuses["closed"] > 200
    assert statuses["not_accepted"] >= 1
    assert sum(statuses[s] for s in ("reported", "dispatched", "in_progress", "handled", "verified")) >= 1
    assert any(e.rework_count > 0 for e in events)
    until = UNTIL.astimezone(UTC)
    for e in events:
        assert e.created_at < until and e.updated_at < until
        assert e.location_state == "located" and e.township_code and e.grid_code
        assert geo_service.locate(db, lon=e.lon, lat=e.lat)["township_code"] == e.township_code
    # Some open cases are past their deadline (overdue) when the history ends.
    assert any(e.closed_at is None and e.due_at is not None and e.due_at < until for e in events)
    assert db.scalar(select(func.count()).select_from(EventLog).where(EventLog.action == "handle")) > 200
    # Every step is on the timeline and audited, with historical times.
    actions = Counter(db.scalars(select(EventLog.action)))
    for action in ("report", "accept", "register", "dispatch", "start", "handle", "verify_pass", "close",
                   "verify_fail", "reject"):
        assert actions[action] > 0, action
    assert max(db.scalars(select(EventLog.at))) < until


def test_clock_is_restored_when_generation_fails(db: Session, towns, monkeypatch) -> None:  # noqa: ANN001
    calls = []

    def broken(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls.append(clock.now())
        raise RuntimeError("boom")

    monkeypatch.setattr(events_history.service, "report", broken)
    with pytest.raises(RuntimeError):
        generate_history(db, seed=1, count=5, until=UNTIL)
    assert calls and calls[0] < UNTIL  # the clock was historical during generation …
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(seconds=5)  # … and is real again


def test_live_tick_reports_and_advances(db: Session, towns) -> None:  # noqa: ANN001
    rng = random.Random(1)
    done = tick(db, rng, advance_probability=0.0)
    event = db.scalar(select(Event).where(Event.tracking_no == done["reported"]))
    assert event is not None and event.location_state == "located"
    assert event.created_at > datetime.now(UTC) - timedelta(minutes=1)
    done = tick(db, rng, advance_probability=1.0)
    assert done["advanced"] is not None
    tracking_no, action = done["advanced"]
    moved = db.scalar(select(Event).where(Event.tracking_no == tracking_no))
    assert moved is not None
    assert action in set(db.scalars(select(EventLog.action).where(EventLog.event_id == moved.id)))
