"""MQTT ingestion worker: subscribe, batch, store, then acknowledge.

One MQTT client per worker (gmqtt on asyncio, in the worker's own thread) with a persistent
session (fixed client id, no clean start, a long session expiry) and **acknowledgement after
commit**: a QoS 1 message's PUBACK is sent only once the batch that contains it has been
committed. If the process dies before that, the broker still holds the message in the session
and delivers it again when the worker reconnects; the (device, ts) key stores it once. On an
external broker the workers subscribe through a shared subscription
(``$share/<group>/citybrain/+/+/+``) so the broker splits the messages between them; MQTT 5's
Receive Maximum is raised to 65,535 so the broker keeps many messages in flight while a batch is
being written. (Without an external broker there is no consumer: citybrain's own MQTT endpoint,
``broker.EmbeddedBroker``, ingests what devices publish.)

Each message's handler waits for the batch it joined; the batcher takes up to ``max_batch``
messages (or what arrived within ``linger_s``) and stores them in a thread. gmqtt was chosen over
paho-mqtt because a bare subscriber receives about 1.7 times as many messages per second with it
on this machine (docs/performance.md). A database outage keeps the batch and retries it: nothing
is acknowledged that is not stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from gmqtt import Client as MqttClient
from gmqtt.mqtt.constants import MQTTv50, MQTTv311

from .ingest import TOPIC_ROOT, Ingestor, Message, store_batch

log = logging.getLogger("citybrain.iot.consumer")
logging.getLogger("gmqtt").setLevel(logging.WARNING)

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
                 mqtt5: bool = True, on_batch: Callable[[int], None] | None = None) -> None:
        self.ingestor = ingestor
        self.address = address
        self.client_id = client_id
        self.topic = f"{TOPIC_ROOT}/+/+/+"
        if share_group:
            self.topic = f"$share/{share_group}/{self.topic}"
        self.max_batch = max_batch
        self.linger = linger_s
        self.mqtt5 = mqtt5
        self.on_batch = on_batch
        self.connected = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._pending: list[tuple[Message, asyncio.Future[None]]] = []
        self._arrived: asyncio.Event | None = None

    # --- lifecycle (called from other threads) ----------------------------------------------------

    def start(self, *, wait_s: float = 10.0) -> None:
        self._thread = threading.Thread(target=self._run, name=f"{self.client_id}-mqtt", daemon=True)
        self._thread.start()
        if wait_s and not self.connected.wait(wait_s):
            log.warning("MQTT consumer %s not connected after %.0f s; still trying", self.client_id, wait_s)

    def stop(self) -> None:
        """Stop taking messages, store and acknowledge what is held, disconnect."""
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(timeout=30)

    # --- the worker's event loop -------------------------------------------------------------------

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._arrived = asyncio.Event()
        props = {"session_expiry_interval": SESSION_EXPIRY_S, "receive_maximum": 65535} if self.mqtt5 else {}
        client = MqttClient(self.client_id, clean_session=False, optimistic_acknowledgement=False, **props)
        client.set_config({"reconnect_retries": -1, "reconnect_delay": 1})
        if self.address.username:
            client.set_auth_credentials(self.address.username, self.address.password)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        batcher = asyncio.create_task(self._batch_loop())
        delay = 1.0
        while not self._stopping.is_set():
            try:
                await client.connect(self.address.host, self.address.port, ssl=self.address.tls, keepalive=60,
                                     version=MQTTv50 if self.mqtt5 else MQTTv311)
                break
            except Exception as exc:  # noqa: BLE001 - broker down or refusing: keep trying
                log.warning("MQTT broker %s:%s not reachable (%s); retrying in %.0f s", self.address.host,
                            self.address.port, exc, delay)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                delay = min(delay * 2, 10.0)
        await self._stopping.wait()
        self._arrived.set()
        await batcher
        with contextlib.suppress(Exception):
            await client.disconnect()

    def _on_connect(self, client: MqttClient, _flags: int, rc: int, _props: object) -> None:
        if rc != 0:
            log.error("MQTT connection refused by %s:%s (code %s)", self.address.host, self.address.port, rc)
            return
        client.subscribe(self.topic, qos=1)  # again after every reconnect
        self.connected.set()
        log.info("MQTT consumer %s connected to %s:%s, subscribed to %s", self.client_id, self.address.host,
                 self.address.port, self.topic)

    def _on_disconnect(self, _client: MqttClient, _packet: object, _exc: object = None) -> None:
        self.connected.clear()
        if self._stopping is not None and not self._stopping.is_set():
            log.warning("MQTT consumer %s disconnected; reconnecting", self.client_id)

    async def _on_message(self, _client: MqttClient, topic: str | bytes, payload: bytes, qos: int,
                          _props: object) -> int:
        if isinstance(topic, bytes):
            topic = topic.decode("utf-8", "replace")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((Message(topic=topic, payload=payload, received_ms=int(time.time() * 1000)), done))
        if self._arrived is not None:
            self._arrived.set()
        await done  # the PUBACK (return value 0: success) goes out when this returns
        return 0

    async def _batch_loop(self) -> None:
        assert self._arrived is not None and self._stopping is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                if self._stopping.is_set():
                    return
                await self._arrived.wait()
                self._arrived.clear()
                continue
            if len(self._pending) < self.max_batch and not self._stopping.is_set():
                await asyncio.sleep(self.linger)
            batch, self._pending = self._pending[:self.max_batch], self._pending[self.max_batch:]
            await loop.run_in_executor(None, self._store, [m for m, _ in batch])
            for _message, done in batch:
                if not done.done():
                    done.set_result(None)
            if self.on_batch is not None:
                self.on_batch(len(batch))

    def _store(self, messages: list[Message]) -> None:
        store_batch(self.ingestor, messages)
