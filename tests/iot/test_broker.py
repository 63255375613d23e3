"""citybrain's own MQTT endpoint: devices log in against the registry, publish only on their own
topics, and a QoS 1 message is acknowledged only once it is stored. Real server, real paho clients
(and a raw socket for bytes paho would never send), a real database, free ports."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import orjson
import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from citybrain.config import Settings
from citybrain.iot import registry
from citybrain.iot.broker import BrokerStartError, EmbeddedBroker
from citybrain.iot.ingest import Ingestor
from citybrain.iot.models import DeadLetter, Device, DeviceState, Telemetry
from citybrain.iot.registry import DeviceDirectory, DeviceIn
from mqtt_probe import Probe, RawClient, connect_packet, free_port, publish_packet, wait_for

AQ = "citybrain/air_quality_station/t-aq-1"


@pytest.fixture
def devices(db: Session, admin_actor) -> dict[str, str]:  # noqa: ANN001
    registry.sync_products(db, actor=admin_actor)
    secrets = {}
    for key, product, gateway in [("t-aq-1", "air_quality_station", None), ("t-aq-2", "air_quality_station", None),
                                  ("t-gw-1", "gateway", None), ("t-pk-1", "parking_detector", "t-gw-1"),
                                  ("t-off-1", "air_quality_station", None)]:
        _device, secrets[key] = registry.register(db, DeviceIn(key=key, name=key, product=product, gateway_key=gateway,
                                                                department_code="ecology"), actor=admin_actor)
    registry.set_state(db, key="t-off-1", state="disabled", actor=admin_actor)
    db.flush()
    return secrets


class Outage:
    """A session factory that fails like an unreachable database while ``down`` is set."""

    def __init__(self, db: Session) -> None:
        self.db = db
        self.down = threading.Event()

    def __call__(self) -> Session:
        if self.down.is_set():
            raise OperationalError("connect", {}, ConnectionRefusedError("the database is down"))
        return Session(bind=self.db.connection(), join_transaction_mode="create_savepoint", expire_on_commit=False)


@pytest.fixture
def outage(db: Session) -> Outage:
    return Outage(db)


def start_broker(db: Session, outage: Outage, **settings: object) -> EmbeddedBroker:
    directory = DeviceDirectory(lambda: Session(bind=db.connection(), join_transaction_mode="create_savepoint"),
                                ttl_s=3600)
    directory.refresh(force=True)
    ingestor = Ingestor(outage, directory, max_payload_bytes=4096)
    config = Settings(mqtt_port=free_port(), secret_key="x" * 40, **settings)
    return EmbeddedBroker(config, directory, ingestor).start()


@pytest.fixture
def broker(db: Session, devices: dict[str, str], outage: Outage) -> Iterator[EmbeddedBroker]:
    running = start_broker(db, outage, iot_max_payload_kb=4)
    yield running
    running.stop()


def reading(i: int, base: int | None = None) -> bytes:
    base = base if base is not None else int(time.time() * 1000) - 600_000
    return orjson.dumps({"ts": base + i, "values": {"pm25": i % 400}})


def stored(db: Session, key: str) -> int:
    return db.scalar(select(func.count()).select_from(Telemetry).join(Device, Device.id == Telemetry.device_id)
                     .where(Device.key == key)) or 0


def dead_letters(db: Session, code: str) -> list[DeadLetter]:
    return list(db.scalars(select(DeadLetter).where(DeadLetter.code == code)))


# --- logging in -----------------------------------------------------------------------------------


def test_device_with_its_secret_connects(broker: EmbeddedBroker, devices: dict[str, str]) -> None:
    probe = Probe(broker.port, "t-aq-1", devices["t-aq-1"], client_id="t-aq-1")
    assert probe.accepted()
    probe.close()
    probe = Probe(broker.port, "t-aq-1", devices["t-aq-1"])  # an empty client id is allowed
    assert probe.accepted()
    probe.close()


@pytest.mark.parametrize("protocol", [mqtt.MQTTv311, mqtt.MQTTv5])
@pytest.mark.parametrize(("username", "password", "client_id"), [
    ("t-aq-1", "wrong-secret", "t-aq-1"),
    ("nobody-here", "whatever", "nobody-here"),
    ("t-off-1", None, "t-off-1"),  # disabled: its real secret is filled in by the test
    (None, None, "anon"),
    ("t-aq-1", None, "t-aq-2"),  # right secret, another device's client id
    ("t-aq-1", None, "citybrain-ingest-1-serve"),
])
def test_bad_logins_are_refused(broker: EmbeddedBroker, devices: dict[str, str], username: str | None,
                                password: str | None, client_id: str, protocol: int) -> None:
    if username in devices and password is None:
        password = devices[username]
    probe = Probe(broker.port, username, password, client_id=client_id, protocol=protocol)
    assert not probe.accepted()
    assert probe.reason is not None and probe.reason.value in (134, 135)  # bad user name or password / not authorized
    assert probe.disconnected.wait(5)  # and the server closed the socket
    probe.close()


def test_mqtt5_device_connects_and_publishes(broker: EmbeddedBroker, devices: dict[str, str], db: Session) -> None:
    probe = Probe(broker.port, "t-aq-1", devices["t-aq-1"], client_id="t-aq-1", protocol=mqtt.MQTTv5)
    assert probe.accepted()
    probe.publish(f"{AQ}/telemetry", reading(1))
    assert stored(db, "t-aq-1") == 1
    refused = probe.publish("citybrain/air_quality_station/t-aq-2/telemetry", reading(2))
    assert refused.rc == 0  # acknowledged (with reason 0x87 "not authorized") but not stored
    assert stored(db, "t-aq-2") == 0
    probe.close()


def test_refused_login_does_not_kick_the_connected_device(broker: EmbeddedBroker, devices: dict[str, str],
                                                          db: Session) -> None:
    good = Probe(broker.port, "t-aq-1", devices["t-aq-1"], client_id="t-aq-1")
    assert good.accepted()
    intruder = Probe(broker.port, "t-aq-1", "wrong", client_id="t-aq-1")
    assert not intruder.accepted()
    good.publish(f"{AQ}/telemetry", reading(1))
    assert stored(db, "t-aq-1") == 1
    assert not good.disconnected.is_set()
    # The device itself logging in again takes over: the older connection is closed.
    again = Probe(broker.port, "t-aq-1", devices["t-aq-1"], client_id="t-aq-1")
    assert again.accepted()
    assert good.disconnected.wait(5)
    again.publish(f"{AQ}/telemetry", reading(2))
    assert stored(db, "t-aq-1") == 2
    for probe in (good, intruder, again):
        probe.close()


# --- what a device may do -------------------------------------------------------------------------


def test_device_publishes_only_to_its_own_topics(broker: EmbeddedBroker, devices: dict[str, str],
                                                 db: Session) -> None:
    dev = Probe(broker.port, "t-aq-1", devices["t-aq-1"], client_id="t-aq-1")
    assert dev.accepted()
    elsewhere = ["citybrain/air_quality_station/t-aq-2/telemetry",  # another device
                 "citybrain/waterlogging_gauge/t-aq-1/telemetry",  # wrong product
                 "citybrain/gateway/t-aq-1/telemetry",  # not a gateway
                 f"{AQ}/command",  # commands are the platform's
                 "elsewhere/x"]
    for topic in elsewhere:
        assert dev.publish(topic, reading(0)).is_published()  # 3.1.1: acknowledged, not ingested
    base = int(time.time() * 1000) - 1000
    dev.publish(f"{AQ}/telemetry", reading(1, base))
    dev.publish(f"{AQ}/event", orjson.dumps({"event": "power_on"}))
    dev.publish(f"{AQ}/status", orjson.dumps({"status": "online"}))
    assert stored(db, "t-aq-1") == 1 and stored(db, "t-aq-2") == 0
    state = db.scalar(select(DeviceState).join(Device, Device.id == DeviceState.device_id)
                      .where(Device.key == "t-aq-1"))
    assert state is not None and state.status == "online"
    refused = dead_letters(db, "topic_mismatch")
    assert sorted(d.topic for d in refused) == sorted(elsewhere)
    assert {d.device_key for d in refused} == {"t-aq-1"}
    dev.close()


def test_refused_publishes_are_recorded_at_most_ten_a_minute(broker: EmbeddedBroker, devices: dict[str, str],
                                                            db: Session) -> None:
    dev = Probe(broker.port, "t-aq-1", devices["t-aq-1"], client_id="t-aq-1", max_inflight=100)
    dev.publish_many([("citybrain/air_quality_station/t-aq-2/telemetry", reading(i)) for i in range(30)])
    assert len(dead_letters(db, "topic_mismatch")) == 10
    assert broker.refusals_dropped == 20
    assert broker.ingestor.stats.snapshot()["refused"]["topic_mismatch"] == 30
    dev.close()


def test_gateway_publishes_batches_on_the_gateway_topic(broker: EmbeddedBroker, devices: dict[str, str],
                                                        db: Session) -> None:
    gw = Probe(broker.port, "t-gw-1", devices["t-gw-1"], client_id="t-gw-1")
    assert gw.accepted()
    batch = orjson.dumps({"devices": [{"device": "t-pk-1", "ts": int(time.time() * 1000) - 1000,
                                       "values": {"occupied": True}}]})
    gw.publish("citybrain/gateway/t-aq-1/telemetry", batch)  # another gateway's topic
    gw.publish("citybrain/gateway/t-gw-1/telemetry", batch)
    assert [d.topic for d in dead_letters(db, "topic_mismatch")] == ["citybrain/gateway/t-aq-1/telemetry"]
    assert stored(db, "t-pk-1") == 1
    gw.close()


def test_device_subscribes_only_to_its_command_topic_and_gets_commands(broker: EmbeddedBroker,
                                                                        devices: dict[str, str]) -> None:
    dev = Probe(broker.port, "t-aq-1", devices["t-aq-1"], client_id="t-aq-1")
    assert dev.accepted()
    assert dev.subscribe("citybrain/#")[0].is_failure
    assert dev.subscribe("citybrain/air_quality_station/t-aq-2/command")[0].is_failure
    assert not broker.publish_command("t-aq-1", b"not subscribed yet")
    assert not dev.subscribe(f"{AQ}/command")[0].is_failure
    assert broker.publish_command("t-aq-1", b'{"command": "set_report_interval"}')
    assert not broker.publish_command("t-aq-2", b"not connected")
    wait_for(lambda: dev.messages)
    assert dev.messages == [(f"{AQ}/command", b'{"command": "set_report_interval"}')]
    dev.client.unsubscribe(f"{AQ}/command")
    wait_for(lambda: not broker.publish_command("t-aq-1", b"after unsubscribe"))
    dev.close()


# --- the guarantee: acknowledged means stored ----------------------------------------------------


def test_publisher_that_disconnects_right_after_its_last_puback_loses_nothing(
        broker: EmbeddedBroker, devices: dict[str, str], db: Session) -> None:
    dev = Probe(broker.port, "t-aq-1", devices["t-aq-1"], client_id="t-aq-1", max_inflight=1000)
    assert dev.accepted()
    base = int(time.time() * 1000) - 600_000
    dev.publish_many([(f"{AQ}/telemetry", reading(i, base)) for i in range(3000)])
    dev.client.disconnect()  # at once
    dev.client.loop_stop()
    assert stored(db, "t-aq-1") == 3000


def test_puback_only_after_commit(broker: EmbeddedBroker, devices: dict[str, str], db: Session,
                                  outage: Outage) -> None:
    dev = Probe(broker.port, "t-aq-1", devices["t-aq-1"], client_id="t-aq-1")
    assert dev.accepted()
    outage.down.set()
    infos = [dev.client.publish(f"{AQ}/telemetry", reading(i), qos=1) for i in range(5)]
    time.sleep(1.5)  # the server has read them and is retrying the batch
    assert not any(info.is_published() for info in infos)
    assert stored(db, "t-aq-1") == 0
    outage.down.clear()
    for info in infos:
        info.wait_for_publish(15)
        assert info.is_published()
    assert stored(db, "t-aq-1") == 5
    dev.close()


def test_stop_stores_and_acknowledges_what_it_holds(db: Session, devices: dict[str, str], outage: Outage) -> None:
    running = start_broker(db, outage)
    dev = Probe(running.port, "t-aq-1", devices["t-aq-1"], client_id="t-aq-1", max_inflight=100)
    assert dev.accepted()
    outage.down.set()
    infos = [dev.client.publish(f"{AQ}/telemetry", reading(i), qos=1) for i in range(50)]
    time.sleep(0.5)
    threading.Timer(1.0, outage.down.clear).start()
    running.stop()
    assert all(info.is_published() for info in infos)
    assert stored(db, "t-aq-1") == 50
    assert dev.disconnected.wait(5)
    dev.close()


# --- misbehaving clients --------------------------------------------------------------------------


def test_keepalive_silence_closes_the_connection(broker: EmbeddedBroker, devices: dict[str, str]) -> None:
    raw = RawClient(broker.port)
    raw.send(connect_packet("t-aq-1", devices["t-aq-1"], keepalive=1))
    assert raw.read(4) == b"\x20\x02\x00\x00"
    started = time.monotonic()
    assert raw.closed_by_server(timeout=5)
    assert 1.4 <= time.monotonic() - started <= 3.0
    raw.close()


def test_oversized_packet_closes_the_connection(broker: EmbeddedBroker, devices: dict[str, str],
                                                db: Session) -> None:
    raw = RawClient(broker.port)
    raw.send(connect_packet("t-aq-1", devices["t-aq-1"]))
    assert raw.read(4) == b"\x20\x02\x00\x00"
    raw.send(publish_packet(f"{AQ}/telemetry", b"x" * (6 * 1024), qos=1))  # limit: 4 KB + 1 KB
    assert raw.closed_by_server()
    raw.close()
    v5 = Probe(broker.port, "t-aq-1", devices["t-aq-1"], client_id="t-aq-1", protocol=mqtt.MQTTv5)
    assert v5.accepted()
    v5.close()
    assert dead_letters(db, "too_large") == []


@pytest.mark.parametrize("garbage", [
    b"\xff\xff\xff\xff\xff\xff",  # no such packet, endless length
    b"\x30\x05\x00\x01",  # a PUBLISH before CONNECT
    b"\x10\x0c\x00\x04MQTT\x04\x03\x00\x3c\x00\x00",  # reserved CONNECT flag
    b"\x10\x0a\x00\x04XXXX\x04\x02\x00\x3c",  # not MQTT
])
def test_garbage_closes_the_connection_and_the_server_goes_on(broker: EmbeddedBroker, devices: dict[str, str],
                                                              db: Session, garbage: bytes) -> None:
    raw = RawClient(broker.port)
    raw.send(garbage)
    assert raw.closed_by_server()
    raw.close()
    dev = Probe(broker.port, "t-aq-1", devices["t-aq-1"], client_id="t-aq-1")
    assert dev.accepted()
    dev.publish(f"{AQ}/telemetry", reading(1))
    assert stored(db, "t-aq-1") == 1
    dev.close()


def test_garbage_after_login_closes_the_connection(broker: EmbeddedBroker, devices: dict[str, str]) -> None:
    raw = RawClient(broker.port)
    raw.send(connect_packet("t-aq-1", devices["t-aq-1"]))
    assert raw.read(4) == b"\x20\x02\x00\x00"
    raw.send(b"\x30\x03\x00\x09a")  # topic length runs past the packet
    assert raw.closed_by_server()
    raw.close()


def test_will_on_unclean_disconnect_lands_as_a_status(broker: EmbeddedBroker, devices: dict[str, str],
                                                      db: Session) -> None:
    offline = (f"{AQ}/status", b'{"status": "offline"}')
    raw = RawClient(broker.port)
    raw.send(connect_packet("t-aq-1", devices["t-aq-1"], will=offline))
    assert raw.read(4) == b"\x20\x02\x00\x00"
    raw.send(publish_packet(f"{AQ}/status", b'{"status": "online"}', qos=1, packet_id=7))
    assert raw.read(4) == b"\x40\x02\x00\x07"
    raw.sock.shutdown(socket.SHUT_RDWR)  # gone without DISCONNECT
    raw.close()

    def status() -> str | None:
        db.expire_all()
        return db.scalar(select(DeviceState.status).join(Device, Device.id == DeviceState.device_id)
                         .where(Device.key == "t-aq-1"))

    wait_for(lambda: status() == "offline")
    # A clean DISCONNECT discards the will.
    dev = Probe(broker.port, "t-aq-1", devices["t-aq-1"], client_id="t-aq-1")
    dev.client.will_set(*offline)
    dev.client.reconnect()
    wait_for(lambda: dev.client.is_connected())
    dev.publish(f"{AQ}/status", b'{"status": "online"}')
    dev.close()
    time.sleep(0.3)
    assert status() == "online"


def test_qos2_is_refused_as_documented(broker: EmbeddedBroker, devices: dict[str, str], db: Session) -> None:
    v3 = Probe(broker.port, "t-aq-1", devices["t-aq-1"], client_id="t-aq-1")
    assert v3.accepted()
    v3.client.publish(f"{AQ}/telemetry", reading(1), qos=2)
    assert v3.disconnected.wait(5)  # 3.1.1: the connection is closed
    v3.client.loop_stop()
    v5 = Probe(broker.port, "t-aq-1", devices["t-aq-1"], client_id="t-aq-1", protocol=mqtt.MQTTv5)
    assert v5.accepted()
    v5.client.publish(f"{AQ}/telemetry", reading(2), qos=2)
    assert v5.disconnected.wait(5)
    assert v5.disconnect_reason is not None and v5.disconnect_reason.value == 0x9B  # QoS not supported
    v5.client.loop_stop()
    assert stored(db, "t-aq-1") == 0


def test_a_taken_port_is_a_clear_error(db: Session, outage: Outage) -> None:
    directory = DeviceDirectory(lambda: Session(bind=db.connection()), ttl_s=3600)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings = Settings(mqtt_port=taken.getsockname()[1], secret_key="x" * 40)
        with pytest.raises(BrokerStartError, match="cannot listen on 127.0.0.1"):
            EmbeddedBroker(settings, directory, Ingestor(outage, directory)).start()
