"""The embedded MQTT broker (amqtt 0.12) that devices connect to when no external broker is set.

It runs in its own thread with its own asyncio loop and listens on ``settings.mqtt_host`` /
``settings.mqtt_port`` (18830 by default, never 1883, so it does not collide with a system
Mosquitto). amqtt speaks MQTT 3.1.1 only: an MQTT 5 CONNECT is answered "unacceptable protocol
version".

Who may connect:

* a device: user name = device key, password = device secret, checked against the registry
  through ``DeviceDirectory.authenticate`` (unknown, disabled, retired or wrong secret: refused);
  its MQTT client id must be empty or its key, so one device can never resume another's session;
* the platform's own ingestion client: a random per-process account (``ingest_credentials``)
  that may subscribe to ``citybrain/#`` and publish commands; its client ids start with
  ``citybrain-ingest-``, which no device may use (as key or client id);
* nobody anonymous.

What a device may do (checked on every PUBLISH and SUBSCRIBE; refused publishes are dropped):
publish to ``citybrain/{product}/{key}/telemetry|event|status`` (a gateway also to
``citybrain/gateway/{key}/telemetry``, which that is for product ``gateway``), subscribe to
``citybrain/{product}/{key}/command``.

amqtt authenticates a CONNECT only after it has already deleted or taken over the session of
the same client id; ``_CheckingBroker`` authenticates first, so a refused connection changes
nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

from amqtt.adapters import ReaderAdapter, StreamReaderAdapter, StreamWriterAdapter
from amqtt.broker import Broker
from amqtt.contexts import Action, BrokerConfig, ListenerConfig
from amqtt.errors import AMQTTError, MQTTError, NoDataError
from amqtt.mqtt.connack import BAD_USERNAME_PASSWORD, NOT_AUTHORIZED, ConnackPacket
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session
from amqtt.utils import gen_client_id

from citybrain.config import Settings

from .ingest import GATEWAY_SEGMENT, KINDS, TOPIC_ROOT
from .registry import GATEWAY_PRODUCT, DeviceDirectory

log = logging.getLogger("citybrain.iot.broker")

_GRANT = "citybrain.grant"  # key in amqtt's Session.attributes
INGEST_USER_PREFIX = "citybrain-ingest-"
# amqtt gives a client that sent an empty client id "amqtt/<random>"; no device key has a "/".
_GENERATED_ID = "amqtt/"


class BrokerStartError(RuntimeError):
    """The embedded broker could not listen (port taken, bad address)."""


@dataclass(frozen=True)
class Grant:
    """What one authenticated connection may do."""

    who: str
    publish: frozenset[str] = frozenset()  # exact topics
    subscribe: frozenset[str] = frozenset()  # exact filters
    ingest: bool = False


def _device_grant(key: str, product: str) -> Grant:
    base = f"{TOPIC_ROOT}/{product}/{key}"
    publish = {f"{base}/{kind}" for kind in KINDS}
    if product == GATEWAY_PRODUCT:
        publish.add(f"{TOPIC_ROOT}/{GATEWAY_SEGMENT}/{key}/telemetry")
    return Grant(who=key, publish=frozenset(publish), subscribe=frozenset({f"{base}/command"}))


def _ingest_may_publish(topic: str) -> bool:
    parts = topic.split("/")
    return len(parts) == 4 and parts[0] == TOPIC_ROOT and parts[3] == "command" and all(parts)


def _ingest_may_subscribe(topic_filter: str) -> bool:
    return topic_filter == f"{TOPIC_ROOT}/#" or topic_filter.startswith(f"{TOPIC_ROOT}/")


class _Gate:
    """Authentication and topic checks shared by the two amqtt plugins of one broker."""

    def __init__(self, directory: DeviceDirectory, ingest_user: str, ingest_password: str) -> None:
        self.directory = directory
        self.ingest_user = ingest_user
        self.ingest_password = ingest_password

    def check(self, username: str | None, password: str | None, client_id: str | None) -> tuple[Grant | None, int]:
        """(grant, 0) or (None, CONNACK return code)."""
        if not username:
            return None, NOT_AUTHORIZED
        password = password or ""
        if username == self.ingest_user:
            if not secrets.compare_digest(password.encode(), self.ingest_password.encode()):
                return None, BAD_USERNAME_PASSWORD
            return Grant(who=username, ingest=True), 0
        if username.startswith(INGEST_USER_PREFIX) or (client_id or "").startswith(INGEST_USER_PREFIX):
            return None, NOT_AUTHORIZED  # never a device: it could take over the ingestion session
        info = self.directory.authenticate(username, password)
        if info is None:
            return None, BAD_USERNAME_PASSWORD
        if client_id and client_id != info.key and not client_id.startswith(_GENERATED_ID):
            return None, NOT_AUTHORIZED
        return _device_grant(info.key, info.product), 0

    @staticmethod
    def allowed(session: Session | None, topic: str | None, action: Action | None) -> bool:
        grant: Grant | None = session.attributes.get(_GRANT) if session is not None else None
        if grant is None or not topic:
            return False
        if action == Action.RECEIVE:
            return True  # what a session receives was checked when it subscribed
        if action == Action.PUBLISH:
            return _ingest_may_publish(topic) if grant.ingest else topic in grant.publish
        if action == Action.SUBSCRIBE:
            return _ingest_may_subscribe(topic) if grant.ingest else topic in grant.subscribe
        return False


class RegistryAuthPlugin(BaseAuthPlugin):
    """amqtt auth plugin: devices against the registry, plus the ingestion account."""

    @dataclass
    class Config:
        gate: Any = None

    async def authenticate(self, *, session: Session) -> bool:
        gate: _Gate = self.config.gate
        grant, _code = await asyncio.to_thread(gate.check, session.username, session.password, session.client_id)
        if grant is None:
            session.attributes.pop(_GRANT, None)
            return False
        session.attributes[_GRANT] = grant
        return True


class TopicGrantPlugin(BaseTopicPlugin):
    """amqtt topic plugin: a connection publishes and subscribes only where its grant says."""

    @dataclass
    class Config:
        gate: Any = field(default=None)

    async def topic_filtering(self, *, session: Session | None = None, topic: str | None = None,
                              action: Action | None = None) -> bool:
        allowed = _Gate.allowed(session, topic, action)
        if not allowed and action != Action.RECEIVE:
            log.info("mqtt %s refused", action, extra={"client": session.username if session else None,
                                                        "topic": topic})
        return allowed


class _PrefixedReader(ReaderAdapter):
    """A stream reader with bytes already read put back in front."""

    def __init__(self, prefix: bytes, inner: ReaderAdapter) -> None:
        self._prefix = prefix
        self._inner = inner

    async def read(self, n: int = -1) -> bytes:
        if not self._prefix:
            return await self._inner.read(n)
        if n == -1:
            head, self._prefix = self._prefix, b""
            return head + await self._inner.read(-1)
        head, self._prefix = self._prefix[:n], self._prefix[n:]
        return head + (await self._inner.read(n - len(head)) if n > len(head) else b"")

    def feed_eof(self) -> None:
        self._inner.feed_eof()


# An MQTT 5 CONNACK: no session present, reason 0x84 "unsupported protocol version", no properties.
_MQTT5_UNSUPPORTED = bytes([0x20, 0x03, 0x00, 0x84, 0x00])


class _CheckingBroker(Broker):
    """amqtt's broker, with the CONNECT authenticated before any session is deleted or taken over,
    and MQTT 5 clients told at once that their version is not supported (amqtt would wait for more
    bytes and leave them hanging until their timeout).

    The body of ``_initialize_client_session`` after the authentication is amqtt 0.12.1's.
    """

    gate: _Gate

    async def stream_connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                               listener_name: str) -> None:
        try:
            head = await reader.readexactly(2)
            while head[-1] & 0x80 and len(head) < 5:  # remaining-length varint
                head += await reader.readexactly(1)
            head += await reader.readexactly(7)  # protocol name (2 + 4 bytes) and level
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        if head[0] >> 4 == 1 and head[-7:-1] == b"\x00\x04MQTT" and head[-1] == 5:
            writer.write(_MQTT5_UNSUPPORTED)
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            writer.close()
            return
        await self._client_connected(listener_name, _PrefixedReader(head, StreamReaderAdapter(reader)),
                                     StreamWriterAdapter(writer))

    async def _initialize_client_session(self, reader: Any, writer: Any, remote_address: str,
                                         remote_port: int) -> tuple[BrokerProtocolHandler, Session]:
        try:
            handler, client_session = await BrokerProtocolHandler.init_from_connect(
                reader, writer, self.plugins_manager)
        except (AMQTTError, NoDataError) as exc:
            raise AMQTTError(exc) from exc
        except MQTTError as exc:
            await writer.close()
            raise MQTTError(exc) from exc
        grant, code = await asyncio.to_thread(self.gate.check, client_session.username, client_session.password,
                                              client_session.client_id)
        if grant is None:
            log.info("mqtt connection refused", extra={"client": client_session.username,
                                                        "address": remote_address, "code": code})
            await ConnackPacket.build(0, code).to_stream(writer)
            await writer.close()
            raise AMQTTError(f"connection from {remote_address}:{remote_port} refused (code {code})")

        if client_session.clean_session:
            if client_session.client_id:
                await self._delete_session(client_session.client_id)
            else:
                client_session.client_id = gen_client_id()
            client_session.parent = 0
        elif client_session.client_id in self._sessions:
            existing, _ = self._sessions[client_session.client_id]
            for name in ("will_flag", "will_message", "will_topic", "will_qos", "keep_alive", "username",
                         "password"):
                setattr(existing, name, getattr(client_session, name))
            client_session = existing
            client_session.parent = 1
        else:
            client_session.parent = 0
        delay = self.config.get("timeout-disconnect-delay", 0)
        if client_session.keep_alive > 0 and isinstance(delay, int):
            client_session.keep_alive += delay
        return handler, client_session


class EmbeddedBroker:
    """``start()`` runs the broker in a thread and returns once it listens; ``stop()`` ends it."""

    def __init__(self, settings: Settings, directory: DeviceDirectory) -> None:
        self.host = settings.mqtt_host
        self.port = settings.mqtt_port
        self._gate = _Gate(directory, INGEST_USER_PREFIX + secrets.token_hex(6), secrets.token_urlsafe(24))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._broker: _CheckingBroker | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stopped: asyncio.Event | None = None

    @property
    def ingest_credentials(self) -> tuple[str, str]:
        """(username, password) of the platform's own ingestion client."""
        return self._gate.ingest_user, self._gate.ingest_password

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def _config(self) -> BrokerConfig:
        return BrokerConfig(
            listeners={"default": ListenerConfig(bind=f"{self.host}:{self.port}")},
            plugins={f"{__name__}.RegistryAuthPlugin": {"gate": self._gate},
                     f"{__name__}.TopicGrantPlugin": {"gate": self._gate}},
        )

    def start(self, timeout: float = 15.0) -> EmbeddedBroker:
        if self._thread is not None:
            raise RuntimeError("the embedded broker is already started")
        if logging.getLogger("amqtt").level == logging.NOTSET:
            logging.getLogger("amqtt").setLevel(logging.WARNING)  # one INFO line per connection otherwise
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

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve())
        finally:
            loop.close()

    async def _serve(self) -> None:
        self._stopped = asyncio.Event()
        try:
            self._broker = _CheckingBroker(self._config(), loop=asyncio.get_running_loop())
            self._broker.gate = self._gate
            await self._broker.start()
        except BaseException as exc:  # noqa: BLE001 - reported to start()'s caller
            self._error = exc.__cause__ or exc
            self._ready.set()
            return
        self._ready.set()
        await self._stopped.wait()
        try:
            await self._broker.shutdown()
        except Exception:  # noqa: BLE001
            log.exception("embedded MQTT broker shutdown failed")

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread is None:
            return
        if self._loop is not None and self._stopped is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(timeout)
        self._thread = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
