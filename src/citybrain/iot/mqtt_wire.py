"""MQTT 3.1.1 and 5.0 packets, server side: decode what a device sends, encode what we answer.

Only what citybrain's device endpoint (``broker.py``) speaks: CONNECT/CONNACK, PUBLISH,
PUBACK, SUBSCRIBE/SUBACK, UNSUBSCRIBE/UNSUBACK, PINGREQ/PINGRESP, DISCONNECT. Anything that
breaks the specification raises ``MalformedPacket`` and the caller closes the connection.
Written from the OASIS specifications (MQTT 3.1.1, 2014; MQTT 5.0, 2019).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

# Packet types (high nibble of the first byte).
CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = 8, 9, 10, 11, 12, 13, 14, 15

MQTT311, MQTT5 = 4, 5

# CONNACK return codes, MQTT 3.1.1.
V3_ACCEPTED, V3_BAD_VERSION, V3_ID_REJECTED, V3_BAD_LOGIN, V3_NOT_AUTHORIZED = 0, 1, 2, 4, 5

# MQTT 5 reason codes used here.
RC_SUCCESS = 0x00
RC_DISCONNECT_WITH_WILL = 0x04
RC_NO_SUBSCRIBERS = 0x10
RC_NO_SUBSCRIPTION = 0x11
RC_UNSPECIFIED = 0x80
RC_MALFORMED = 0x81
RC_PROTOCOL_ERROR = 0x82
RC_UNSUPPORTED_VERSION = 0x84
RC_BAD_CLIENT_ID = 0x85
RC_BAD_LOGIN = 0x86
RC_NOT_AUTHORIZED = 0x87
RC_BAD_AUTH_METHOD = 0x8C
RC_KEEPALIVE_TIMEOUT = 0x8D
RC_TAKEN_OVER = 0x8E
RC_SHUTTING_DOWN = 0x8B
RC_TOPIC_NAME_INVALID = 0x90
RC_PACKET_TOO_LARGE = 0x95
RC_QOS_NOT_SUPPORTED = 0x9B

# MQTT 5 property identifiers → value type.
_BYTE, _INT2, _INT4, _VARINT, _STR, _BIN, _PAIR = range(7)
_PROPERTY_TYPES = {
    0x01: _BYTE, 0x02: _INT4, 0x03: _STR, 0x08: _STR, 0x09: _BIN, 0x0B: _VARINT, 0x11: _INT4, 0x12: _STR,
    0x13: _INT2, 0x15: _STR, 0x16: _BIN, 0x17: _BYTE, 0x18: _INT4, 0x19: _BYTE, 0x1A: _STR, 0x1C: _STR,
    0x1F: _STR, 0x21: _INT2, 0x22: _INT2, 0x23: _INT2, 0x24: _BYTE, 0x25: _BYTE, 0x26: _PAIR, 0x27: _INT4,
    0x28: _BYTE, 0x29: _BYTE, 0x2A: _BYTE,
}
PROP_SESSION_EXPIRY = 0x11
PROP_ASSIGNED_CLIENT_ID = 0x12
PROP_AUTH_METHOD = 0x15
PROP_RECEIVE_MAXIMUM = 0x21
PROP_TOPIC_ALIAS = 0x23
PROP_MAXIMUM_QOS = 0x24
PROP_RETAIN_AVAILABLE = 0x25
PROP_MAXIMUM_PACKET_SIZE = 0x27
PROP_WILDCARD_AVAILABLE = 0x28
PROP_SUBSCRIPTION_IDS_AVAILABLE = 0x29
PROP_SHARED_AVAILABLE = 0x2A
PROP_REASON_STRING = 0x1F


class MalformedPacket(ValueError):
    """The bytes break the MQTT specification; the connection is closed."""

    def __init__(self, message: str, reason: int = RC_MALFORMED) -> None:
        super().__init__(message)
        self.reason = reason


# --- framing -----------------------------------------------------------------------------------


def frame_header(buf: bytes | bytearray, start: int = 0) -> tuple[int, int, int] | None:
    """(first byte, remaining length, offset of the body) of the packet at ``start``, or None when the
    fixed header is not complete yet."""
    end = len(buf)
    if end - start < 2:
        return None
    length = shift = 0
    pos = start + 1
    while True:
        if pos >= end:
            return None
        byte = buf[pos]
        pos += 1
        length |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return buf[start], length, pos
        shift += 7
        if shift > 21:
            raise MalformedPacket("remaining length longer than four bytes")


def encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | 0x80 if value else byte)
        if not value:
            return bytes(out)


def packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + encode_varint(len(body)) + body


# --- reading a body ----------------------------------------------------------------------------


class _Reader:
    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def left(self) -> int:
        return len(self.buf) - self.pos

    def byte(self) -> int:
        if self.pos >= len(self.buf):
            raise MalformedPacket("packet ends early")
        self.pos += 1
        return self.buf[self.pos - 1]

    def int2(self) -> int:
        return (self.byte() << 8) | self.byte()

    def int4(self) -> int:
        if self.left() < 4:
            raise MalformedPacket("packet ends early")
        self.pos += 4
        return int(struct.unpack_from("!I", self.buf, self.pos - 4)[0])

    def varint(self) -> int:
        value = shift = 0
        while True:
            byte = self.byte()
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            if shift > 21:
                raise MalformedPacket("variable byte integer longer than four bytes")

    def binary(self) -> bytes:
        n = self.int2()
        if self.left() < n:
            raise MalformedPacket("packet ends early")
        self.pos += n
        return self.buf[self.pos - n:self.pos]

    def text(self) -> str:
        raw = self.binary()
        try:
            value = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedPacket("a string is not UTF-8") from None
        if "\x00" in value:
            raise MalformedPacket("a string contains U+0000")
        return value

    def rest(self) -> bytes:
        out, self.pos = self.buf[self.pos:], len(self.buf)
        return out

    def properties(self) -> dict[int, Any]:
        end = self.varint()
        end += self.pos
        if end > len(self.buf):
            raise MalformedPacket("properties run past the packet")
        props: dict[int, Any] = {}
        while self.pos < end:
            ident = self.varint()
            kind = _PROPERTY_TYPES.get(ident)
            if kind is None:
                raise MalformedPacket(f"unknown property 0x{ident:02x}")
            value: Any
            if kind == _BYTE:
                value = self.byte()
            elif kind == _INT2:
                value = self.int2()
            elif kind == _INT4:
                value = self.int4()
            elif kind == _VARINT:
                value = self.varint()
            elif kind == _STR:
                value = self.text()
            elif kind == _BIN:
                value = self.binary()
            else:
                value = (self.text(), self.text())
            if kind == _PAIR or ident == 0x0B:
                props.setdefault(ident, []).append(value)
            elif ident in props:
                raise MalformedPacket(f"property 0x{ident:02x} given twice", RC_PROTOCOL_ERROR)
            else:
                props[ident] = value
        if self.pos != end:
            raise MalformedPacket("properties run past their length")
        return props


# --- client → server ---------------------------------------------------------------------------


@dataclass(slots=True)
class Will:
    topic: str
    payload: bytes
    qos: int
    retain: bool


@dataclass(slots=True)
class Connect:
    level: int
    client_id: str
    keepalive: int
    clean: bool
    username: str | None
    password: bytes | None
    will: Will | None
    properties: dict[int, Any] = field(default_factory=dict)


class UnsupportedVersion(MalformedPacket):
    """A CONNECT of another protocol level: answered, then closed."""

    def __init__(self, level: int) -> None:
        super().__init__(f"protocol level {level} is not supported", RC_UNSUPPORTED_VERSION)
        self.level = level


def decode_connect(flags: int, body: bytes) -> Connect:
    if flags != 0:
        raise MalformedPacket("CONNECT flags must be 0")
    r = _Reader(body)
    name = r.binary()
    level = r.byte()
    if name != b"MQTT":
        raise UnsupportedVersion(level) if name == b"MQIsdp" else MalformedPacket("not an MQTT CONNECT")
    if level not in (MQTT311, MQTT5):
        raise UnsupportedVersion(level)
    cflags = r.byte()
    if cflags & 0x01:
        raise MalformedPacket("reserved CONNECT flag set")
    keepalive = r.int2()
    props = r.properties() if level == MQTT5 else {}
    client_id = r.text()
    will = None
    will_flag, will_qos, will_retain = bool(cflags & 0x04), (cflags >> 3) & 0x03, bool(cflags & 0x20)
    if will_flag:
        if level == MQTT5:
            r.properties()  # will delay, expiry, content type …: not used
        if will_qos > 2:
            raise MalformedPacket("will QoS 3")
        will = Will(r.text(), r.binary(), will_qos, will_retain)
    elif will_qos or will_retain:
        raise MalformedPacket("will QoS or retain without a will")
    username = r.text() if cflags & 0x80 else None
    if cflags & 0x40 and username is None and level == MQTT311:
        raise MalformedPacket("password without a user name")
    password = r.binary() if cflags & 0x40 else None
    if r.left():
        raise MalformedPacket("bytes after the CONNECT payload")
    return Connect(level, client_id, keepalive, bool(cflags & 0x02), username, password, will, props)


@dataclass(slots=True)
class Publish:
    topic: str
    payload: bytes
    qos: int
    packet_id: int
    retain: bool
    dup: bool


def decode_publish(flags: int, body: bytes, level: int) -> Publish:
    qos = (flags >> 1) & 0x03
    if qos == 3:
        raise MalformedPacket("PUBLISH QoS 3")
    r = _Reader(body)
    topic = r.text()
    packet_id = r.int2() if qos else 0
    if qos and not packet_id:
        raise MalformedPacket("packet id 0")
    if level == MQTT5:
        props = r.properties()
        if PROP_TOPIC_ALIAS in props:
            raise MalformedPacket("topic aliases are not accepted (Topic Alias Maximum is 0)", 0x94)
    if not topic or "+" in topic or "#" in topic:
        raise MalformedPacket("PUBLISH topic empty or with a wildcard", RC_TOPIC_NAME_INVALID)
    return Publish(topic, r.rest(), qos, packet_id, bool(flags & 0x01), bool(flags & 0x08))


def decode_subscribe(flags: int, body: bytes, level: int) -> tuple[int, list[tuple[str, int]]]:
    """(packet id, [(topic filter, requested QoS)])."""
    if flags != 0x02:
        raise MalformedPacket("SUBSCRIBE flags must be 2")
    r = _Reader(body)
    packet_id = r.int2()
    if level == MQTT5:
        r.properties()
    filters = []
    while r.left():
        topic_filter = r.text()
        options = r.byte()
        if (options & 0xFC if level == MQTT311 else options & 0xC0) or options & 0x03 == 3 \
                or (options >> 4) & 0x03 == 3:
            raise MalformedPacket("bad subscription options")
        if not topic_filter:
            raise MalformedPacket("empty topic filter")
        filters.append((topic_filter, options & 0x03))
    if not filters or not packet_id:
        raise MalformedPacket("SUBSCRIBE without a topic filter or packet id", RC_PROTOCOL_ERROR)
    return packet_id, filters


def decode_unsubscribe(flags: int, body: bytes, level: int) -> tuple[int, list[str]]:
    if flags != 0x02:
        raise MalformedPacket("UNSUBSCRIBE flags must be 2")
    r = _Reader(body)
    packet_id = r.int2()
    if level == MQTT5:
        r.properties()
    filters = []
    while r.left():
        filters.append(r.text())
    if not filters or not packet_id:
        raise MalformedPacket("UNSUBSCRIBE without a topic filter or packet id", RC_PROTOCOL_ERROR)
    return packet_id, filters


def decode_disconnect(body: bytes, level: int) -> int:
    """The reason code (0 for 3.1.1 and for an empty MQTT 5 DISCONNECT)."""
    if level == MQTT311 or not body:
        if body:
            raise MalformedPacket("DISCONNECT with a body")
        return RC_SUCCESS
    r = _Reader(body)
    reason = r.byte()
    if r.left():
        r.properties()
    return reason


def decode_puback(body: bytes) -> int:
    if len(body) < 2:
        raise MalformedPacket("PUBACK without a packet id")
    return (body[0] << 8) | body[1]


# --- server → client ---------------------------------------------------------------------------


def _properties(props: dict[int, Any]) -> bytes:
    out = bytearray()
    for ident, value in props.items():
        kind = _PROPERTY_TYPES[ident]
        out += encode_varint(ident)
        if kind == _BYTE:
            out.append(value)
        elif kind == _INT2:
            out += struct.pack("!H", value)
        elif kind == _INT4:
            out += struct.pack("!I", value)
        elif kind == _STR:
            raw = value.encode()
            out += struct.pack("!H", len(raw)) + raw
        else:
            raise ValueError(f"property 0x{ident:02x} is not encoded here")
    return encode_varint(len(out)) + bytes(out)


def connack(level: int, code: int, props: dict[int, Any] | None = None) -> bytes:
    """CONNACK (never with session present: sessions are not kept)."""
    if level == MQTT5:
        return packet(CONNACK << 4, bytes([0, code]) + _properties(props or {}))
    return bytes([CONNACK << 4, 2, 0, code])


def puback(packet_id: int, level: int, reason: int = RC_SUCCESS) -> bytes:
    if level == MQTT5 and reason != RC_SUCCESS:
        return bytes([PUBACK << 4, 3, packet_id >> 8, packet_id & 0xFF, reason])
    return bytes([PUBACK << 4, 2, packet_id >> 8, packet_id & 0xFF])


def suback(packet_id: int, level: int, codes: list[int]) -> bytes:
    props = b"\x00" if level == MQTT5 else b""
    return packet(SUBACK << 4, struct.pack("!H", packet_id) + props + bytes(codes))


def unsuback(packet_id: int, level: int, codes: list[int]) -> bytes:
    if level == MQTT5:
        return packet(UNSUBACK << 4, struct.pack("!H", packet_id) + b"\x00" + bytes(codes))
    return bytes([UNSUBACK << 4, 2, packet_id >> 8, packet_id & 0xFF])


PINGRESP_PACKET = bytes([PINGRESP << 4, 0])


def disconnect(reason: int, text: str | None = None) -> bytes:
    """An MQTT 5 server DISCONNECT (3.1.1 has none: the server just closes)."""
    return packet(DISCONNECT << 4, bytes([reason]) + _properties({PROP_REASON_STRING: text} if text else {}))


def publish(topic: str, payload: bytes, qos: int, packet_id: int, level: int) -> bytes:
    raw = topic.encode()
    body = struct.pack("!H", len(raw)) + raw
    if qos:
        body += struct.pack("!H", packet_id)
    if level == MQTT5:
        body += b"\x00"
    return packet((PUBLISH << 4) | (qos << 1), body + payload)
