"""The cockpit's figures are computed from real events and match what the database holds."""

from __future__ import annotations

import asyncio
import importlib.machinery
import json
import sys
import types
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from citybrain.cockpit import aggregates
from citybrain.cockpit import live as cockpit_live
from citybrain.core import bus
from citybrain.events import evaluation, service
from citybrain.events.enums import OPEN_STATUSES
from citybrain.events.models import Event
from event_helpers import SILULU, WANGCUN, actor, report


def count(db, *where) -> int:  # noqa: ANN001
    return db.scalar(select(func.count()).select_from(Event).where(*where))


@pytest.fixture
def scene(db, categories, frozen_clock, admin_actor):  # noqa: ANN001, ANN201
    """Five new events in two townships: two accepted (dispatched), one rejected, one closed-path
    step, one critical; a day later the dispatched ones are overdue."""
    made = [
        report(db, who=None, reporter_name="张三", reporter_phone="13812345678"),
        report(db, who=None, category_code="TE0102"),
        report(db, who=None, township=WANGCUN, urgency="critical") if _urgency_allowed() else
        report(db, who=None, township=WANGCUN),
        report(db, who=None, township=WANGCUN),
        report(db, who=None),
    ]
    service.transition(db, event_id=made[0].id, action="accept", actor=admin_actor)
    service.transition(db, event_id=made[2].id, action="accept", actor=admin_actor)
    service.transition(db, event_id=made[4].id, action="reject", actor=admin_actor, reason="不属于城管")
    staff = actor(db, "cityadmin")
    service.transition(db, event_id=made[0].id, action="handle", actor=staff, result="已清运")
    db.flush()
    return made


def _urgency_allowed() -> bool:
    from citybrain.events.schemas import EventReportIn

    return "urgency" in EventReportIn.model_fields


def test_vital_signs_match_the_database(db, scene, frozen_clock):
    now = frozen_clock[0] = frozen_clock[0] + timedelta(days=2)  # every stage deadline has passed
    snap = aggregates.snapshot(db, now=now)
    system = actor(db, "admin")
    open_statuses = [s.value for s in OPEN_STATUSES]
    assert snap["events"]["open"] == count(db, Event.status.in_(open_statuses))
    today = aggregates.china_midnight(now)
    assert snap["events"]["today"] == count(db, Event.created_at >= today)
    overdue = service.list_events(db, actor=system, overdue=True, limit=1000)
    assert snap["events"]["overdue"] == len(overdue) > 0
    # The new events are in the open count and on the map with their coordinates.
    ids = {row[0] for row in snap["points"]}
    assert {scene[0].id, scene[1].id, scene[2].id, scene[3].id} <= ids
    assert scene[4].id not in ids  # rejected: not open


def test_today_counts_only_this_china_day(db, scene, frozen_clock):
    snap = aggregates.snapshot(db, now=frozen_clock[0])
    assert snap["events"]["today"] == count(db, Event.created_at >= aggregates.china_midnight(frozen_clock[0]))
    assert snap["events"]["today"] >= len(scene)


def test_top_categories_and_townships_of_the_last_30_days(db, scene, frozen_clock):
    now = frozen_clock[0]
    snap = aggregates.snapshot(db, now=now)
    since = now - timedelta(days=30)
    cats = {r["code"]: r["count"] for r in snap["top_categories"]}
    for code, n in cats.items():
        assert n == count(db, Event.created_at >= since, Event.category_code == code)
    assert len(snap["top_categories"]) <= 5 and len(snap["top_townships"]) <= 5
    towns = {r["code"]: r for r in snap["top_townships"]}
    for code, row in towns.items():
        assert row["count"] == count(db, Event.created_at >= since, Event.township_code == code)
    assert SILULU in towns and towns[SILULU]["name"] != SILULU
    counts = [r["count"] for r in snap["top_categories"]]
    assert counts == sorted(counts, reverse=True)


def test_on_time_rate_is_the_evaluation_of_this_month(db, scene, frozen_clock):
    now = frozen_clock[0] + timedelta(hours=1)
    snap = aggregates.snapshot(db, now=now)
    _, start, end = evaluation.parse_month(None, now=now)
    whole = evaluation.total(evaluation.evaluate(db, period_start=start, period_end=end, by="township", now=now))
    assert snap["on_time"]["dispatched"] == whole.dispatched
    assert snap["on_time"]["handled_on_time"] == whole.handled_on_time
    expected = None if whole.on_time_handle_rate is None else round(whole.on_time_handle_rate * 100, 1)
    assert snap["on_time"]["rate"] == expected


def test_ticker_holds_the_latest_ten_without_personal_data(db, scene, frozen_clock):
    snap = aggregates.snapshot(db, now=frozen_clock[0])
    latest = db.scalars(select(Event.id).order_by(Event.created_at.desc(), Event.id.desc()).limit(10)).all()
    assert [e["id"] for e in snap["ticker"]] == list(latest)
    text = json.dumps(snap, ensure_ascii=False)
    assert "张三" not in text and "13812345678" not in text and "1381" not in text
    assert "路边有暴露垃圾" not in text  # descriptions can name people: never on the big screen
    assert not {"reporter_name", "reporter_phone", "reporter_email", "description", "address"} & set(snap["ticker"][0])


def test_township_drill_down(db, scene, frozen_clock):
    now = frozen_clock[0] + timedelta(days=2)
    t = aggregates.township(db, code=WANGCUN, now=now)
    open_statuses = [s.value for s in OPEN_STATUSES]
    assert t["open"] == count(db, Event.township_code == WANGCUN, Event.status.in_(open_statuses))
    assert t["open"] == sum(c["count"] for c in t["by_category"]) == len(t["events"])
    assert {scene[2].id, scene[3].id} <= {e["id"] for e in t["events"]}
    assert t["overdue"] == sum(1 for e in t["events"] if e["overdue"])


def test_replay_buckets_the_timeline_by_hour(db, scene, frozen_clock):
    now = frozen_clock[0] + timedelta(hours=3)
    r = aggregates.replay(db, now=now)
    assert r["hours"] == 24
    ours = [row for row in r["rows"] if row[1] in {e.id for e in scene}]
    # Everything happened at frozen_clock[0], three hours before `now`: hour 21 of 0..23.
    assert {row[0] for row in ours} == {21}
    assert {row[1] for row in ours} == {e.id for e in scene}
    later = aggregates.replay(db, now=frozen_clock[0] + timedelta(hours=30))["rows"]
    assert not {row[1] for row in later} & {e.id for e in scene}  # older than 24 h: not replayed


def test_briefing_has_yesterday_today_and_the_overdue_list(db, scene, frozen_clock):
    now = frozen_clock[0] + timedelta(days=1)
    b = aggregates.briefing(db, now=now)
    assert b["yesterday"]["reported"] >= len(scene)
    assert b["events"]["overdue"] == len(b["overdue"])
    assert "张三" not in json.dumps(b, ensure_ascii=False)


def test_placeholders_until_a_provider_registers(db, frozen_clock, monkeypatch):
    # A registry without the shipped providers (the IoT panels register on import).
    monkeypatch.setattr(aggregates, "_providers", {})
    monkeypatch.setattr(aggregates, "_looked_for", set(aggregates.OPTIONAL_SOURCES))
    snap = aggregates.snapshot(db, now=frozen_clock[0])
    assert {k: p["connected"] for k, p in snap["panels"].items()} == {
        "aqi": False, "waterlogging": False, "parking": False, "data_quality": False, "device_online": False,
        "iot_alarms": False}
    undo = aggregates.register(aggregates.PanelProvider(
        key="aqi", title="Air quality (AQI)", compute=lambda db, now: {"value": 42, "unit": "AQI"}))
    try:
        panel = aggregates.snapshot(db, now=frozen_clock[0])["panels"]["aqi"]
        assert panel["connected"] is True and panel["data"] == {"value": 42, "unit": "AQI"}
    finally:
        undo()
    assert aggregates.snapshot(db, now=frozen_clock[0])["panels"]["aqi"]["connected"] is False


def test_a_failing_provider_degrades_to_not_connected(db, frozen_clock):
    def broken(db, now):  # noqa: ANN001, ANN202
        raise RuntimeError("sensor hub down")

    before = aggregates.providers().get("parking")
    undo = aggregates.register(aggregates.PanelProvider(key="parking", title="Parking occupancy", compute=broken))
    try:
        assert aggregates.snapshot(db, now=frozen_clock[0])["panels"]["parking"]["connected"] is False
    finally:
        undo()
    assert aggregates.providers().get("parking") is before  # undo brings back the provider it replaced


def test_plan_indicators_shown_when_the_module_exists(db, monkeypatch):
    package = types.ModuleType("citybrain.indicators")
    package.__spec__ = importlib.machinery.ModuleSpec("citybrain.indicators", None, is_package=True)
    module = types.ModuleType("citybrain.indicators.service")
    module.progress_summary = lambda db: [{"indicator": "IPv6", "baseline": 40, "target": 100,
                                           "latest": 70, "status": "on_track"}]
    monkeypatch.setitem(sys.modules, "citybrain.indicators", package)
    monkeypatch.setitem(sys.modules, "citybrain.indicators.service", module)
    got = aggregates.indicators(db)
    assert got == {"connected": True, "items": [{"indicator": "IPv6", "baseline": 40, "target": 100,
                                                 "latest": 70, "status": "on_track"}]}


def test_plan_indicators_degrade_when_broken(db, monkeypatch):
    package = types.ModuleType("citybrain.indicators")
    package.__spec__ = importlib.machinery.ModuleSpec("citybrain.indicators", None, is_package=True)
    module = types.ModuleType("citybrain.indicators.service")  # no progress_summary yet
    monkeypatch.setitem(sys.modules, "citybrain.indicators", package)
    monkeypatch.setitem(sys.modules, "citybrain.indicators.service", module)
    assert aggregates.indicators(db) == {"connected": False, "items": []}


# --- the aggregator: one computation per second however many changes ---------------------------


class _FakeSession:
    def __enter__(self):  # noqa: ANN204
        return self

    def __exit__(self, *exc):  # noqa: ANN002, ANN204
        return False


def test_a_burst_of_changes_is_one_computation_shared_by_every_screen():
    calls = []

    def compute(db):  # noqa: ANN001, ANN202
        calls.append(1)
        return {"n": len(calls)}

    async def main():  # noqa: ANN202
        source = bus.Bus()
        agg = cockpit_live.Aggregator(_FakeSession, min_interval_s=0.3, refresh_s=60, compute=compute)
        stop = agg.start(source)
        screens = [agg.subscribe() for _ in range(5)]
        for i in range(50):
            source.publish("event.changed", {"id": i})
        got = [await s.next(2.0) for s in screens]
        await asyncio.sleep(0.5)  # no further change: no further computation
        await stop()
        return got

    got = asyncio.run(main())
    assert len(calls) == 1
    assert got == [{"n": 1}] * 5


def test_nobody_watching_means_nothing_is_computed_until_asked():
    calls = []

    async def main():  # noqa: ANN202
        source = bus.Bus()
        agg = cockpit_live.Aggregator(_FakeSession, min_interval_s=0.05, compute=lambda db: calls.append(1) or {})
        stop = agg.start(source)
        source.publish("event.changed", {"id": 1})
        await asyncio.sleep(0.2)
        await stop()
        return agg

    agg = asyncio.run(main())
    assert calls == []
    agg.current(None)
    agg.current(None)  # fresh: served from the shared snapshot
    assert calls == [1]


def test_the_stream_sends_retry_the_snapshot_and_pings():
    async def main():  # noqa: ANN202
        agg = cockpit_live.Aggregator(_FakeSession, compute=lambda db: {"n": 1})
        sub = agg.subscribe()
        allowed = [True]

        async def still_allowed() -> bool:
            return allowed[0]

        chunks = cockpit_live.stream(agg, sub, {"n": 0}, still_allowed=still_allowed, ping_seconds=0.05)
        out = [await anext(chunks), await anext(chunks)]
        sub.offer({"n": 2})
        out.append(await anext(chunks))
        out.append(await anext(chunks))  # nothing new: a ping
        allowed[0] = False
        with pytest.raises(StopAsyncIteration):
            await anext(chunks)
        return out

    retry, first, second, ping = asyncio.run(main())
    assert retry == "retry: 2000\n\n"
    assert first == 'event: snapshot\ndata: {"n":0}\n\n'
    assert second == 'event: snapshot\ndata: {"n":2}\n\n'
    assert ping == ": ping\n\n"
