"""The console's service functions on both backends: alarm lifecycle on stored alarms (with
audit, department scope and the outbox), history source selection and its raw fallback,
device and dead-letter listings, and the live watcher's change detection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, select

from citybrain.core.actor import Actor
from citybrain.core.errors import Conflict, Forbidden, Invalid, NotFound
from citybrain.core.models import AuditLog, OutboxMessage
from citybrain.iot import console, live, registry
from citybrain.iot.models import AlarmRecord, DeadLetter, Device, DeviceState, Rollup, RollupMark, Telemetry
from event_helpers import SILULU, actor, point_in

T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)  # the frozen clock's now
NOW_MS = int(T0.timestamp() * 1000)
MIN = 60_000
HOUR = 3_600_000
DAY_MS = 86_400_000
CLEARED_KEYS = {"alarm_id", "device_id", "product", "rule_id", "severity", "category_code", "message", "value",
                "lon", "lat", "raised_at", "dispatch", "cleared_at"}


# --- builders ----------------------------------------------------------------------------------


@pytest.fixture
def products(db, admin_actor):  # noqa: ANN001, ANN201
    registry.sync_products(db, actor=admin_actor)
    return registry.products(db)


def make_device(db, admin_actor, key: str, *, product: str = "air_quality_station", dept: str = "ecology",
                located: bool = True) -> Device:  # noqa: ANN001
    lon, lat = point_in(db, SILULU) if located else (None, None)
    device, _secret = registry.register(db, registry.DeviceIn(key=key, name=f"设备 {key}", product=product,
                                                              department_code=dept, lon=lon, lat=lat),
                                        actor=admin_actor)
    return device


def make_alarm(db, device: Device, alarm_id: str, *, status: str = "active_unack", dispatch: bool = True,
               rule: str = "r-pm25") -> AlarmRecord:  # noqa: ANN001
    row = AlarmRecord(id=alarm_id, rule_id=rule, device_key=device.key, product=device.product, severity="major",
                      category_code="TE0101", dispatch=dispatch, message="PM2.5 超标 <b>x</b>", value=180.5,
                      status=status, raised_at=T0 - timedelta(minutes=30), last_seen=T0 - timedelta(minutes=5),
                      count=3, lon=device.lon, lat=device.lat)
    db.add(row)
    db.flush()
    return row


def readings(db, device: Device, points: list[tuple[int, float]], prop: str = "pm25") -> None:  # noqa: ANN001
    db.add_all([Telemetry(device_id=device.id, ts=t, data={prop: v, "temperature": 1.0}) for t, v in points])
    db.flush()


def staff(db, username: str) -> Actor:  # noqa: ANN001
    return actor(db, username)


def audit_actions(db, alarm_id: str) -> list[str]:  # noqa: ANN001
    return list(db.scalars(select(AuditLog.action).where(AuditLog.object_type == "iot_alarm",
                                                         AuditLog.object_id == alarm_id).order_by(AuditLog.id)))


def cleared_messages(db, alarm_id: str) -> list[dict]:  # noqa: ANN001
    rows = db.scalars(select(OutboxMessage).where(OutboxMessage.topic == "alarm.cleared")).all()
    return [r.payload for r in rows if r.payload.get("alarm_id") == alarm_id]


# --- alarm lifecycle ---------------------------------------------------------------------------


def test_acknowledge_then_clear_walks_the_lifecycle_and_audits(db, admin_actor, products, frozen_clock) -> None:
    device = make_device(db, admin_actor, "aq-life-1")
    make_alarm(db, device, "ALM-life-1", dispatch=False)
    who = staff(db, "ecology")

    row = console.acknowledge_alarm(db, "ALM-life-1", who)
    assert (row.status, row.acknowledged_by, row.acknowledged_at) == ("active_ack", who.label, T0)
    row = console.clear_alarm(db, "ALM-life-1", who)
    assert (row.status, row.cleared_by, row.cleared_at) == ("cleared_ack", who.label, T0)
    assert audit_actions(db, "ALM-life-1") == ["iot.alarm_acknowledged", "iot.alarm_cleared"]
    assert cleared_messages(db, "ALM-life-1") == []  # not a dispatching rule: nothing for the bus


def test_clear_first_then_acknowledge(db, admin_actor, products, frozen_clock) -> None:
    device = make_device(db, admin_actor, "aq-life-2")
    make_alarm(db, device, "ALM-life-2", dispatch=False)
    assert console.clear_alarm(db, "ALM-life-2", admin_actor).status == "cleared_unack"
    assert console.acknowledge_alarm(db, "ALM-life-2", admin_actor).status == "cleared_ack"


@pytest.mark.parametrize(("status", "action"), [("active_ack", "acknowledge"), ("cleared_unack", "clear"),
                                                ("cleared_ack", "clear"), ("cleared_ack", "acknowledge")])
def test_illegal_transitions_conflict_and_change_nothing(db, admin_actor, products, frozen_clock,
                                                         status: str, action: str) -> None:
    device = make_device(db, admin_actor, "aq-illegal")
    make_alarm(db, device, "ALM-illegal", status=status)
    do = console.acknowledge_alarm if action == "acknowledge" else console.clear_alarm
    with pytest.raises(Conflict, match=f"cannot {action} an alarm that is {status}") as caught:
        do(db, "ALM-illegal", admin_actor)
    assert caught.value.status_code == 409
    db.expire_all()
    row = db.get(AlarmRecord, "ALM-illegal")
    assert (row.status, row.acknowledged_by, row.cleared_by) == (status, None, None)
    assert audit_actions(db, "ALM-illegal") == []
    assert cleared_messages(db, "ALM-illegal") == []


def test_unknown_alarm_is_not_found(db, admin_actor) -> None:
    with pytest.raises(NotFound, match="no alarm 'ALM-nope'"):
        console.acknowledge_alarm(db, "ALM-nope", admin_actor)


def test_manual_clear_of_a_dispatching_alarm_enqueues_alarm_cleared(db, admin_actor, products,
                                                                   frozen_clock) -> None:
    device = make_device(db, admin_actor, "aq-dispatch")
    make_alarm(db, device, "ALM-dispatch", dispatch=True)
    console.clear_alarm(db, "ALM-dispatch", staff(db, "ecology"))
    [payload] = cleared_messages(db, "ALM-dispatch")
    assert set(payload) == CLEARED_KEYS
    assert payload["device_id"] == "aq-dispatch" and payload["dispatch"] is True
    assert payload["cleared_at"] == T0.isoformat() and payload["severity"] == "major"
    # Acknowledging afterwards is not another clear: still one message.
    console.acknowledge_alarm(db, "ALM-dispatch", admin_actor)
    assert len(cleared_messages(db, "ALM-dispatch")) == 1


def test_staff_act_only_on_their_departments_alarms(db, admin_actor, products, frozen_clock) -> None:
    mine = make_device(db, admin_actor, "aq-eco", dept="ecology")
    theirs = make_device(db, admin_actor, "aq-city", dept="cityadmin")
    make_alarm(db, mine, "ALM-eco")
    make_alarm(db, theirs, "ALM-city")
    eco = staff(db, "ecology")
    with pytest.raises(Forbidden):
        console.acknowledge_alarm(db, "ALM-city", eco)
    with pytest.raises(Forbidden):
        console.clear_alarm(db, "ALM-city", eco)
    db.expire_all()
    assert db.get(AlarmRecord, "ALM-city").status == "active_unack"
    seen, total = console.list_alarms(db, actor=eco)
    assert [a.id for a, _d in seen] == ["ALM-eco"] and total == 1
    everything, _n = console.list_alarms(db, actor=admin_actor)
    assert {"ALM-eco", "ALM-city"} <= {a.id for a, _d in everything}
    assert console.alarm_counts(db, actor=eco) == {"active_unack": 1}


def test_alarm_list_filters_and_refuses_unknown_values(db, admin_actor, products, frozen_clock) -> None:
    device = make_device(db, admin_actor, "aq-filter")
    make_alarm(db, device, "ALM-f1", status="active_unack", rule="a")
    make_alarm(db, device, "ALM-f2", status="cleared_ack", rule="b")
    make_alarm(db, device, "ALM-f3", status="cleared_unack", rule="c")

    def ids(**kw) -> set[str]:  # noqa: ANN003
        return {a.id for a, _d in console.list_alarms(db, actor=admin_actor, device_key="aq-filter", **kw)[0]}

    assert ids(status="active") == {"ALM-f1"}
    assert ids(status="unacknowledged") == {"ALM-f1", "ALM-f3"}
    assert ids(status="cleared") == {"ALM-f2", "ALM-f3"}
    assert ids(status="cleared_ack") == {"ALM-f2"}
    assert ids(severity="major", product="air_quality_station") == {"ALM-f1", "ALM-f2", "ALM-f3"}
    assert ids(severity="minor") == set()
    with pytest.raises(Invalid, match="unknown alarm status 'open'"):
        console.list_alarms(db, actor=admin_actor, status="open")
    with pytest.raises(Invalid, match="unknown severity 'huge'"):
        console.list_alarms(db, actor=admin_actor, severity="huge")


# --- history -----------------------------------------------------------------------------------


def test_short_range_reads_raw_rows(db, admin_actor, products) -> None:
    device = make_device(db, admin_actor, "aq-raw")
    readings(db, device, [(NOW_MS - 50 * MIN, 10.0), (NOW_MS - 20 * MIN, 30.0), (NOW_MS - 2 * HOUR, 99.0)])
    series = console.history(db, device, "pm25", NOW_MS - HOUR, NOW_MS + 1)
    assert (series.source, series.period_s) == ("raw", None)
    assert [(p.t, p.avg) for p in series.points] == [(NOW_MS - 50 * MIN, 10.0), (NOW_MS - 20 * MIN, 30.0)]


def test_day_range_uses_minute_rollups_and_aggregates_raw_rows_past_the_mark(db, admin_actor, products) -> None:
    device = make_device(db, admin_actor, "aq-minute")
    start, end = NOW_MS - DAY_MS, NOW_MS
    b1 = start - start % MIN + 10 * MIN
    db.add(Rollup(device_id=device.id, prop="pm25", period=60, bucket=b1, count=2, sum=50.0, min=20.0, max=30.0))
    # A raw row inside rolled-up time must not be read again: the rollup already counts it.
    readings(db, device, [(b1 + 1000, 20.0), (NOW_MS - 30 * MIN, 40.0), (NOW_MS - 30 * MIN + 5000, 60.0),
                          (NOW_MS - 10 * MIN, 7.0)])
    done = NOW_MS - HOUR
    db.merge(RollupMark(period=60, done_until=done))
    db.flush()
    series = console.history(db, device, "pm25", start, end)
    assert (series.source, series.period_s, series.aggregated_from_ms) == ("rollup", 60, done)
    bucket = (NOW_MS - 30 * MIN) - (NOW_MS - 30 * MIN) % MIN
    assert [(p.t, p.avg, p.min, p.max, p.count) for p in series.points] == [
        (b1, 25.0, 20.0, 30.0, 2), (bucket, 50.0, 40.0, 60.0, 2), (NOW_MS - 10 * MIN, 7.0, 7.0, 7.0, 1)]


def test_rollups_missing_altogether_fall_back_to_raw_rows(db, admin_actor, products) -> None:
    device = make_device(db, admin_actor, "aq-norollup")
    db.execute(RollupMark.__table__.delete())
    readings(db, device, [(NOW_MS - 5 * DAY_MS, 10.0), (NOW_MS - 5 * DAY_MS + 10 * MIN, 30.0),
                          (NOW_MS - 2 * HOUR, 5.0)])
    series = console.history(db, device, "pm25", NOW_MS - 7 * DAY_MS, NOW_MS)
    assert (series.source, series.period_s, series.aggregated_from_ms) == ("rollup", 3600, NOW_MS - 7 * DAY_MS)
    first = NOW_MS - 5 * DAY_MS
    assert [(p.t, p.avg, p.count) for p in series.points] == [(first - first % HOUR, 20.0, 2),
                                                              (NOW_MS - 2 * HOUR, 5.0, 1)]


def test_long_range_uses_hour_rollups_when_covered(db, admin_actor, products) -> None:
    device = make_device(db, admin_actor, "aq-hour")
    bucket = NOW_MS - 3 * DAY_MS
    db.add(Rollup(device_id=device.id, prop="pm25", period=3600, bucket=bucket, count=4, sum=40.0, min=1, max=19))
    db.add(Rollup(device_id=device.id, prop="pm25", period=60, bucket=bucket, count=1, sum=999.0, min=999, max=999))
    db.merge(RollupMark(period=3600, done_until=NOW_MS))
    db.flush()
    series = console.history(db, device, "pm25", NOW_MS - 30 * DAY_MS, NOW_MS)
    assert (series.source, series.period_s, series.aggregated_from_ms) == ("rollup", 3600, None)
    assert [(p.t, p.avg, p.min, p.max) for p in series.points] == [(bucket, 10.0, 1.0, 19.0)]


def test_history_refuses_bad_ranges_and_properties(db, admin_actor, products) -> None:
    device = make_device(db, admin_actor, "aq-bad")
    with pytest.raises(Invalid, match="end of a history range must be after its start"):
        console.history(db, device, "pm25", NOW_MS, NOW_MS)
    with pytest.raises(Invalid, match="at most 400 days"):
        console.history(db, device, "pm25", 0, NOW_MS)
    with pytest.raises(Invalid, match="range must be one of 1h, 24h, 7d, 30d"):
        console.range_bounds("2h")
    with pytest.raises(Invalid, match="unknown property 'nope'"):
        console.numeric_property(products["air_quality_station"], "nope")
    with pytest.raises(Invalid, match="'open' is bool, not a number"):
        console.numeric_property(products["manhole_cover"], "open")
    console.numeric_property(products["air_quality_station"], "pm25")  # accepted


# --- devices and dead letters ---------------------------------------------------------------------


def test_device_listing_counts_online_offline_and_alarming(db, admin_actor, products) -> None:
    up = make_device(db, admin_actor, "qq-up")
    make_device(db, admin_actor, "qq-never")
    stale = make_device(db, admin_actor, "qq-stale")
    make_device(db, admin_actor, "wl-other", product="waterlogging_gauge", dept="cityadmin")
    db.add(DeviceState(device_id=up.id, ts=NOW_MS, data={"pm25": 3}, last_seen=NOW_MS - 60_000, status=None))
    db.add(DeviceState(device_id=stale.id, ts=NOW_MS, data={}, last_seen=NOW_MS - 3600_000, status=None))
    make_alarm(db, stale, "ALM-stale")
    eco = staff(db, "ecology")
    f = console.DeviceFilters(q="qq-")
    rows, total, counts = console.list_devices(db, actor=eco, products=products, filters=f, now_ms=NOW_MS)
    assert total == 3 and counts == {"all": 3, "online": 1, "offline": 2, "alarming": 1}
    offline = console.DeviceFilters(q="qq-", online=False)
    rows, total, _c = console.list_devices(db, actor=eco, products=products, filters=offline, now_ms=NOW_MS)
    assert [d.key for d, _s in rows] == ["qq-never", "qq-stale"] and total == 2
    online = console.DeviceFilters(q="qq-", online=True)  # the demo's own sensors are online too
    rows, _t, _c = console.list_devices(db, actor=eco, products=products, filters=online, now_ms=NOW_MS)
    assert [d.key for d, _s in rows] == ["qq-up"]
    # Department staff never see another department's device, however they filter.
    rows, total, _c = console.list_devices(db, actor=eco, products=products,
                                           filters=console.DeviceFilters(q="wl-other"), now_ms=NOW_MS)
    assert total == 0
    rows, total, _c = console.list_devices(db, actor=admin_actor, products=products,
                                           filters=console.DeviceFilters(q="wl-other"), now_ms=NOW_MS)
    assert total == 1
    assert console.active_alarm_keys(db, ["qq-up", "qq-stale"]) == {"qq-stale"}


def _dead(db, key: str | None, code: str, payload: str = "{}") -> None:  # noqa: ANN001
    db.add(DeadLetter(received_at=T0, source="mqtt", topic=f"citybrain/x/{key}/telemetry", device_key=key,
                      code=code, reason=f"{code} reason", size=len(payload), payload=payload))
    db.flush()


def test_dead_letters_filter_count_and_scope(db, admin_actor, products) -> None:
    make_device(db, admin_actor, "aq-dl", dept="ecology")
    make_device(db, admin_actor, "wl-dl", product="waterlogging_gauge", dept="cityadmin")
    _dead(db, "aq-dl", "wrong_type")
    _dead(db, "aq-dl", "wrong_type")
    _dead(db, "aq-dl", "malformed_json", "<script>alert(1)</script>")
    _dead(db, "wl-dl", "out_of_range")
    _dead(db, "ghost", "unknown_device")
    eco = staff(db, "ecology")
    assert console.dead_letter_counts(db, actor=eco) == {"wrong_type": 2, "malformed_json": 1}
    rows, total = console.list_dead_letters(db, actor=eco, code="malformed_json")
    assert total == 1 and rows[0].payload == "<script>alert(1)</script>"
    counts = console.dead_letter_counts(db, actor=admin_actor)
    assert counts["unknown_device"] >= 1 and counts["out_of_range"] >= 1
    rows, total = console.list_dead_letters(db, actor=admin_actor, device_key="wl-dl")
    assert total == 1 and rows[0].code == "out_of_range"
    leader = Actor(user_id=None, username="l", role="leader", permissions=frozenset({"iot:read"}), via="session")
    with pytest.raises(Forbidden):
        console.list_dead_letters(db, actor=leader)


# --- live watcher --------------------------------------------------------------------------------


def test_watcher_reports_state_changes_offline_transitions_and_alarm_changes(db, admin_actor, products,
                                                                           frozen_clock) -> None:
    device = make_device(db, admin_actor, "aq-live")
    # Only this device reports here (the demo's sensors have states too; rolled back after the test).
    db.execute(delete(DeviceState).where(DeviceState.device_id != device.id))
    db.add(DeviceState(device_id=device.id, ts=NOW_MS - 1000, data={"pm25": 1.0}, last_seen=NOW_MS - 1000))
    make_alarm(db, device, "ALM-live", dispatch=False)
    watcher = live.Watcher(lambda: db)
    assert watcher.poll(db, now_ms=NOW_MS) == []  # the first poll only takes stock

    state = db.get(DeviceState, device.id)
    state.data, state.last_seen, state.ts = {"pm25": 42.0}, NOW_MS + 2000, NOW_MS + 2000
    console.acknowledge_alarm(db, "ALM-live", admin_actor)
    db.flush()
    changes = watcher.poll(db, now_ms=NOW_MS + 2500)
    by_type = {c["type"]: c for c in changes}
    assert by_type["device"]["key"] == "aq-live" and by_type["device"]["data"] == {"pm25": 42.0}
    assert by_type["device"]["online"] is True
    assert by_type["alarm"]["id"] == "ALM-live" and by_type["alarm"]["status"] == "active_ack"
    assert watcher.poll(db, now_ms=NOW_MS + 3000) == []  # nothing new: nothing sent

    console.clear_alarm(db, "ALM-live", admin_actor)  # final: leaves the open set
    db.flush()
    later = NOW_MS + 2000 + 900_001  # past the air station's 900 s timeout
    changes = watcher.poll(db, now_ms=later)
    assert {(c["type"], c.get("online"), c.get("status")) for c in changes} == {
        ("device", False, None), ("alarm", None, "cleared_ack")}
    eco, city = staff(db, "ecology"), staff(db, "cityadmin")
    assert all(live.concerns(eco, c) for c in changes)
    assert not any(live.concerns(city, c) for c in changes)
    assert not live.concerns(eco, changes[0], device_key="another")
    text_ = live.sse_message({"type": "alarm", "id": "A", "message": "<b>", "department_id": 3})
    assert text_.startswith("event: alarm\n") and "department_id" not in text_

