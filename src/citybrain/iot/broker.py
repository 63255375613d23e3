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
from dataclasses import dataclass

from citybrain.config import Settings

from . import mqtt_wire as w
from .ingest import GATEWAY_SEGMENT, KINDS, TOPIC_ROOT, Ingestor, Message, store_batch
from .registry import GATEWAY_PRODUCT, DeviceDirectory

log = logging.getLogger("citybrain.iot.broker")

CONNECT_TIMEOUT_S = 10.0  # a socket that sends no CONNECT within this is closed
REFUSALS_PER_MINUTE = 10  # topic_mismatch dead letters per device and minute; the rest are counted
MAX_PENDING = 10_000  # messages held for ingestion before the server stops reading sockets
MAX_WRITE_BUFFER = 4 * 1024 * 1024  # a client that does not read its acks is closed
WATCH_EVERY_S = 0.25


class BrokerStartError(RuntimeError):
    """The embedded broker could not listen (port taken, bad address)."""


@dataclass(frozen=True)
class Grant:
    """What one authenticated device may do."""

    key: str
    publish: frozenset[str]  # exact topics
    command: str  # the one filter it may subscribe to


def device_grant(key: str, product: str) -> Grant:
    base = f"{TOPIC_ROOT}/{product}/{key}"
    publish = {f"{base}/{kind}" for kind in KINDS}
    if product == GATEWAY_PRODUCT:
        publish.add(f"{TOPIC_ROOT}/{GATEWAY_SEGMENT}/{key}/telemetry")
    return Grant(key, frozenset(publish), f"{base}/command")


# A batch entry: (connection, packet id or 0 for QoS 0, message, refused topic).
_Entry = tuple["_Connection | None", int, "Message | None", bool]

_NEW, _AUTH, _ONLINE, _GONE = range(4)


class _Connection(asyncio.Protocol):
    """One device socket: frames packets out of the byte stream and answers them."""

    def __init__(self, broker: EmbeddedBroker) -> None:
        self.broker = broker
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.state = _NEW
        self.level = w.MQTT311
        self.grant: Grant | None = None
        self.keepalive = 0
        self.will: w.Will | None = None
        self.last_rx = self.opened = time.monotonic()
        self.subscribed_qos: int | None = None
        self.client_max_packet = 0
        self.publish_will = True
        self._next_id = 0
        self.peer = ""

    # --- asyncio callbacks ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.broker.connections.add(self)
        if self.broker.paused:
            transport.pause_reading()

    def data_received(self, data: bytes) -> None:
        self.last_rx = time.monotonic()
        self.buf += data
        try:
            self._parse()
        except w.MalformedPacket as exc:
            self.abort(exc.reason, str(exc))
        except Exception:  # noqa: BLE001 - one bad connection never takes the server down
            log.exception("MQTT connection %s failed", self.peer)
            self.abort(w.RC_UNSPECIFIED, "internal error")

    def connection_lost(self, exc: Exception | None) -> None:
        online = self.state == _ONLINE
        self.state = _GONE
        self.broker.connections.discard(self)
        if self.grant is not None and self.broker.sessions.get(self.grant.key) is self:
            del self.broker.sessions[self.grant.key]
        if online and self.will is not None and self.publish_will and not self.broker.stopping:
            self.broker.ingest_will(self, self.will)

    # --- framing --------------------------------------------------------------------------------

    def _parse(self) -> None:
        buf, pos, limit = self.buf, 0, self.broker.max_packet
        try:
            while self.state in (_NEW, _ONLINE) and self.transport is not None and not self.transport.is_closing():
                if self.state == _NEW and pos < len(buf) and buf[pos] != w.CONNECT << 4:
                    raise w.MalformedPacket("the first packet is not a CONNECT", w.RC_PROTOCOL_ERROR)
                head = w.frame_header(buf, pos)
                if head is None:
                    break
                first, length, body_at = head
                if body_at - pos + length > limit:
                    raise w.MalformedPacket(f"a packet of {body_at - pos + length} bytes is over the "
                                            f"{limit}-byte limit", w.RC_PACKET_TOO_LARGE)
                end = body_at + length
                if len(buf) < end:
                    break
                body = bytes(buf[body_at:end])
                pos = end
                self._dispatch(first >> 4, first & 0x0F, body)
        finally:
            del buf[:pos]
        if self.state == _AUTH and len(buf) > 4 * limit:
            raise w.MalformedPacket("too much data before the CONNACK", w.RC_PROTOCOL_ERROR)

    def _dispatch(self, kind: int, flags: int, body: bytes) -> None:
        if self.state == _NEW:
            if kind != w.CONNECT:
                raise w.MalformedPacket("the first packet is not a CONNECT", w.RC_PROTOCOL_ERROR)
            try:
                connect = w.decode_connect(flags, body)
            except w.UnsupportedVersion as exc:
                # Answered in the client's own version where it is one we could speak.
                self.send(w.connack(w.MQTT5, w.RC_UNSUPPORTED_VERSION) if exc.level >= w.MQTT5
                          else w.connack(w.MQTT311, w.V3_BAD_VERSION))
                self.close()
                return
            self.level = connect.level
            self.state = _AUTH
            self.broker.spawn(self._login(connect))
            return
        if kind == w.PUBLISH:
            self._publish(w.decode_publish(flags, body, self.level))
        elif kind == w.PUBACK:
            w.decode_puback(body)  # a command delivered; commands are best effort, nothing to do
        elif kind == w.PINGREQ:
            self.send(w.PINGRESP_PACKET)
        elif kind == w.SUBSCRIBE:
            self._subscribe(*w.decode_subscribe(flags, body, self.level))
        elif kind == w.UNSUBSCRIBE:
            self._unsubscribe(*w.decode_unsubscribe(flags, body, self.level))
        elif kind == w.DISCONNECT:
            if flags:
                raise w.MalformedPacket("DISCONNECT flags must be 0")
            reason = w.decode_disconnect(body, self.level)
            self.publish_will = reason == w.RC_DISCONNECT_WITH_WILL
            self.close()
        else:
            raise w.MalformedPacket(f"packet type {kind} is not accepted here", w.RC_PROTOCOL_ERROR)

    # --- packets --------------------------------------------------------------------------------

    async def _login(self, connect: w.Connect) -> None:
        v5 = connect.level == w.MQTT5
        code, grant = await self._check_login(connect)
        if self.state != _AUTH:
            return  # the socket went away meanwhile
        if grant is None:
            log.info("MQTT connection refused", extra={"client": connect.username, "address": self.peer,
                                                       "code": code})
            self.send(w.connack(connect.level, code))
            self.close()
            return
        old = self.broker.sessions.get(grant.key)
        if old is not None and old is not self:
            old.publish_will = False
            old.abort(w.RC_TAKEN_OVER, "another connection of this device logged in")
        self.broker.sessions[grant.key] = self
        self.grant, self.keepalive, self.will = grant, connect.keepalive, connect.will
        self.state = _ONLINE
        props = {}
        if v5:
            self.client_max_packet = connect.properties.get(w.PROP_MAXIMUM_PACKET_SIZE, 0)
            props = {w.PROP_MAXIMUM_PACKET_SIZE: self.broker.max_packet, w.PROP_MAXIMUM_QOS: 1,
                     w.PROP_WILDCARD_AVAILABLE: 0, w.PROP_SUBSCRIPTION_IDS_AVAILABLE: 0, w.PROP_SHARED_AVAILABLE: 0}
            if connect.properties.get(w.PROP_SESSION_EXPIRY):
                props[w.PROP_SESSION_EXPIRY] = 0  # sessions are not kept
            if not connect.client_id:
                props[w.PROP_ASSIGNED_CLIENT_ID] = grant.key
        self.send(w.connack(connect.level, w.V3_ACCEPTED, props))
        self.last_rx = time.monotonic()
        if self.buf:
            self.data_received(b"")

    async def _check_login(self, connect: w.Connect) -> tuple[int, Grant | None]:
        v5 = connect.level == w.MQTT5
        if v5 and w.PROP_AUTH_METHOD in connect.properties:
            return w.RC_BAD_AUTH_METHOD, None
        if not connect.username:
            return (w.RC_NOT_AUTHORIZED if v5 else w.V3_NOT_AUTHORIZED), None
        try:
            secret = (connect.password or b"").decode("utf-8")
        except UnicodeDecodeError:
            return (w.RC_BAD_LOGIN if v5 else w.V3_BAD_LOGIN), None
        try:
            info = await asyncio.to_thread(self.broker.directory.authenticate, connect.username, secret)
        except Exception:  # noqa: BLE001 - registry unreachable: "server unavailable", the device retries
            log.exception("MQTT login of %s could not be checked", connect.username[:64])
            return (0x88 if v5 else 3), None
        if info is None:
            return (w.RC_BAD_LOGIN if v5 else w.V3_BAD_LOGIN), None
        if connect.client_id and connect.client_id != info.key:
            return (w.RC_NOT_AUTHORIZED if v5 else w.V3_NOT_AUTHORIZED), None
        if v5 and connect.will is not None and connect.will.qos == 2:
            return w.RC_QOS_NOT_SUPPORTED, None
        return 0, device_grant(info.key, info.product)

    def _publish(self, p: w.Publish) -> None:
        assert self.grant is not None
        if p.qos == 2:
            raise w.MalformedPacket("QoS 2 is not supported", w.RC_QOS_NOT_SUPPORTED)
        message = Message(p.topic, p.payload, int(time.time() * 1000), "mqtt", self.grant.key)
        if p.topic in self.grant.publish:
            self.broker.enqueue((self, p.packet_id, message, False))
        else:
            recorded = self.broker.may_record_refusal(self.grant.key)
            if recorded or p.qos:
                self.broker.enqueue((self, p.packet_id, message if recorded else None, True))

    def _subscribe(self, packet_id: int, filters: list[tuple[str, int]]) -> None:
        assert self.grant is not None
        refused = w.RC_NOT_AUTHORIZED if self.level == w.MQTT5 else 0x80
        codes = []
        for topic_filter, qos in filters:
            if topic_filter == self.grant.command:
                self.subscribed_qos = min(qos, 1)
                codes.append(self.subscribed_qos)
            else:
                codes.append(refused)
        self.send(w.suback(packet_id, self.level, codes))

    def _unsubscribe(self, packet_id: int, filters: list[str]) -> None:
        assert self.grant is not None
        codes = []
        for topic_filter in filters:
            mine = topic_filter == self.grant.command and self.subscribed_qos is not None
            codes.append(w.RC_SUCCESS if mine else w.RC_NO_SUBSCRIPTION)
            if mine:
                self.subscribed_qos = None
        self.send(w.unsuback(packet_id, self.level, codes))

    def command(self, payload: bytes, qos: int) -> bool:
        if self.state != _ONLINE or self.subscribed_qos is None or self.grant is None:
            return False
        qos = min(qos, self.subscribed_qos)
        if qos:
            self._next_id = self._next_id % 0xFFFF + 1
        data = w.publish(self.grant.command, payload, qos, self._next_id, self.level)
        if self.client_max_packet and len(data) > self.client_max_packet:
            return False
        self.send(data)
        return True

    # --- output and closing ---------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(data)
        if self.transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
            log.warning("MQTT client %s does not read; closing", self.peer)
            self.transport.abort()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def abort(self, reason: int, why: str) -> None:
        """Close for a protocol reason; MQTT 5 clients are told why with a DISCONNECT."""
        if self.transport is None or self.transport.is_closing():
            return
        log.log(logging.DEBUG if reason == w.RC_SHUTTING_DOWN else logging.INFO, "closing MQTT connection %s (%s): %s",
                self.peer, self.grant.key if self.grant else "-", why)
        if self.level == w.MQTT5 and self.state == _ONLINE:
            self.send(w.disconnect(reason, why[:200]))
        if self.state == _AUTH:
            self.state = _GONE
        self.transport.close()


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
        self.connections: set[_Connection] = set()
        self.sessions: dict[str, _Connection] = {}  # device key → its live connection
        self.paused = False
        self.stopping = False
        self.refusals_dropped = 0
        self._refusals: dict[str, list[float]] = {}  # key → [window start, count]
        self._pending: list[_Entry] = []
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
            server = await loop.create_server(lambda: _Connection(self), self.host, self.port)
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
                if conn.state == _NEW and now - conn.opened > CONNECT_TIMEOUT_S:
                    conn.abort(w.RC_PROTOCOL_ERROR, "no CONNECT")
                elif conn.state == _ONLINE and conn.keepalive and now - conn.last_rx > 1.5 * conn.keepalive:
                    conn.abort(w.RC_KEEPALIVE_TIMEOUT, f"silent for {now - conn.last_rx:.1f} s, keep-alive "
                               f"{conn.keepalive} s")

    # --- ingestion --------------------------------------------------------------------------------

    def enqueue(self, entry: _Entry) -> None:
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

    def ingest_will(self, conn: _Connection, will: w.Will) -> None:
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

    def _store(self, batch: list[_Entry]) -> bool:
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
    def _acknowledge(batch: list[_Entry]) -> None:
        out: dict[_Connection, bytearray] = {}
        for conn, packet_id, _message, refused in batch:
            if packet_id and conn is not None and conn.state == _ONLINE:
                reason = w.RC_NOT_AUTHORIZED if refused else w.RC_SUCCESS
                out.setdefault(conn, bytearray()).extend(w.puback(packet_id, conn.level, reason))
        for conn, data in out.items():
            conn.send(bytes(data))
