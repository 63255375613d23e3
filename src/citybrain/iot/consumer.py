"""MQTT ingestion worker: subscribe, batch, store, then acknowledge.

One paho-mqtt client (MQTT 5) per worker, with a persistent session (fixed client id,
``clean_start=False``, a long session expiry) and **manual acknowledgement**: a QoS 1 message is
acknowledged (PUBACK) only after the batch that contains it has been committed. If the process
dies before that, the broker still holds the message in the session and delivers it again when
the worker reconnects; the (device, ts) key stores it once. On an external broker the workers
subscribe through a shared subscription (``$share/<group>/citybrain/+/+/+``) so the broker splits
the messages between them; ``Receive Maximum`` is raised to 65,535 so the broker keeps many
messages in flight while a batch is being written.

The network loop runs in paho's thread and only appends to a queue; a writer thread takes up to
``max_batch`` messages (or what arrived within ``linger_s``), hands them to the ``Ingestor`` and
acknowledges them. A database error keeps the batch and retries it with back-off: nothing is
acknowledged that is not stored.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
from sqlalchemy.exc import InterfaceError, OperationalError

from .ingest import TOPIC_ROOT, Ingestor, Message

log = logging.getLogger("citybrain.iot.consumer")

SESSION_EXPIRY_S = 7 * 86400


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts", "tcp") or not parts.hostname:
            raise ValueError(f"not an mqtt://host[:port] URL: {url!r}")
        tls = parts.scheme == "mqtts"
        return cls(parts.hostname, parts.port or (8883 if tls else 1883),
                   unquote(parts.username) if parts.username else None,
                   unquote(parts.password) if parts.password else None, tls)


class Consumer:
    def __init__(self, ingestor: Ingestor, address: BrokerAddress, *, client_id: str,
                 share_group: str | None = None, max_batch: int = 2000, linger_s: float = 0.02,
                 on_batch: Callable[[int], None] | None = None) -> None:
        self.ingestor = ingestor
        self.address = address
        self.client_id = client_id
        self.topic = f"{TOPIC_ROOT}/+/+/+"
        if share_group:
            self.topic = f"$share/{share_group}/{self.topic}"
        self.max_batch = max_batch
        self.linger = linger_s
        self.on_batch = on_batch
        self.queue: queue.SimpleQueue[tuple[Message, int, int]] = queue.SimpleQueue()
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._writer: threading.Thread | None = None
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv5, manual_ack=True)
        if address.username:
            self.client.username_pw_set(address.username, address.password)
        if address.tls:
            self.client.tls_set()
        self.client.reconnect_delay_set(min_delay=1, max_delay=10)
        self.client.max_inflight_messages_set(1000)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self, *, wait_s: float = 10.0) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        props.ReceiveMaximum = 65535
        self._writer = threading.Thread(target=self._write_loop, name=f"{self.client_id}-writer", daemon=True)
        self._writer.start()
        try:
            self.client.connect(self.address.host, self.address.port, keepalive=30, clean_start=False,
                                properties=props)
        except OSError as exc:
            log.warning("MQTT broker %s:%s not reachable yet (%s); retrying in the background",
                        self.address.host, self.address.port, exc)
            self.client.connect_async(self.address.host, self.address.port, keepalive=30, clean_start=False,
                                      properties=props)
        self.client.loop_start()
        if wait_s and not self.connected.wait(wait_s):
            log.warning("MQTT consumer %s not connected after %.0f s; still trying", self.client_id, wait_s)

    def stop(self) -> None:
        """Stop taking messages, write what is queued, acknowledge it, disconnect."""
        self._stop.set()
        if self._writer is not None:
            self._writer.join(timeout=30)
        self.client.disconnect()
        self.client.loop_stop()

    # --- paho callbacks (network thread) ----------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, _userdata: object, _flags: object, reason: object,
                    _props: object = None) -> None:
        if getattr(reason, "is_failure", False):
            log.error("MQTT connection refused: %s", reason)
            return
        client.subscribe(self.topic, options=SubscribeOptions(qos=1))
        self.connected.set()
        log.info("MQTT consumer %s connected to %s:%s, subscribed to %s", self.client_id, self.address.host,
                 self.address.port, self.topic)

    def _on_disconnect(self, _client: mqtt.Client, _userdata: object, _flags: object, reason: object,
                       _props: object = None) -> None:
        self.connected.clear()
        if not self._stop.is_set():
            log.warning("MQTT consumer %s disconnected (%s); reconnecting", self.client_id, reason)

    def _on_message(self, _client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = message._topic.decode("utf-8", "replace")  # noqa: SLF001 - the raw bytes are all we have
        self.queue.put((Message(topic=topic, payload=message.payload, received_ms=int(time.time() * 1000)),
                        message.mid, message.qos))

    # --- writer thread ---------------------------------------------------------------------------

    def _take(self) -> list[tuple[Message, int, int]]:
        try:
            first = self.queue.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.linger
        while len(batch) < self.max_batch:
            try:
                batch.append(self.queue.get_nowait())
            except queue.Empty:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    batch.append(self.queue.get(timeout=left))
                except queue.Empty:
                    break
        return batch

    def _write_loop(self) -> None:
        while True:
            batch = self._take()
            if not batch:
                if self._stop.is_set():
                    return
                continue
            self._store([m for m, _mid, _qos in batch])
            for _message, mid, qos in batch:
                if qos > 0:
                    self.client.ack(mid, qos)
            if self.on_batch is not None:
                self.on_batch(len(batch))

    def _store(self, messages: list[Message]) -> None:
        """Store a batch, retrying while the database is unreachable. A batch that fails for another
        reason (a message no check foresaw) is split, and a single message that still cannot be
        stored goes to the dead-letter store: one poisoned message never stalls ingestion."""
        delay = 0.5
        while True:
            try:
                self.ingestor.process(messages)
                return
            except (OperationalError, InterfaceError):
                log.exception("database unavailable storing %d messages; retrying in %.1f s", len(messages), delay)
            except Exception as exc:  # noqa: BLE001 - isolate the message that fails
                if len(messages) > 1:
                    log.warning("a batch of %d messages failed (%s); storing them one by one", len(messages), exc)
                    half = len(messages) // 2
                    self._store(messages[:half])
                    self._store(messages[half:])
                    return
                try:
                    self.ingestor.refuse(messages[0], "storage_error", f"{type(exc).__name__}: {exc}"[:400])
                    log.error("message on %s could not be stored: %s", messages[0].topic[:200], exc)
                    return
                except (OperationalError, InterfaceError):
                    log.exception("database unavailable; retrying in %.1f s", delay)
            time.sleep(delay)
            delay = min(delay * 2, 10.0)
