"""The alarm.raised / alarm.cleared contract with the IoT hub, through the bus."""

from __future__ import annotations

from sqlalchemy import func, select

from citybrain.core import bus
from citybrain.events import flows, service
from citybrain.events.models import Event
from event_helpers import SILULU, point_in  # noqa: F401


def payload(db, **extra):
    lon, lat = point_in(db, SILULU)
    return {"alarm_id": "A-1001", "device_id": "manhole-17", "product": "manhole-cover",
            "category_code": "TE0201", "lon": lon, "lat": lat, "severity": "MAJOR",
            "message": "井盖倾斜 >15°", "raised_at": "2026-11-26T16:00:00+08:00"} | extra


def sensor_events(db):
    return db.scalar(select(func.count()).select_from(Event).where(Event.channel == "sensor",
                                                                   Event.external_id == "A-1001"))


def test_an_alarm_raised_twice_opens_one_event_and_clearing_annotates_it(client, db, categories, frozen_clock):
    db.commit()  # the categories must be visible to the listener's own session
    assert bus.default_bus.listeners(flows.ALARM_RAISED) >= 1
    bus.publish(flows.ALARM_RAISED, payload(db))
    bus.publish(flows.ALARM_RAISED, payload(db))
    assert sensor_events(db) == 1
    event = service.get_by_external_id(db, channel="sensor", external_id="A-1001")
    # Machine channel, located: accepted, registered and dispatched without a person.
    assert event.status == "dispatched" and event.urgency == "urgent"
    assert "›15°" in event.description and ">" not in event.description
    bus.publish(flows.ALARM_CLEARED, {"alarm_id": "A-1001", "device_id": "manhole-17",
                                      "cleared_at": "2026-11-26T16:20:00+08:00"})
    bus.publish(flows.ALARM_CLEARED, {"alarm_id": "A-1001", "cleared_at": "2026-11-26T16:20:00+08:00"})
    db.expire_all()
    notes = [log for log in service.timeline(db, event_id=event.id) if log.action == "alarm_cleared"]
    assert len(notes) == 1 and "16:20" in notes[0].note
    assert service.get_event(db, event_id=event.id).status == "dispatched"  # a person verifies


def test_a_failing_alarm_changes_nothing_and_does_not_break_other_listeners(client, db, categories):
    db.commit()
    seen = []
    stop = bus.listen(flows.ALARM_RAISED, seen.append)
    try:
        delivered = bus.publish(flows.ALARM_RAISED, payload(db, lon=116.397, lat=39.909))  # Beijing
    finally:
        stop()
    assert len(seen) == 1 and delivered == 1
    assert sensor_events(db) == 0


def test_the_handlers_work_without_the_bus(db, categories, frozen_clock):
    first = flows.handle_alarm_raised(db, payload=payload(db, severity="critical"))
    assert flows.handle_alarm_raised(db, payload=payload(db)).id == first.id
    assert first.urgency == "critical" and first.channel == "sensor"
    assert flows.handle_alarm_cleared(db, payload={"alarm_id": "unknown"}) is None


def test_listeners_are_removed_when_the_app_stops(app):
    before = bus.default_bus.listeners(flows.ALARM_RAISED)
    from fastapi.testclient import TestClient

    with TestClient(app):
        assert bus.default_bus.listeners(flows.ALARM_RAISED) == before + 1
    assert bus.default_bus.listeners(flows.ALARM_RAISED) == before
