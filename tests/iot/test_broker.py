"""The embedded MQTT broker: devices authenticate against the registry, and publish and subscribe
only on their own topics. Real broker, real paho clients, free ports."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy.orm import Session

from citybrain.config import Settings
from citybrain.iot import registry
from citybrain.iot.broker import BrokerStartError, EmbeddedBroker
from citybrain.iot.registry import DeviceDirectory, DeviceIn
from mqtt_probe import Probe, free_port, wait_for


@pytest.fixture
def devices(db: Session, admin_actor) -> dict[str, str]:  # noqa: ANN001
    registry.sync_products(db, actor=admin_actor)
    secrets = {}
    for key, product in [("t-aq-1", "air_quality_station"), ("t-aq-2", "air_quality_station"),
                         ("t-gw-1", "gateway"), ("t-off-1", "air_quality_station")]:
        _device, secrets[key] = registry.register(db, DeviceIn(key=key, name=key, product=product,
                                                                department_code="ecology"), actor=admin_actor)
    registry.set_state(db, key="t-off-1", state="disabled", actor=admin_actor)
    db.flush()
    return secrets


@pytest.fixture
def broker(db: Session, devices: dict[str, str]) -> Iterator[EmbeddedBroker]:
    directory = DeviceDirectory(lambda: Session(bind=db.connection(), join_transaction_mode="create_savepoint"),
                                ttl_s=3600)
    directory.refresh(force=True)
    settings = Settings(mqtt_port=free_port(), secret_key="x" * 40)
    with EmbeddedBroker(settings, directory) as running:
        yield running


@pytest.fixture
def ingest(broker: EmbeddedBroker) -> Iterator[Probe]:
    user, password = broker.ingest_credentials
    probe = Probe(broker.port, user, password, client_id="citybrain-ingest-4321-serve")
    assert probe.accepted()
    assert probe.subscribe("citybrain/#")[0].value == 1
    yield probe
    probe.close()


def test_device_with_its_secret_connects(broker: EmbeddedBroker, devices: dict[str, str]) -> None:
    probe = Probe(broker.port, "t-aq-1", devices["t-aq-1"], client_id="t-aq-1")
    assert probe.accepted()
    probe.close()
    probe = Probe(broker.port, "t-aq-1", devices["t-aq-1"])  # an empty client id is allowed
    assert probe.accepted()
    probe.close()


@pytest.mark.parametrize(("username", "password", "client_id"), [
    ("t-aq-1", "wrong-secret", "t-aq-1"),
    ("nobody-here", "whatever", "nobody-here"),
    ("t-off-1", None, "t-off-1"),  # disabled: its real secret is filled in by the test
    (None, None, "anon"),
    ("t-aq-1", None, "t-aq-2"),  # right secret, another device's client id
    ("citybrain-ingest-guess", "guess", ""),
    ("t-aq-1", None, "citybrain-ingest-1-serve"),  # a device may not use the ingestion client's ids
])
def test_bad_logins_are_refused(broker: EmbeddedBroker, devices: dict[str, str], username: str | None,
                                password: str | None, client_id: str) -> None:
    if username in devices and password is None:
        password = devices[username]
    probe = Probe(broker.port, username, password, client_id=client_id)
    assert not probe.accepted()
    assert probe.reason is not None and probe.reason.value in (134, 135)  # bad user name or password / not authorized
    probe.close()


def test_refused_login_does_not_kick_the_connected_device(broker: EmbeddedBroker, devices: dict[str, str],
                                                          ingest: Probe) -> None:
    good = Probe(broker.port, "t-aq-1", devices["t-aq-1"], client_id="t-aq-1")
    assert good.accepted()
    intruder = Probe(broker.port, "t-aq-1", "wrong", client_id="t-aq-1")
    assert not intruder.accepted()
    good.publish("citybrain/air_quality_station/t-aq-1/telemetry", b'{"pm25": 1}')
    wait_for(lambda: ingest.messages)
    assert ingest.messages == [("citybrain/air_quality_station/t-aq-1/telemetry", b'{"pm25": 1}')]
    good.close()
    intruder.close()


def test_mqtt5_clients_are_refused_clearly(broker: EmbeddedBroker, devices: dict[str, str]) -> None:
    probe = Probe(broker.port, "t-aq-1", devices["t-aq-1"], client_id="t-aq-1", protocol=mqtt.MQTTv5)
    assert not probe.accepted()
    probe.close()


def test_device_publishes_only_to_its_own_topics(broker: EmbeddedBroker, devices: dict[str, str],
                                                 ingest: Probe) -> None:
    dev = Probe(broker.port, "t-aq-1", devices["t-aq-1"], client_id="t-aq-1")
    assert dev.accepted()
    dev.publish("citybrain/air_quality_station/t-aq-2/telemetry", b"forged")  # another device
    dev.publish("citybrain/waterlogging_gauge/t-aq-1/telemetry", b"wrong product")
    dev.publish("citybrain/gateway/t-aq-1/telemetry", b"not a gateway")
    dev.publish("citybrain/air_quality_station/t-aq-1/command", b"commands are the platform's")
    dev.publish("elsewhere/x", b"outside the root")
    for kind in ("telemetry", "event", "status"):
        dev.publish(f"citybrain/air_quality_station/t-aq-1/{kind}", kind.encode())
    wait_for(lambda: len(ingest.messages) >= 3)
    time.sleep(0.2)
    assert [p for _t, p in ingest.messages] == [b"telemetry", b"event", b"status"]
    dev.close()


def test_gateway_publishes_batches_on_the_gateway_topic(broker: EmbeddedBroker, devices: dict[str, str],
                                                        ingest: Probe) -> None:
    gw = Probe(broker.port, "t-gw-1", devices["t-gw-1"], client_id="t-gw-1")
    assert gw.accepted()
    gw.publish("citybrain/gateway/t-aq-1/telemetry", b"another gateway's topic")
    gw.publish("citybrain/gateway/t-gw-1/telemetry", b"batch")
    wait_for(lambda: ingest.messages)
    time.sleep(0.2)
    assert ingest.messages == [("citybrain/gateway/t-gw-1/telemetry", b"batch")]
    gw.close()


def test_device_subscribes_only_to_its_command_topic(broker: EmbeddedBroker, devices: dict[str, str],
                                                     ingest: Probe) -> None:
    dev = Probe(broker.port, "t-aq-1", devices["t-aq-1"], client_id="t-aq-1")
    assert dev.accepted()
    assert dev.subscribe("citybrain/#")[0].is_failure
    assert dev.subscribe("citybrain/air_quality_station/t-aq-2/command")[0].is_failure
    assert not dev.subscribe("citybrain/air_quality_station/t-aq-1/command")[0].is_failure
    ingest.publish("citybrain/air_quality_station/t-aq-1/command", b'{"command": "set_report_interval"}')
    ingest.publish("citybrain/air_quality_station/t-aq-1/telemetry", b"ingest may not forge readings")
    wait_for(lambda: dev.messages)
    assert dev.messages == [("citybrain/air_quality_station/t-aq-1/command", b'{"command": "set_report_interval"}')]
    time.sleep(0.2)
    assert all(t.endswith("/command") for t, _p in ingest.messages)
    dev.close()


def test_a_taken_port_is_a_clear_error(db: Session) -> None:
    directory = DeviceDirectory(lambda: Session(bind=db.connection()), ttl_s=3600)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings = Settings(mqtt_port=taken.getsockname()[1], secret_key="x" * 40)
        with pytest.raises(BrokerStartError, match="cannot listen on 127.0.0.1"):
            EmbeddedBroker(settings, directory).start()
