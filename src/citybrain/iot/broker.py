"""citybrain's own device-facing MQTT endpoint, used when no external broker is set.

Devices connect, log in against the registry and publish; every PUBLISH goes straight into the
ingestion pipeline (``Ingestor.process``) and its **PUBACK is sent only after the batch holding
it has committed**, so a QoS 1 message the platform acknowledged is never lost. There is no
broker in between and no internal subscriber.

It is an asyncio server in its own thread with its own loop, listening on
``settings.mqtt_host`` / ``settings.mqtt_port`` (18830 by default, never 1883, so it does not
collide with a system Mosquitto). It speaks MQTT 3.1.1 and 5.0 (``mqtt_wire``), QoS 0 and 1.

Who may connect: a device, user name = device key, password = device secret, checked through
``DeviceDirectory.authenticate``; its client id must be empty or its key. Nobody anonymous. A
refused CONNECT changes nothing; an accepted one closes an older connection of the same device
(its will is not published: the device is back).

What a device may do: publish to ``citybrain/{product}/{key}/telemetry|event|status`` (a gateway
also to ``citybrain/gateway/{key}/telemetry``) and subscribe to ``citybrain/{product}/{key}/command``.
A publish elsewhere is not ingested; it is recorded as a dead letter (``topic_mismatch``, at most
``REFUSALS_PER_MINUTE`` per device, the rest only counted) and acknowledged (MQTT 5: reason 0x87).

Sessions are not kept (every connection starts clean), retained messages are not stored (the
retain flag is ignored), QoS 2 is refused (3.1.1: the connection is closed; 5.0: DISCONNECT
0x9B). Commands to devices (``publish_command``) are best effort: delivered when the device is
connected and subscribed, not queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time

from citybrain.config import Settings

from . import mqtt_wire as w
from .ingest import Ingestor, Message, store_batch
from .mqtt_session import CONNECT_TIMEOUT_S, NEW, ONLINE, DeviceConnection, Entry
from .registry import DeviceDirectory

log = logging.getLogger("citybrain.iot.broker")

REFUSALS_PER_MINUTE = 10  # topic_mismatch dead letters per device and minute; the rest are counted
MAX_PENDING = 10_000  # messages held for ingestion before the server stops reading sockets
WATCH_EVERY_S = 0.25


class BrokerStartError(RuntimeError):
    """The embedded broker could not listen (port taken, bad address)."""


class EmbeddedBroker:
    """``start()`` serves in a thread and returns once listening; ``stop()`` stores and acknowledges
    what it holds, then closes the connections."""

    def __init__(self, settings: Settings, directory: DeviceDirectory, ingestor: Ingestor, *,
                 max_batch: int = 2000, linger_s: float = 0.02) -> None:
        self.host = settings.mqtt_host
        self.port = settings.mqtt_port
        self.directory = directory
        self.ingestor = ingestor
        self.max_packet = settings.iot_max_payload_kb * 1024 + 1024
        self.max_batch = max_batch
        self.linger = linger_s
        self.connections: set[DeviceConnection] = set()
        self.sessions: dict[str, DeviceConnection] = {}  # device key → its live connection
        self.paused = False
        self.stopping = False
        self.refusals_dropped = 0
        self._refusals: dict[str, list[float]] = {}  # key → [window start, count]
        self._pending: list[Entry] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._give_up = threading.Event()
        self._error: BaseException | None = None
        self._stopped: asyncio.Event | None = None
        self._arrived: asyncio.Event | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    # --- lifecycle (other threads) ----------------------------------------------------------------

    def start(self, timeout: float = 15.0) -> EmbeddedBroker:
        if self._thread is not None:
            raise RuntimeError("the embedded broker is already started")
        self._thread = threading.Thread(target=self._run, name="citybrain-mqtt-broker", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise BrokerStartError(f"the embedded MQTT broker did not start within {timeout:.0f} s")
        if self._error is not None:
            self._thread.join(5)
            self._thread = None
            raise BrokerStartError(f"the embedded MQTT broker cannot listen on {self.host}:{self.port}: "
                                   f"{self._error} (is another broker or citybrain using the port? "
                                   f"set CITYBRAIN_MQTT_PORT)") from self._error
        log.info("embedded MQTT broker listening", extra={"host": self.host, "port": self.port})
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Store and acknowledge what is held (giving up after ``timeout`` if the database is down:
        then those messages stay unacknowledged), then close every connection."""
        if self._thread is None:
            return
        if self._loop is not None and self._stopped is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._give_up.set()
            self._thread.join(15)
        self._thread = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def publish_command(self, device_key: str, payload: bytes, qos: int = 1) -> bool:
        """Send ``payload`` to the device's command topic now. Best effort: True when the device
        was connected and subscribed and the packet was written; nothing is queued for later."""
        loop = self._loop
        if loop is None or loop.is_closed() or self.stopping:
            return False

        async def deliver() -> bool:
            conn = self.sessions.get(device_key)
            return conn is not None and conn.command(payload, max(0, min(qos, 1)))

        try:
            return asyncio.run_coroutine_threadsafe(deliver(), loop).result(timeout=5)
        except (RuntimeError, TimeoutError):
            return False

    # --- the server's loop ------------------------------------------------------------------------

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve())
        finally:
            loop.close()

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        self._arrived = asyncio.Event()
        try:
            server = await loop.create_server(lambda: DeviceConnection(self), self.host, self.port)
        except BaseException as exc:  # noqa: BLE001 - reported to start()'s caller
            self._error = exc
            self._ready.set()
            return
        batcher = asyncio.create_task(self._batch_loop())
        watchdog = asyncio.create_task(self._watch())
        self._ready.set()
        await self._stopped.wait()
        self.stopping = True
        server.close()
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.pause_reading()  # take no more; store what we hold
        self._arrived.set()
        await batcher
        watchdog.cancel()
        for conn in list(self.connections):
            conn.publish_will = False
            conn.abort(w.RC_SHUTTING_DOWN, "the server is shutting down")
        await asyncio.sleep(0.05)  # let the transports flush and close
        for task in list(self._tasks):
            task.cancel()

    def spawn(self, coro) -> None:  # noqa: ANN001
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watch(self) -> None:
        """Close sockets that never sent a CONNECT and devices silent for 1.5 × their keep-alive."""
        while True:
            await asyncio.sleep(WATCH_EVERY_S)
            if self.paused:
                continue  # we stopped reading them: their silence is ours
            now = time.monotonic()
            for conn in list(self.connections):
                if conn.state == NEW and now - conn.opened > CONNECT_TIMEOUT_S:
                    conn.abort(w.RC_PROTOCOL_ERROR, "no CONNECT")
                elif conn.state == ONLINE and conn.keepalive and now - conn.last_rx > 1.5 * conn.keepalive:
                    conn.abort(w.RC_KEEPALIVE_TIMEOUT, f"silent for {now - conn.last_rx:.1f} s, keep-alive "
                               f"{conn.keepalive} s")

    # --- ingestion --------------------------------------------------------------------------------

    def enqueue(self, entry: Entry) -> None:
        self._pending.append(entry)
        assert self._arrived is not None
        self._arrived.set()
        if len(self._pending) >= MAX_PENDING and not self.paused:
            self.paused = True
            for conn in self.connections:
                if conn.transport is not None:
                    conn.transport.pause_reading()

    def _resume(self) -> None:
        if self.paused and len(self._pending) < self.max_batch and not self.stopping:
            self.paused = False
            now = time.monotonic()
            for conn in self.connections:
                conn.last_rx = max(conn.last_rx, now)
                if conn.transport is not None and not conn.transport.is_closing():
                    conn.transport.resume_reading()

    def ingest_will(self, conn: DeviceConnection, will: w.Will) -> None:
        assert conn.grant is not None
        if will.topic in conn.grant.publish:
            self.enqueue((None, 0, Message(will.topic, will.payload, int(time.time() * 1000), "mqtt",
                                           conn.grant.key), False))
        else:
            log.info("will of %s on %s not ingested: not its topic", conn.grant.key, will.topic[:200])

    def may_record_refusal(self, key: str) -> bool:
        now = time.monotonic()
        window = self._refusals.get(key)
        if window is None or now - window[0] >= 60:
            if len(self._refusals) > 10_000:
                self._refusals.clear()
            window = self._refusals[key] = [now, 0]
        window[1] += 1
        if window[1] <= REFUSALS_PER_MINUTE:
            return True
        self.refusals_dropped += 1
        with self.ingestor.stats.lock:
            self.ingestor.stats.messages += 1
            self.ingestor.stats.refused["topic_mismatch"] += 1
        return False

    async def _batch_loop(self) -> None:
        assert self._arrived is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                if self.stopping:
                    return
                await self._arrived.wait()
                self._arrived.clear()
                continue
            if len(self._pending) < self.max_batch and not self.stopping:
                await asyncio.sleep(self.linger)
            batch, self._pending = self._pending[:self.max_batch], self._pending[self.max_batch:]
            self._resume()
            try:
                stored = await loop.run_in_executor(None, self._store, batch)
            except Exception:  # noqa: BLE001 - the batcher must survive; nothing of the batch is acknowledged
                log.exception("storing a batch of %d MQTT messages failed", len(batch))
                stored = False
            if not stored:
                return  # stop() gave up on an unreachable database
            self._acknowledge(batch)

    def _store(self, batch: list[Entry]) -> bool:
        accepted = [m for _c, _p, m, refused in batch if m is not None and not refused]
        if accepted and not store_batch(self.ingestor, accepted, give_up=self._give_up):
            return False
        for _conn, _pid, message, refused in batch:
            if refused and message is not None:
                try:
                    self.ingestor.refuse(message, "topic_mismatch", f"{message.auth_key!r} may not publish to "
                                         f"{message.topic[:200]!r}", message.auth_key)
                except Exception:  # noqa: BLE001 - the message is refused anyway; only its record is lost
                    log.exception("recording a refused MQTT publish failed")
        return True

    @staticmethod
    def _acknowledge(batch: list[Entry]) -> None:
        out: dict[DeviceConnection, bytearray] = {}
        for conn, packet_id, _message, refused in batch:
            if packet_id and conn is not None and conn.state == ONLINE:
                reason = w.RC_NOT_AUTHORIZED if refused else w.RC_SUCCESS
                out.setdefault(conn, bytearray()).extend(w.puback(packet_id, conn.level, reason))
        for conn, data in out.items():
            conn.send(bytes(data))
