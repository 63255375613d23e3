"""One device's MQTT connection to the embedded endpoint (:mod:`citybrain.iot.broker`): framing,
login, what the device may publish and subscribe to, and its acknowledgements.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import mqtt_wire as w
from .ingest import GATEWAY_SEGMENT, KINDS, TOPIC_ROOT, Message
from .registry import GATEWAY_PRODUCT

if TYPE_CHECKING:
    from .broker import EmbeddedBroker

log = logging.getLogger("citybrain.iot.broker")

CONNECT_TIMEOUT_S = 10.0  # a socket that sends no CONNECT within this is closed
MAX_WRITE_BUFFER = 4 * 1024 * 1024  # a client that does not read its acks is closed


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
Entry = tuple["DeviceConnection | None", int, "Message | None", bool]

NEW, AUTH, ONLINE, GONE = range(4)  # connection states


class DeviceConnection(asyncio.Protocol):
    """One device socket: frames packets out of the byte stream and answers them."""

    def __init__(self, broker: EmbeddedBroker) -> None:
        self.broker = broker
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.state = NEW
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
        online = self.state == ONLINE
        self.state = GONE
        self.broker.connections.discard(self)
        if self.grant is not None and self.broker.sessions.get(self.grant.key) is self:
            del self.broker.sessions[self.grant.key]
        if online and self.will is not None and self.publish_will and not self.broker.stopping:
            self.broker.ingest_will(self, self.will)

    # --- framing --------------------------------------------------------------------------------

    def _parse(self) -> None:
        buf, pos, limit = self.buf, 0, self.broker.max_packet
        try:
            while self.state in (NEW, ONLINE) and self.transport is not None and not self.transport.is_closing():
                if self.state == NEW and pos < len(buf) and buf[pos] != w.CONNECT << 4:
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
        if self.state == AUTH and len(buf) > 4 * limit:
            raise w.MalformedPacket("too much data before the CONNACK", w.RC_PROTOCOL_ERROR)

    def _dispatch(self, kind: int, flags: int, body: bytes) -> None:
        if self.state == NEW:
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
            self.state = AUTH
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
        if self.state != AUTH:
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
        self.state = ONLINE
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
        if self.state != ONLINE or self.subscribed_qos is None or self.grant is None:
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
        if self.level == w.MQTT5 and self.state == ONLINE:
            self.send(w.disconnect(reason, why[:200]))
        if self.state == AUTH:
            self.state = GONE
        self.transport.close()
