"""A paho MQTT client for tests: records CONNACK, SUBACKs and messages; free ports."""

from __future__ import annotations

import socket
import threading
import time

import paho.mqtt.client as mqtt


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Probe:
    """A paho client that records its CONNACK, SUBACKs and received messages."""

    def __init__(self, port: int, username: str | None, password: str | None, *, client_id: str = "",
                 protocol: mqtt.MQTTProtocolVersion = mqtt.MQTTv311) -> None:
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol)
        if username is not None:
            self.client.username_pw_set(username, password)
        self.connack = threading.Event()
        self.reason: mqtt.ReasonCode | None = None
        self.messages: list[tuple[str, bytes]] = []
        self.subacks: list[list[mqtt.ReasonCode]] = []
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda _c, _u, msg: self.messages.append((msg.topic, msg.payload))
        self.client.on_subscribe = lambda _c, _u, _mid, codes, _p: self.subacks.append(list(codes))
        self.client.on_disconnect = lambda *_a: self.connack.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_connect(self, _c, _u, _flags, reason_code, _props) -> None:  # noqa: ANN001
        self.reason = reason_code
        self.connack.set()

    def accepted(self) -> bool:
        assert self.connack.wait(10), "no CONNACK"
        return self.reason is not None and not self.reason.is_failure

    def subscribe(self, topic: str) -> list[mqtt.ReasonCode]:
        before = len(self.subacks)
        self.client.subscribe(topic, qos=1)
        wait_for(lambda: len(self.subacks) > before)
        return self.subacks[-1]

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_for(condition, timeout: float = 10.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.01)
