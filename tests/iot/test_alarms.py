"""The alarm lifecycle, de-duplication and the alarm.raised / alarm.cleared payloads."""

from __future__ import annotations

import inspect
import itertools
import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from citybrain.events import flows
from citybrain.iot.alarms import (
    ALARM_CLEARED,
    ALARM_RAISED,
    AlarmBook,
    AlarmNotFound,
    AlarmStatus,
    ChangeKind,
    InvalidAlarmTransition,
    transition,
)
from citybrain.iot.rules import RuleEngine, Severity, Signal, SignalAction, parse_rule
from event_helpers import SILULU, categories, point_in  # noqa: F401  (categories: a fixture)

T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
RULE = parse_rule({"id": "wl-high", "name": "积水超警戒", "product": "waterlogging", "property": "level",
                   "kind": "threshold", "params": {"op": ">", "value": 0.3}, "severity": "major",
                   "dispatch": True, "category_code": "TE0201"})

# Fields docs/events.md and events.flows document for each event.
RAISED_CONTRACT = {"alarm_id", "device_id", "product", "category_code", "lon", "lat", "severity", "message",
                   "raised_at"}
CLEARED_REQUIRED = {"alarm_id", "device_id", "cleared_at"}


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def signal(action: str, minute: float = 0, device: str = "wl-7", value: float = 0.42, rule=RULE) -> Signal:
    return Signal(SignalAction(action), rule, device, "waterlogging", value, at(minute), f"level {value} m")


def book() -> AlarmBook:
    ids = itertools.count(1)
    return AlarmBook(new_id=lambda: f"ALM-{next(ids)}")


def test_a_raise_opens_an_unacknowledged_alarm_to_publish():
    alarms = book()
    change = alarms.apply(signal("raise"), lon=120.1, lat=30.2)
    assert change.kind is ChangeKind.RAISED and change.event == ALARM_RAISED == flows.ALARM_RAISED
    assert change.publish
    alarm = change.alarm
    assert (alarm.id, alarm.status, alarm.count, alarm.severity) == \
        ("ALM-1", AlarmStatus.ACTIVE_UNACK, 1, Severity.MAJOR)
    assert alarms.active() == [alarm] and alarms.get("ALM-1") == alarm


def test_a_second_raise_while_active_only_bumps_count_and_last_seen():
    alarms = book()
    first = alarms.apply(signal("raise", 0, value=0.42)).alarm
    change = alarms.apply(signal("raise", 3, value=0.9))
    assert change.kind is ChangeKind.REPEATED and change.event is None and not change.publish
    bumped = change.alarm
    assert bumped.id == first.id and bumped.count == 2 and bumped.last_seen == at(3)
    assert bumped.value == 0.42 and bumped.raised_at == at(0) and bumped.message == first.message
    assert len(alarms) == 1


def test_alarms_are_separate_per_device_and_rule():
    alarms = book()
    a = alarms.apply(signal("raise", device="wl-7")).alarm
    b = alarms.apply(signal("raise", device="wl-8")).alarm
    assert a.id != b.id and len(alarms.active()) == 2


def test_ack_then_clear():
    alarms = book()
    alarm_id = alarms.apply(signal("raise")).alarm.id
    acked = alarms.acknowledge(alarm_id, at=at(1), by="duty-officer")
    assert acked.kind is ChangeKind.ACKNOWLEDGED and acked.event is None
    assert acked.alarm.status is AlarmStatus.ACTIVE_ACK and acked.alarm.acknowledged_by == "duty-officer"
    cleared = alarms.apply(signal("clear", 5, value=0.1))
    assert cleared.kind is ChangeKind.CLEARED and cleared.event == ALARM_CLEARED == flows.ALARM_CLEARED
    assert cleared.alarm.status is AlarmStatus.CLEARED_ACK and cleared.alarm.cleared_at == at(5)
    assert cleared.alarm.cleared_by is None  # by its rule
    assert alarms.active() == []


def test_clear_then_ack():
    alarms = book()
    alarm_id = alarms.apply(signal("raise")).alarm.id
    cleared = alarms.clear(alarm_id, at=at(2), by="operator")
    assert cleared.alarm.status is AlarmStatus.CLEARED_UNACK and cleared.alarm.cleared_by == "operator"
    assert alarms.acknowledge(alarm_id, at=at(3), by="op").alarm.status is AlarmStatus.CLEARED_ACK
    assert [a.id for a in alarms.prune()] == [alarm_id] and len(alarms) == 0


def test_a_raise_after_clear_opens_a_new_alarm():
    alarms = book()
    first = alarms.apply(signal("raise", 0)).alarm
    alarms.apply(signal("clear", 1))
    second = alarms.apply(signal("raise", 2))
    assert second.kind is ChangeKind.RAISED and second.alarm.id != first.id
    assert alarms.get(first.id).status is AlarmStatus.CLEARED_UNACK


def test_a_clear_signal_without_an_active_alarm_changes_nothing():
    alarms = book()
    assert alarms.apply(signal("clear")) is None
    alarms.apply(signal("raise"))
    alarms.apply(signal("clear", 1))
    assert alarms.apply(signal("clear", 2)) is None


@pytest.mark.parametrize(("status", "action"), [
    (AlarmStatus.ACTIVE_ACK, "acknowledge"),
    (AlarmStatus.CLEARED_UNACK, "clear"),
    (AlarmStatus.CLEARED_ACK, "clear"),
    (AlarmStatus.CLEARED_ACK, "acknowledge"),
])
def test_illegal_transitions_are_refused_with_a_clear_message(status, action):
    with pytest.raises(InvalidAlarmTransition, match=f"cannot {action} an alarm that is {status.value}"):
        transition(status, action, alarm_id="ALM-1")


def test_the_book_refuses_illegal_actions_and_changes_nothing():
    alarms = book()
    alarm_id = alarms.apply(signal("raise")).alarm.id
    alarms.acknowledge(alarm_id, at=at(1), by="op")
    with pytest.raises(InvalidAlarmTransition, match="ALM-1: cannot acknowledge an alarm that is active_ack"):
        alarms.acknowledge(alarm_id, at=at(2), by="op")
    alarms.clear(alarm_id, at=at(3))
    with pytest.raises(InvalidAlarmTransition, match="allowed: nothing"):
        alarms.clear(alarm_id, at=at(4))
    assert alarms.get(alarm_id).cleared_at == at(3)
    with pytest.raises(AlarmNotFound):
        alarms.acknowledge("ALM-404", at=at(5), by="op")


def test_raised_payload_has_every_field_of_the_events_contract():
    change = book().apply(signal("raise"), lon=120.1, lat=30.2)
    payload = change.payload
    assert payload.keys() >= RAISED_CONTRACT
    assert payload == {"alarm_id": "ALM-1", "device_id": "wl-7", "product": "waterlogging", "rule_id": "wl-high",
                       "severity": "major", "category_code": "TE0201", "message": "level 0.42 m", "value": 0.42,
                       "lon": 120.1, "lat": 30.2, "raised_at": "2026-11-26T08:00:00+00:00", "dispatch": True}
    assert payload["severity"] in flows.SEVERITY_URGENCY  # the mapping flows applies
    json.dumps(payload)  # goes through the outbox as JSON


def test_cleared_payload_has_the_required_fields():
    alarms = book()
    alarms.apply(signal("raise"))
    payload = alarms.apply(signal("clear", 20)).payload
    assert payload.keys() >= CLEARED_REQUIRED
    assert payload["cleared_at"] == "2026-11-26T08:20:00+00:00" and payload["alarm_id"] == "ALM-1"
    json.dumps(payload)


def test_the_contract_fields_are_the_ones_flows_reads():
    # Guard against drift: every field flows reads from a payload is one the book writes.
    raised_src = inspect.getsource(flows.handle_alarm_raised) + inspect.getsource(flows._alarm_id)
    read = set(re.findall(r"payload\.get\([\"'](\w+)[\"']", raised_src))
    assert {"alarm_id", "message", "lon"} <= read  # the pattern still finds them
    assert read <= RAISED_CONTRACT | {"crs"}
    assert read - {"crs"} <= book().apply(signal("raise")).payload.keys()


def test_an_undispatched_rule_still_describes_but_is_not_published():
    quiet = parse_rule({"id": "pm-warn", "product": "waterlogging", "property": "level", "kind": "threshold",
                        "params": {"op": ">", "value": 0.1}, "severity": "warning"})
    change = book().apply(signal("raise", rule=quiet))
    assert change.event == ALARM_RAISED and not change.publish and change.payload["dispatch"] is False
    assert change.payload["category_code"] is None and change.payload["severity"] == "warning"


def test_engine_and_book_together_raise_once_and_clear():
    engine, alarms = RuleEngine([RULE]), book()
    changes = []
    for minute, level in [(0, 0.1), (1, 0.35), (2, 0.5), (3, 0.2)]:
        for s in engine.on_message("wl-7", "waterlogging", {"level": level}, at(minute)):
            changes.append(alarms.apply(s, lon=120.1, lat=30.2))
    assert [(c.kind, c.event) for c in changes] == [(ChangeKind.RAISED, ALARM_RAISED),
                                                    (ChangeKind.CLEARED, ALARM_CLEARED)]
    assert changes[0].payload["value"] == 0.35 and changes[1].alarm.status is AlarmStatus.CLEARED_UNACK


@pytest.mark.usefixtures("categories", "frozen_clock")
def test_the_event_command_accepts_the_payloads(db):
    lon, lat = point_in(db, SILULU)
    alarms = book()
    raised = alarms.apply(signal("raise"), lon=lon, lat=lat)
    event = flows.handle_alarm_raised(db, payload=raised.payload)
    assert event.channel == "sensor" and event.external_id == raised.alarm.id and event.urgency == "urgent"
    cleared = alarms.apply(signal("clear", 30))
    assert flows.handle_alarm_cleared(db, payload=cleared.payload).id == event.id
