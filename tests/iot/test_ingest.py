"""The ingestion pipeline on a real database (SQLite and PostgreSQL): routing, validation,
storage, latest state, dead letters, rules → alarms → outbox."""

from __future__ import annotations

import time

import orjson
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from citybrain.core import outbox
from citybrain.core.actor import system_actor
from citybrain.core.models import OutboxMessage
from citybrain.iot import registry
from citybrain.iot.ingest import Ingestor, Message
from citybrain.iot.models import AlarmRecord, AlarmRule, DeadLetter, DeviceEvent, DeviceState, Telemetry
from citybrain.iot.registry import DeviceDirectory, DeviceIn

ACTOR = system_actor("test")
LON, LAT = 117.87, 36.80  # inside 周村区 (WGS-84)


def now_ms() -> int:
    return int(time.time() * 1000)


@pytest.fixture
def factory(connection: Connection):  # noqa: ANN201
    return lambda: Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)


@pytest.fixture
def setup(factory):  # noqa: ANN001, ANN201
    db = factory()
    registry.sync_products(db, actor=ACTOR)
    made = {}
    for key, product, gateway in [("t-aq-1", "air_quality_station", None), ("t-wl-1", "waterlogging_gauge", None),
                                  ("t-gw-1", "gateway", None), ("t-pk-1", "parking_detector", "t-gw-1"),
                                  ("t-pk-2", "parking_detector", None), ("t-off-1", "rain_gauge", None),
                                  ("t-smoke-1", "smoke_detector", None)]:
        device, secret = registry.register(db, DeviceIn(key=key, name=key, product=product, department_code="cityadmin",
                                                        lon=LON, lat=LAT, gateway_key=gateway), actor=ACTOR)
        made[key] = (device, secret)
    registry.set_state(db, key="t-off-1", state="disabled", actor=ACTOR)
    db.commit()
    db.close()
    directory = DeviceDirectory(factory, ttl_s=0)
    return Ingestor(factory, directory, max_payload_bytes=2048), made


def msg(topic: str, payload: object, **kw) -> Message:  # noqa: ANN003
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return Message(topic=topic, payload=body, received_ms=now_ms(), **kw)


def test_valid_reading_is_stored_and_becomes_the_latest_state(setup, factory) -> None:  # noqa: ANN001
    ingestor, made = setup
    ts = now_ms() - 1000
    [out] = ingestor.process([msg("citybrain/air_quality_station/t-aq-1/telemetry",
                                  {"ts": ts, "values": {"pm25": 80.5, "pm10": 120}})])
    assert out.accepted == 1 and out.refused == []
    db = factory()
    dev = made["t-aq-1"][0]
    row = db.get(Telemetry, (dev.id, ts))
    assert row.data == {"pm25": 80.5, "pm10": 120.0}
    state = db.get(DeviceState, dev.id)
    assert state.ts == ts and state.data["pm25"] == 80.5
    # An older reading fills in what is missing and never overwrites a newer value.
    ingestor.process([msg("citybrain/air_quality_station/t-aq-1/telemetry", {"ts": ts - 60_000,
                                                                             "pm25": 10.0, "o3": 50})])
    db.expire_all()
    state = db.get(DeviceState, dev.id)
    assert state.ts == ts and state.data["pm25"] == 80.5 and state.data["o3"] == 50.0


def test_redelivered_message_is_stored_once(setup, factory) -> None:  # noqa: ANN001
    ingestor, made = setup
    m = msg("citybrain/waterlogging_gauge/t-wl-1/telemetry", {"ts": now_ms() - 5, "values": {"level_cm": 3.5}})
    ingestor.process([m, m])
    ingestor.process([m])
    db = factory()
    count = db.scalar(select(func.count()).select_from(Telemetry).where(Telemetry.device_id == made["t-wl-1"][0].id))
    assert count == 1
    assert ingestor.stats.snapshot()["stored"] == 1


@pytest.mark.parametrize(("topic", "payload", "code"), [
    ("citybrain/air_quality_station/nobody/telemetry", {"pm25": 1.0}, "unknown_device"),
    ("citybrain/rain_gauge/t-off-1/telemetry", {"rain_mm_1h": 1.0}, "device_disabled"),
    ("citybrain/rain_gauge/t-aq-1/telemetry", {"rain_mm_1h": 1.0}, "topic_mismatch"),
    ("citybrain/air_quality_station/t-aq-1", {"pm25": 1.0}, "bad_topic"),
    ("other/air_quality_station/t-aq-1/telemetry", {"pm25": 1.0}, "bad_topic"),
    ("citybrain/air_quality_station/t-aq-1/weather", {"pm25": 1.0}, "bad_topic"),
    ("citybrain/air_quality_station/t-aq-1/telemetry", b"{not json", "malformed_json"),
    ("citybrain/air_quality_station/t-aq-1/telemetry", b"", "malformed_json"),
    ("citybrain/air_quality_station/t-aq-1/telemetry", b'{"pm25": NaN}', "malformed_json"),
    ("citybrain/air_quality_station/t-aq-1/telemetry", {"pm25": "high"}, "wrong_type"),
    ("citybrain/air_quality_station/t-aq-1/telemetry", {"pm25": -3}, "out_of_range"),
    ("citybrain/air_quality_station/t-aq-1/telemetry", {"pm25": 1e9}, "out_of_range"),
    ("citybrain/air_quality_station/t-aq-1/telemetry", {"rain": 1}, "unknown_property"),
    ("citybrain/air_quality_station/t-aq-1/telemetry", {"ts": now_ms() + 3_600_000, "pm25": 1.0}, "future_timestamp"),
    ("citybrain/air_quality_station/t-aq-1/telemetry", {"ts": 1_000, "pm25": 1.0}, "bad_timestamp"),
    ("citybrain/air_quality_station/t-aq-1/telemetry", {"ts": "yesterday", "pm25": 1.0}, "bad_timestamp"),
    ("citybrain/air_quality_station/t-aq-1/telemetry", {"pm25": 1.0, "x": "y" * 3000}, "too_large"),
    ("citybrain/air_quality_station/t-aq-1/telemetry", [], "empty"),
    ("citybrain/air_quality_station/t-aq-1/telemetry", 42, "not_an_object"),
    ("citybrain/air_quality_station/t-aq-1/status", {"status": "sleepy"}, "wrong_type"),
    ("citybrain/air_quality_station/t-aq-1/event", {"event": "explode"}, "unknown_property"),
    ("citybrain/gateway/t-gw-1/telemetry", {"pm25": 1}, "not_an_object"),
    ("citybrain/gateway/t-gw-1/event", {"event": "x"}, "bad_topic"),
    # NUL bytes: no database text column stores them; they must be refused, never stall a batch.
    ("citybrain/air_quality_station/t-aq-1/telemetry", b'{"pm25": 1}\x00\xff', "malformed_json"),
    ("citybrain/air_quality_station/t-aq-1/event", {"event": "sensor_fault", "params": {"detail": "a\u0000b"}},
     "out_of_range"),
])
def test_bad_messages_go_to_the_dead_letter_store_and_change_nothing(setup, factory, topic, payload, code) -> None:  # noqa: ANN001
    ingestor, _made = setup
    db = factory()
    before = db.scalar(select(func.count()).select_from(Telemetry))
    [out] = ingestor.process([msg(topic, payload)])
    assert out.accepted == 0
    assert [r.code for r in out.refused] == [code], out.refused
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(Telemetry)) == before
    letter = db.scalars(select(DeadLetter).order_by(DeadLetter.id.desc())).first()
    assert letter.code == code and letter.topic == topic[:300] and letter.reason
    assert ingestor.stats.snapshot()["refused"] == {code: 1}


def test_authenticated_device_cannot_publish_for_another(setup) -> None:  # noqa: ANN001
    ingestor, _ = setup
    [out] = ingestor.process([msg("citybrain/air_quality_station/t-aq-1/telemetry", {"pm25": 1.0},
                                  auth_key="t-wl-1")])
    assert [r.code for r in out.refused] == ["topic_mismatch"]


def test_list_message_keeps_the_good_readings(setup) -> None:  # noqa: ANN001
    ingestor, _ = setup
    t = now_ms() - 10_000
    [out] = ingestor.process([msg("citybrain/air_quality_station/t-aq-1/telemetry",
                                  [{"ts": t, "pm25": 1.0}, {"ts": t + 1, "pm25": "x"}, {"ts": t + 2, "pm10": 3}])])
    assert out.accepted == 2
    assert [(r.code, r.index) for r in out.refused] == [("wrong_type", 1)]


def test_gateway_batch_accepts_its_children_only(setup, factory) -> None:  # noqa: ANN001
    ingestor, made = setup
    t = now_ms() - 2000
    [out] = ingestor.process([msg("citybrain/gateway/t-gw-1/telemetry", {"devices": [
        {"device": "t-pk-1", "ts": t, "values": {"occupied": True}},
        {"device": "t-pk-2", "ts": t, "values": {"occupied": True}},  # not behind this gateway
        {"device": "ghost", "ts": t, "values": {"occupied": True}},
        {"device": "t-pk-1", "ts": t + 1, "values": {"occupied": "yes"}},
        {"ts": t},
    ]})])
    assert out.accepted == 1
    assert [(r.code, r.index) for r in out.refused] == [("topic_mismatch", 1), ("unknown_device", 2),
                                                         ("wrong_type", 3), ("not_an_object", 4)]
    db = factory()
    assert db.get(DeviceState, made["t-pk-1"][0].id).data == {"occupied": True}
    assert db.get(DeviceState, made["t-pk-2"][0].id) is None


def test_status_and_events(setup, factory) -> None:  # noqa: ANN001
    ingestor, made = setup
    outs = ingestor.process([
        msg("citybrain/smoke_detector/t-smoke-1/status", {"status": "offline"}),
        msg("citybrain/smoke_detector/t-smoke-1/event", {"event": "smoke_alarm", "ts": now_ms() - 10}),
    ])
    assert [o.refused for o in outs] == [[], []]
    db = factory()
    dev = made["t-smoke-1"][0]
    state = db.get(DeviceState, dev.id)
    assert state.status == "offline" and state.last_seen > 0 and state.data == {}
    event = db.scalars(select(DeviceEvent).where(DeviceEvent.device_id == dev.id)).one()
    assert event.event == "smoke_alarm" and event.level == "critical"


def test_rule_raises_an_alarm_written_to_the_outbox_and_clears_it(setup, factory) -> None:  # noqa: ANN001
    ingestor, _made = setup
    db = factory()
    db.add(AlarmRule(id="t-wl-high", name="积水超过30厘米", product="waterlogging_gauge", device_key=None,
                     property="level_cm", kind="threshold", params={"op": ">", "value": 30}, severity="major",
                     dispatch=True, category_code="E0109", enabled=True, updated_at=__import__(
                         "citybrain.core.clock", fromlist=["now"]).now()))
    db.commit()
    ingestor._rules_checked = 0  # noqa: SLF001 - pick the new rule up now
    t = now_ms() - 60_000
    topic = "citybrain/waterlogging_gauge/t-wl-1/telemetry"
    ingestor.process([msg(topic, {"ts": t, "level_cm": 12.0}), msg(topic, {"ts": t + 1000, "level_cm": 35.0})])
    ingestor.process([msg(topic, {"ts": t + 2000, "level_cm": 40.0})])  # still high: no second alarm
    db.expire_all()
    alarms = db.scalars(select(AlarmRecord).where(AlarmRecord.rule_id == "t-wl-high")).all()
    assert len(alarms) == 1 and alarms[0].status == "active_unack" and alarms[0].lon == pytest.approx(LON, abs=1e-6)
    raised = db.scalars(select(OutboxMessage).where(OutboxMessage.topic == "alarm.raised")).all()
    assert [m.payload["alarm_id"] for m in raised] == [alarms[0].id]
    assert raised[0].payload["category_code"] == "E0109"
    ingestor.process([msg(topic, {"ts": t + 3000, "level_cm": 5.0})])
    db.expire_all()
    assert db.get(AlarmRecord, alarms[0].id).status == "cleared_unack"
    cleared = db.scalars(select(OutboxMessage).where(OutboxMessage.topic == "alarm.cleared")).all()
    assert [m.payload["alarm_id"] for m in cleared] == [alarms[0].id]


def test_outbox_relay_opens_the_event_once(setup, factory) -> None:  # noqa: ANN001
    from citybrain.core.bus import Bus
    from citybrain.events import flows
    from citybrain.events.models import Event

    ingestor, _ = setup
    db = factory()
    db.add(AlarmRule(id="t-wl-relay", name="积水", product="waterlogging_gauge", device_key="t-wl-1",
                     property="level_cm", kind="threshold", params={"op": ">=", "value": 50}, severity="critical",
                     dispatch=True, category_code="E0109", enabled=True,
                     updated_at=__import__("citybrain.core.clock", fromlist=["now"]).now()))
    db.commit()
    ingestor._rules_checked = 0  # noqa: SLF001
    ingestor.process([msg("citybrain/waterlogging_gauge/t-wl-1/telemetry", {"ts": now_ms() - 5, "level_cm": 55.0})])
    bus = Bus()
    assert outbox.relay_once(factory, on=bus) == 0  # nobody listens yet: stays pending
    stop = flows.install(factory, on=bus)
    try:
        assert outbox.relay_once(factory, on=bus) == 1
        assert outbox.relay_once(factory, on=bus) == 0
    finally:
        stop()
    db.expire_all()
    alarm = db.scalars(select(AlarmRecord).where(AlarmRecord.rule_id == "t-wl-relay")).one()
    events = db.scalars(select(Event).where(Event.external_id == alarm.id)).all()
    assert len(events) == 1 and events[0].category_code == "E0109"
