"""MQTT test clients: a paho client that records what it gets, a raw socket for bad bytes; free ports."""

from __future__ import annotations

import socket
import struct
import threading
import time

import paho.mqtt.client as mqtt


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Probe:
    """A paho client that records its CONNACK, SUBACKs, received messages and how it was disconnected."""

    def __init__(self, port: int, username: str | None, password: str | None, *, client_id: str = "",
                 protocol: mqtt.MQTTProtocolVersion = mqtt.MQTTv311, max_inflight: int = 20,
                 keepalive: int = 60) -> None:
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol)
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.max_inflight_messages_set(max_inflight)
        self.connack = threading.Event()
        self.disconnected = threading.Event()
        self.reason: mqtt.ReasonCode | None = None
        self.disconnect_reason: mqtt.ReasonCode | None = None
        self.messages: list[tuple[str, bytes]] = []
        self.subacks: list[list[mqtt.ReasonCode]] = []
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda _c, _u, msg: self.messages.append((msg.topic, msg.payload))
        self.client.on_subscribe = lambda _c, _u, _mid, codes, _p: self.subacks.append(list(codes))
        self.client.on_disconnect = self._on_disconnect
        self.client.connect("127.0.0.1", port, keepalive=keepalive)
        self.client.loop_start()

    def _on_connect(self, _c, _u, _flags, reason_code, _props) -> None:  # noqa: ANN001
        self.reason = reason_code
        self.connack.set()

    def _on_disconnect(self, _c, _u, _flags, reason_code, _props) -> None:  # noqa: ANN001
        self.disconnect_reason = reason_code
        self.disconnected.set()
        self.connack.set()

    def accepted(self) -> bool:
        assert self.connack.wait(10), "no CONNACK"
        return self.reason is not None and not self.reason.is_failure

    def subscribe(self, topic: str) -> list[mqtt.ReasonCode]:
        before = len(self.subacks)
        self.client.subscribe(topic, qos=1)
        wait_for(lambda: len(self.subacks) > before)
        return self.subacks[-1]

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> mqtt.MQTTMessageInfo:
        info = self.client.publish(topic, payload, qos=qos)
        info.wait_for_publish(10)
        return info

    def publish_many(self, messages: list[tuple[str, bytes]], timeout: float = 60) -> None:
        """Publish all with QoS 1 at once, then wait until every one is acknowledged."""
        infos = [self.client.publish(topic, payload, qos=1) for topic, payload in messages]
        deadline = time.monotonic() + timeout
        for info in infos:
            info.wait_for_publish(max(0.1, deadline - time.monotonic()))
            assert info.is_published(), "not acknowledged in time"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_for(condition, timeout: float = 10.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.01)


def _string(value: str | bytes) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    return struct.pack("!H", len(raw)) + raw


def _length(n: int) -> bytes:
    out = bytearray()
    while True:
        n, byte = n >> 7, n & 0x7F
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def connect_packet(username: str, password: str, *, keepalive: int = 60, will: tuple[str, bytes] | None = None,
                   client_id: str = "") -> bytes:
    """An MQTT 3.1.1 CONNECT written by hand (clean session, QoS 0 will)."""
    flags = 0x02 | 0x80 | 0x40 | (0x04 if will else 0)
    body = _string("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive) + _string(client_id)
    if will:
        body += _string(will[0]) + _string(will[1])
    body += _string(username) + _string(password)
    return bytes([0x10]) + _length(len(body)) + body


def publish_packet(topic: str, payload: bytes, *, qos: int = 0, packet_id: int = 1) -> bytes:
    body = _string(topic) + (struct.pack("!H", packet_id) if qos else b"") + payload
    return bytes([0x30 | qos << 1]) + _length(len(body)) + body


class RawClient:
    """A bare TCP socket speaking MQTT by hand, for what paho would not send."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                break
            data += chunk
        return data

    def closed_by_server(self, timeout: float = 10.0) -> bool:
        """True when the server closes the socket within ``timeout`` (bytes it sends first are skipped)."""
        self.sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if not self.sock.recv(4096):
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False
        return False

    def close(self) -> None:
        self.sock.close()
