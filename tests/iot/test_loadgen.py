"""The bench's load generator encodes MQTT packets by hand: a real paho subscriber, through the
real Mosquitto at 127.0.0.1:1883, must receive exactly the topic and payload it meant, and the
payloads must pass the product's thing model."""

from __future__ import annotations

import importlib.util
import json
import queue
import random
import socket
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from citybrain.iot.payload import validate_telemetry
from citybrain.iot.registry import shipped_products_text
from citybrain.iot.thingmodel import load_products

BENCH = Path(__file__).resolve().parents[2] / "bench"
BROKER = ("127.0.0.1", 1883)


def _loadgen():
    spec = importlib.util.spec_from_file_location("iot_loadgen_under_test", BENCH / "iot_loadgen.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


lg = _loadgen()


@pytest.fixture
def subscriber():
    """A paho subscriber on a private topic; yields (topic prefix, queue of messages)."""
    try:
        socket.create_connection(BROKER, timeout=1).close()
    except OSError:
        pytest.skip("no MQTT broker at 127.0.0.1:1883")
    prefix = f"bench-test/{uuid.uuid4().hex}"
    got: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    subscribed = queue.Queue()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}")
    client.on_message = lambda _c, _u, msg: got.put(msg)
    client.on_subscribe = lambda *_a: subscribed.put(True)
    client.on_connect = lambda c, *_a: c.subscribe(f"{prefix}/#", qos=1)
    client.connect(*BROKER)
    client.loop_start()
    subscribed.get(timeout=10)
    yield prefix, got
    client.disconnect()
    client.loop_stop()


def _publish_raw(packets: list[bytes]) -> list[bytes]:
    """CONNECT, send the packets in one write, return the PUBACKs the broker sent back."""
    with socket.create_connection(BROKER, timeout=5) as sock:
        sock.sendall(lg.encode_connect(f"t-{uuid.uuid4().hex[:8]}"))
        connack = sock.recv(4)
        assert connack == b"\x20\x02\x00\x00"
        sock.sendall(b"".join(packets))
        data = b""
        while len(data) < 4 * len(packets):
            chunk = sock.recv(4096)
            assert chunk, "broker closed the connection (malformed packet?)"
            data += chunk
        sock.sendall(lg.DISCONNECT)
    return [data[i:i + 4] for i in range(0, len(data), 4)]


def _product():
    return load_products(shipped_products_text())[lg.PRODUCT]


def test_varint_boundaries_follow_the_mqtt_spec():
    assert lg.varint(0) == b"\x00"
    assert lg.varint(127) == b"\x7f"
    assert lg.varint(128) == b"\x80\x01"
    assert lg.varint(16383) == b"\xff\x7f"
    assert lg.varint(16384) == b"\x80\x80\x01"
    assert lg.varint(268_435_455) == b"\xff\xff\xff\x7f"


def test_device_template_reaches_paho_as_the_intended_message(subscriber):
    prefix, got = subscriber
    device_tpl = lg.device_templates(7, random.Random(1))[2]
    topic = f"{prefix}/air_quality_station/{lg.device_key(7)}/telemetry"
    tpl = lg.Template.build(topic, list(device_tpl.parts), 1)
    ts = int(time.time() * 1000)
    acks = _publish_raw([tpl.packet(513, ts), tpl.packet(65535, ts + 1)])
    assert acks == [b"\x40\x02\x02\x01", b"\x40\x02\xff\xff"]
    first, second = got.get(timeout=10), got.get(timeout=10)
    assert (first.topic, first.qos) == (topic, 1)
    doc = json.loads(first.payload)
    assert doc["ts"] == ts and json.loads(second.payload)["ts"] == ts + 1
    assert set(doc["values"]) == {"pm25", "pm10", "o3"}
    tele = validate_telemetry(_product(), first.payload, now=datetime.now(UTC))
    assert tele.ts_reported and len(tele.values) == 3
    assert device_tpl.head.endswith(f"citybrain/air_quality_station/{lg.device_key(7)}/telemetry".encode())


def test_gateway_template_carries_every_child_with_the_same_timestamp(subscriber):
    prefix, got = subscriber
    children = list(range(200, 300))
    gw_tpl = lg.gateway_templates(2, children, random.Random(2))[0]
    assert gw_tpl.readings == 100
    topic = f"{prefix}/gateway/{lg.gateway_key(2)}/telemetry"
    tpl = lg.Template.build(topic, list(gw_tpl.parts), gw_tpl.readings)
    assert tpl.head[1] & 0x80  # a multi-byte remaining length
    ts = int(time.time() * 1000)
    assert _publish_raw([tpl.packet(42, ts)]) == [b"\x40\x02\x00\x2a"]
    msg = got.get(timeout=10)
    doc = json.loads(msg.payload)
    assert [d["device"] for d in doc["devices"]] == [lg.device_key(i) for i in children]
    assert {d["ts"] for d in doc["devices"]} == {ts}
    product = _product()
    for entry in doc["devices"]:
        validate_telemetry(product, {k: v for k, v in entry.items() if k != "device"}, now=datetime.now(UTC))


def test_encode_publish_matches_the_template_encoding():
    tpl = lg.Template.build("a/b", [b'{"ts":', b"}"], 1)
    assert tpl.packet(7, 1_795_000_000_000) == lg.encode_publish("a/b", b'{"ts":1795000000000}', 7)


def test_a_broker_refusing_the_connection_is_reported():
    """A CONNECT with an unsupported protocol level is refused; the generator's check sees it."""
    try:
        sock = socket.create_connection(BROKER, timeout=5)
    except OSError:
        pytest.skip("no MQTT broker at 127.0.0.1:1883")
    with sock:
        bad = bytearray(lg.encode_connect("t-bad"))
        bad[8] = 9  # protocol level 9 does not exist
        sock.sendall(bytes(bad))
        answer = sock.recv(4)
    assert answer[:1] == b"\x20" and answer[3] != 0 or answer == b""
