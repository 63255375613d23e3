"""Time-limit supervision: a warning once per stage, overdue marked once, 督办 sent, idempotent."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from citybrain.core import bus
from citybrain.events import supervision, timelimits
from event_helpers import counts, report
from helpers import run_async


def actions(db, event_id):
    from citybrain.events import service

    return [log.action for log in service.timeline(db, event_id=event_id)]


def test_warns_then_marks_overdue_once_and_supervises(db, categories, frozen_clock, admin_actor):
    from citybrain.events import service

    event = report(db, who=None)
    service.transition(db, event_id=event.id, action="accept", actor=admin_actor)
    assert event.stage == "handle"
    heard = []
    stop = bus.listen("event.supervised", heard.append)
    try:
        assert supervision.run_supervision(db, now=frozen_clock[0])["warned"] == []

        warn = timelimits.warning_at(event.stage_started_at, event.due_at, 0.8, calendar=timelimits.DEFAULT)
        frozen_clock[0] = warn + timedelta(minutes=1)
        first = supervision.run_supervision(db, now=frozen_clock[0])
        assert first["warned"] == [event.tracking_no] and first["overdue"] == []
        again = counts(db, event.id)
        assert supervision.run_supervision(db, now=frozen_clock[0])["warned"] == []
        assert counts(db, event.id) == again

        version = event.version
        frozen_clock[0] = event.due_at + timedelta(minutes=1)
        result = supervision.run_supervision(db, now=frozen_clock[0])
        assert result["overdue"] == [event.tracking_no] and result["supervised"] == [event.tracking_no]
        db.expire(event)
        assert event.overdue is True
        assert event.version == version  # a derived flag does not turn a person's action into a conflict
        assert actions(db, event.id)[-3:] == ["deadline_warning", "overdue", "supervision"]
        supervised = service.timeline(db, event_id=event.id)[-1]
        assert supervised.data["addressed_to"] == ["cityadmin", supervision.COMMAND_CENTRE]
        assert len(heard) == 1 and heard[0]["tracking_no"] == event.tracking_no

        settled = counts(db)
        frozen_clock[0] += timedelta(hours=3)
        assert supervision.run_supervision(db, now=frozen_clock[0]) | {"checked": 0} == {
            "checked": 0, "warned": [], "overdue": [], "supervised": []}
        assert counts(db) == settled and len(heard) == 1
    finally:
        stop()


def test_a_new_stage_is_warned_and_supervised_again(db, categories, frozen_clock, admin_actor):
    from citybrain.events import service
    from event_helpers import actor

    event = report(db, who=None)
    service.transition(db, event_id=event.id, action="accept", actor=admin_actor)
    frozen_clock[0] = event.due_at + timedelta(minutes=1)
    supervision.run_supervision(db, now=frozen_clock[0])
    service.transition(db, event_id=event.id, action="handle", actor=actor(db, "cityadmin"), result="已清运")
    assert event.overdue is False and event.stage == "verify"
    handle_log = service.timeline(db, event_id=event.id)[-1]
    assert handle_log.data["late"] is True and handle_log.data["stage_left"] == "handle"
    frozen_clock[0] = event.due_at + timedelta(minutes=1)
    result = supervision.run_supervision(db, now=frozen_clock[0])
    assert result["overdue"] == [event.tracking_no]
    assert actions(db, event.id).count("supervision") == 2


def test_suspended_and_closed_events_are_not_supervised(db, categories, frozen_clock, admin_actor):
    from citybrain.events import service

    event = report(db, who=None)
    service.transition(db, event_id=event.id, action="accept", actor=admin_actor)
    service.transition(db, event_id=event.id, action="suspend", actor=admin_actor, reason="等待拆迁")
    frozen_clock[0] += timedelta(days=30)
    assert event.tracking_no not in supervision.run_supervision(db, now=frozen_clock[0])["overdue"]


def test_the_periodic_task_logs_a_failing_round_and_keeps_going(caplog):
    calls = []

    def broken_factory():
        calls.append(1)
        raise RuntimeError("database down")

    async def scenario():
        stop = supervision.start(broken_factory, interval_s=0.01, first_delay_s=0)
        await asyncio.sleep(0.1)
        await stop()

    run_async(scenario())
    assert len(calls) >= 2
    assert "supervision round failed" in caplog.text


def test_the_app_starts_and_stops_the_supervisor(client):
    assert client.get("/healthz").status_code in (200, 404)
