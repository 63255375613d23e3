"""Ingestion: raw device messages in, validated readings stored, rules evaluated, alarms raised.

Every transport (MQTT, HTTP, NGSI-LD upsert) hands ``Message``s to ``Ingestor.process``, which
handles a whole batch in one database transaction:

1. route: parse the topic (``citybrain/{product}/{device}/telemetry|event|status``, or
   ``citybrain/gateway/{gateway}/telemetry`` for a gateway's batch), find the device in the
   ``DeviceDirectory`` and refuse unknown, disabled or mismatching devices;
2. check each reading against the product's thing model (``payload.validate_telemetry``);
3. store: readings into ``iot_telemetry`` (a (device, ts) already stored is skipped, so a
   redelivered message is stored once), the newest values merged into ``iot_device_state``,
   refused messages into ``iot_dead_letter`` with their reason (counted in /metrics);
4. evaluate the alarm rules on the accepted readings; alarm changes are written to
   ``iot_alarm`` and, for dispatching rules, to the outbox — in the same transaction.

Only after the commit does the transport acknowledge the messages (MQTT PUBACK, HTTP 200).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import func, insert, select
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from citybrain.core import clock

from . import alarm_store
from .models import AlarmRule, DeadLetter, DeviceEvent
from .payload import FastChecker
from .payload import parse_timestamp as payload_timestamp
from .registry import DeviceDirectory, DeviceInfo
from .rules import RuleEngine, Signal, SignalAction
from .rules_store import load_rules
from .storage import StateRow, Storage
from .thingmodel import PayloadError, Product

TOPIC_ROOT = "citybrain"
GATEWAY_SEGMENT = "gateway"
KINDS = ("telemetry", "event", "status")

log = logging.getLogger("citybrain.iot.ingest")


@dataclass(slots=True)
class Message:
    topic: str
    payload: bytes
    received_ms: int  # epoch ms when the transport received it
    source: str = "mqtt"  # mqtt | http | ngsi
    # The device the transport already authenticated (HTTP key+secret, embedded broker login);
    # None when the transport cannot know (an external broker): then the topic names the device.
    auth_key: str | None = None
    handle: Any = None  # the transport's acknowledgement handle (MQTT message id)


@dataclass(slots=True)
class Refusal:
    code: str  # a PayloadCode value or unknown_device, device_disabled, topic_mismatch, bad_topic …
    reason: str
    device_key: str | None = None
    index: int | None = None  # position of the reading inside a gateway batch or list message


@dataclass(slots=True)
class Outcome:
    """What happened to one message."""

    accepted: int = 0  # readings stored (or already stored: redelivery)
    refused: list[Refusal] = field(default_factory=list)


@dataclass(slots=True)
class _Reading:
    device: DeviceInfo
    ts: int
    values: dict[str, Any]
    received_ms: int
    message: int  # index of the message it came in


class IngestStats:
    """Counters since start and a window of publish→commit latencies (for /metrics and the bench)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages = 0
        self.readings = 0
        self.stored = 0
        self.refused: Counter[str] = Counter()
        self.batches = 0
        self.latencies: deque[float] = deque(maxlen=20_000)  # seconds, ts of the reading → commit

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            lat = sorted(self.latencies)
            return {"messages": self.messages, "readings": self.readings, "stored": self.stored,
                    "refused": dict(self.refused), "dead_letters": sum(self.refused.values()),
                    "batches": self.batches, "latency_p50_ms": _pct(lat, 0.50), "latency_p99_ms": _pct(lat, 0.99)}


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return round(values[min(len(values) - 1, int(q * len(values)))] * 1000, 1)


class Ingestor:
    """Turns batches of messages into stored readings, states, events, dead letters and alarms.

    ``process`` is thread-safe (batches run one at a time: the rule engine's memory is not) and
    returns one ``Outcome`` per message after the transaction committed; if the transaction fails
    it raises and nothing of the batch is stored, so the transport must not acknowledge it.
    """

    def __init__(self, session_factory: Callable[[], Session], directory: DeviceDirectory, *,
                 max_payload_bytes: int = 256 * 1024, max_future_s: int = 300, max_batch_readings: int = 1000,
                 dead_letters_per_batch: int = 200, on_commit: Callable[[], None] | None = None) -> None:
        self._sf = session_factory
        self.directory = directory
        self.max_payload = max_payload_bytes
        self.max_future = timedelta(seconds=max_future_s)
        self.max_list = max_batch_readings
        self.dead_letters_per_batch = dead_letters_per_batch
        self.on_commit = on_commit
        self.stats = IngestStats()
        self.engine = RuleEngine()
        self._rules_mark: tuple[Any, ...] | None = None
        self._rules_checked = 0.0
        self._lock = threading.Lock()
        self._storage: Storage | None = None
        self._checkers: dict[str, FastChecker] = {}

    # --- public -------------------------------------------------------------------------------

    def process(self, messages: Sequence[Message]) -> list[Outcome]:
        with self._lock:
            return self._process(messages)

    def refuse(self, message: Message, code: str, reason: str, device_key: str | None = None) -> None:
        """Record a message the transport refused before routing (e.g. bad HTTP credentials)."""
        refusal = Refusal(code, reason, device_key)
        db = self._sf()
        try:
            db.execute(insert(DeadLetter), [self._dead_letter(message, refusal, clock.now())])
            db.commit()
        finally:
            db.close()
        with self.stats.lock:
            self.stats.messages += 1
            self.stats.refused[code] += 1

    def tick(self, now: datetime | None = None) -> int:
        """Evaluate the time-based rules (no data for N minutes); returns alarm changes written."""
        now = now or clock.now()
        with self._lock:
            db = self._sf()
            try:
                self._reload_rules(db)
                changes = self._apply_signals(db, self.engine.on_tick(now))
                db.commit()
            except BaseException:
                db.rollback()
                raise
            finally:
                db.close()
        if changes and self.on_commit:
            self.on_commit()
        return changes

    # --- the batch ----------------------------------------------------------------------------

    def _process(self, messages: Sequence[Message]) -> list[Outcome]:
        now = clock.now()
        outcomes = [Outcome() for _ in messages]
        readings: list[_Reading] = []
        events: list[dict[str, Any]] = []
        statuses: dict[int, tuple[str, int]] = {}
        seen: dict[int, int] = {}
        dead: list[dict[str, Any]] = []
        for index, message in enumerate(messages):
            refusals = outcomes[index].refused
            try:
                self._route(index, message, readings, events, statuses, seen, refusals)
            except _Refused as exc:
                refusals.append(exc.refusal)
            for refusal in refusals:
                if len(dead) < self.dead_letters_per_batch:
                    dead.append(self._dead_letter(message, refusal, now))
        per_message = Counter(r.message for r in readings)
        db = self._sf()
        try:
            storage = self._storage
            if storage is None:
                storage = self._storage = Storage(db.get_bind().engine)
            conn = db.connection()
            self._reload_rules(db)
            stored = storage.insert_readings(conn, readings)
            storage.upsert_states(conn, self._states(readings, statuses, seen))
            if events:
                db.execute(insert(DeviceEvent), events)
            if dead:
                db.execute(insert(DeadLetter), dead)
            signals = []
            watched = self.engine.products
            for reading in sorted((r for r in readings if r.device.product in watched), key=lambda r: r.ts):
                signals.extend(self.engine.on_message(reading.device.key, reading.device.product, reading.values,
                                                      datetime.fromtimestamp(reading.ts / 1000, UTC)))
            changes = self._apply_signals(db, signals)
            db.commit()
        except BaseException:
            db.rollback()
            raise
        finally:
            db.close()
        committed = time.time()
        for index, count in per_message.items():
            outcomes[index].accepted = count
        with self.stats.lock:
            self.stats.batches += 1
            self.stats.messages += len(messages)
            self.stats.readings += len(readings)
            self.stats.stored += stored
            for outcome in outcomes:
                for refusal in outcome.refused:
                    self.stats.refused[refusal.code] += 1
            self.stats.latencies.extend(committed - r.ts / 1000 for r in readings[-2000:])
        if (changes or readings or statuses) and self.on_commit:
            self.on_commit()
        return outcomes

    def _route(self, index: int, message: Message, readings: list[_Reading], events: list[dict[str, Any]],
               statuses: dict[int, tuple[str, int]], seen: dict[int, int], refusals: list[Refusal]) -> None:
        parts = message.topic.split("/")
        if len(parts) != 4 or parts[0] != TOPIC_ROOT or parts[3] not in KINDS or not parts[1] or not parts[2]:
            raise _Refused("bad_topic", f"topic {message.topic[:200]!r} is not "
                           f"{TOPIC_ROOT}/{{product}}/{{device}}/{{{'|'.join(KINDS)}}}")
        product_id, key, kind = parts[1], parts[2], parts[3]
        gateway = product_id == GATEWAY_SEGMENT
        device = self._device(key, message)
        if not gateway and device.product != product_id:
            raise _Refused("topic_mismatch", f"device {key!r} is a {device.product}, not a {product_id}", key)
        if gateway and kind != "telemetry":
            raise _Refused("bad_topic", "a gateway publishes telemetry only", key)
        if len(message.payload) > self.max_payload:
            raise _Refused("too_large", f"{len(message.payload)} bytes is over the {self.max_payload}-byte limit", key)
        try:
            doc = orjson.loads(message.payload)
        except orjson.JSONDecodeError as exc:
            raise _Refused("malformed_json", str(exc)[:300], key) from None
        seen[device.id] = max(seen.get(device.id, 0), message.received_ms)
        received = datetime.fromtimestamp(message.received_ms / 1000, UTC)
        if kind == "status":
            status = doc.get("status") if isinstance(doc, dict) else None
            if status not in ("online", "offline"):
                raise _Refused("wrong_type", "a status message is {\"status\": \"online\"|\"offline\"}", key)
            statuses[device.id] = (status, message.received_ms)
            return
        product = self._product(device)
        if kind == "event":
            events.append(self._event(device, product, doc, received))
            return
        if gateway:
            self._gateway(index, device, doc, received, message, readings, refusals)
            return
        items = doc if isinstance(doc, list) else [doc]
        if isinstance(doc, list) and not 0 < len(doc) <= self.max_list:
            raise _Refused("too_large" if doc else "empty", f"a list message carries 1-{self.max_list} readings", key)
        for position, item in enumerate(items):
            try:
                readings.append(self._reading(device, product, item, received, message.received_ms, index))
            except PayloadError as exc:
                refusals.append(Refusal(exc.code.value, exc.message, key, position if isinstance(doc, list) else None))

    def _device(self, key: str, message: Message) -> DeviceInfo:
        if message.auth_key is not None and message.auth_key != key:
            raise _Refused("topic_mismatch", f"authenticated as {message.auth_key!r} but published for {key!r}",
                           message.auth_key)
        device = self.directory.lookup(key)
        if device is None:
            raise _Refused("unknown_device", f"no device {key[:64]!r} is registered", key[:64])
        if device.state != "active":
            raise _Refused("device_disabled", f"device {key!r} is {device.state}", key)
        return device

    def _product(self, device: DeviceInfo) -> Product:
        product = self.directory.products.get(device.product)
        if product is None:
            raise _Refused("unknown_product", f"product {device.product!r} has no thing model", device.key)
        return product

    def _reading(self, device: DeviceInfo, product: Product, item: Any, received: datetime,
                 received_ms: int, index: int) -> _Reading:
        checker = self._checkers.get(product.identifier)
        if checker is None or checker.product is not product:
            checker = self._checkers[product.identifier] = FastChecker(product, max_future=self.max_future)
        ts, values = checker.check(item, received_ms)
        return _Reading(device, ts, values, received_ms, index)

    def _gateway(self, index: int, gateway: DeviceInfo, doc: Any, received: datetime, message: Message,
                 readings: list[_Reading], refusals: list[Refusal]) -> None:
        items = doc.get("devices") if isinstance(doc, dict) else None
        if not isinstance(items, list) or not items:
            raise _Refused("not_an_object", "a gateway message is {\"devices\": [{\"device\": key, \"ts\": …, "
                           "\"values\": {…}}, …]}", gateway.key)
        if len(items) > self.max_list * 10:
            raise _Refused("too_large", f"a gateway message carries at most {self.max_list * 10} readings",
                           gateway.key)
        known = self.directory.known()
        for position, item in enumerate(items):
            # The parsed entry is ours: take the device key out, the rest is the reading.
            child_key = item.pop("device", None) if type(item) is dict else None
            if not isinstance(child_key, str):
                refusals.append(Refusal("not_an_object", "each entry needs a \"device\" key", gateway.key, position))
                continue
            child = known.get(child_key) or self.directory.lookup(child_key)
            if child is None:
                refusals.append(Refusal("unknown_device", f"no device {child_key[:64]!r}", child_key[:64], position))
                continue
            if child.gateway_key != gateway.key:
                refusals.append(Refusal("topic_mismatch", f"{child_key!r} is not behind gateway {gateway.key!r}",
                                        child_key, position))
                continue
            if child.state != "active":
                refusals.append(Refusal("device_disabled", f"device {child_key!r} is {child.state}", child_key,
                                        position))
                continue
            try:
                product = self._product(child)
                readings.append(self._reading(child, product, item, received, message.received_ms, index))
            except PayloadError as exc:
                refusals.append(Refusal(exc.code.value, exc.message, child_key, position))
            except _Refused as exc:
                refusals.append(exc.refusal)

    def _event(self, device: DeviceInfo, product: Product, doc: Any, received: datetime) -> dict[str, Any]:
        if not isinstance(doc, dict) or not isinstance(doc.get("event"), str):
            raise _Refused("not_an_object", "an event message is {\"event\": id, \"ts\": …, \"params\": {…}}",
                           device.key)
        spec = next((e for e in product.events if e.identifier == doc["event"]), None)
        if spec is None:
            raise _Refused("unknown_property", f"{product.identifier} has no event {doc['event'][:64]!r}", device.key)
        raw = doc.get("params") or {}
        if not isinstance(raw, dict):
            raise _Refused("not_an_object", "'params' must be an object", device.key)
        by_id = {p.identifier: p for p in spec.params}
        params = {}
        try:
            for name, value in raw.items():
                if name not in by_id:
                    raise PayloadError("unknown_property", f"event {spec.identifier} has no param {name!r}")
                params[name] = by_id[name].check(value)
        except PayloadError as exc:
            raise _Refused(exc.code.value, exc.message, device.key) from None
        at = _event_ts(doc.get("ts"), received, self.max_future, device.key)
        return {"device_id": device.id, "ts": at, "event": spec.identifier, "level": spec.level.value,
                "params": params}

    @staticmethod
    def _states(readings: list[_Reading], statuses: dict[int, tuple[str, int]],
                seen: dict[int, int]) -> list[StateRow]:
        rows: dict[int, StateRow] = {}
        for reading in readings:
            device_id = reading.device.id
            row = rows.get(device_id)
            if row is None:
                rows[device_id] = StateRow(device_id, reading.ts, reading.values, reading.received_ms)
            elif reading.ts >= row.ts:
                row.values = row.values | reading.values
                row.ts = reading.ts
            else:  # an older reading only fills in what the newer ones lack
                row.values = reading.values | row.values
        for device_id, last in seen.items():
            row = rows.get(device_id)
            if row is None:
                rows[device_id] = StateRow(device_id, 0, {}, last)
            else:
                row.last_seen = max(row.last_seen, last)
        for device_id, (status, _at) in statuses.items():
            rows[device_id].status = status
        return [rows[k] for k in sorted(rows)]

    def _dead_letter(self, message: Message, refusal: Refusal, now: datetime) -> dict[str, Any]:
        preview = bytes(message.payload[:4096]).decode("utf-8", errors="replace")
        reason = refusal.reason if refusal.index is None else f"[{refusal.index}] {refusal.reason}"
        return {"received_at": now, "source": message.source, "topic": _text(message.topic, 300),
                "device_key": _text(refusal.device_key, 64) or None, "code": _text(refusal.code, 40),
                "reason": _text(reason, 500), "size": len(message.payload), "payload": _text(preview, 4096)}

    # --- rules and alarms -----------------------------------------------------------------------

    def _reload_rules(self, db: Session) -> None:
        now = time.monotonic()
        if now - self._rules_checked < 5.0:
            return
        self._rules_checked = now
        mark = tuple(db.execute(select(func.count(AlarmRule.id), func.max(AlarmRule.updated_at))).one())
        if mark == self._rules_mark:
            return
        self._rules_mark = mark
        self.engine.replace_rules(load_rules(db))
        since = clock.now()
        for device in self.directory.all():
            if device.state == "active":
                self.engine.track(device.key, device.product, since)

    def _apply_signals(self, db: Session, signals: list[Signal]) -> int:
        changes = 0
        for signal in signals:
            device = self.directory.lookup(signal.device)
            if signal.action is SignalAction.RAISE:
                changes += alarm_store.raise_alarm(db, signal, lon=device.lon if device else None,
                                                   lat=device.lat if device else None)
            else:
                changes += alarm_store.clear_alarm_by_rule(db, signal)
        return changes


def _text(value: str | None, limit: int) -> str:
    """Untrusted text as the database can store it: no NUL characters, bounded length."""
    return (value or "").replace("\x00", "\ufffd")[:limit]


class _Refused(Exception):
    def __init__(self, code: str, reason: str, device_key: str | None = None) -> None:
        super().__init__(reason)
        self.refusal = Refusal(code, reason, device_key)


def _event_ts(raw: Any, received: datetime, max_future: timedelta, key: str) -> int:
    if raw is None:
        return int(received.timestamp() * 1000)
    try:
        ts = payload_timestamp(raw)
    except PayloadError as exc:
        raise _Refused(exc.code.value, exc.message, key) from None
    if ts > received + max_future:
        raise _Refused("future_timestamp", f"ts {ts.isoformat()} is in the future", key)
    return int(ts.timestamp() * 1000)


def store_batch(ingestor: Ingestor, messages: list[Message], *, give_up: threading.Event | None = None) -> bool:
    """Store a batch for a transport that acknowledges after commit (MQTT consumer, embedded broker).

    Retries while the database is unreachable (with back-off, until ``give_up`` is set: then
    returns False and nothing may be acknowledged). A batch that fails for another reason (a
    message no check foresaw) is split, and a single message that still cannot be stored goes to
    the dead-letter store: one poisoned message never stalls ingestion. True once all is stored.
    """
    delay = 0.5
    while True:
        try:
            ingestor.process(messages)
            return True
        except (OperationalError, InterfaceError):
            log.exception("database unavailable storing %d messages; retrying in %.1f s", len(messages), delay)
        except Exception as exc:  # noqa: BLE001 - isolate the message that fails
            if len(messages) > 1:
                log.warning("a batch of %d messages failed (%s); storing them one by one", len(messages), exc)
                half = len(messages) // 2
                return (store_batch(ingestor, messages[:half], give_up=give_up)
                        and store_batch(ingestor, messages[half:], give_up=give_up))
            try:
                ingestor.refuse(messages[0], "storage_error", f"{type(exc).__name__}: {exc}"[:400])
                log.error("message on %s could not be stored: %s", messages[0].topic[:200], exc)
                return True
            except (OperationalError, InterfaceError):
                log.exception("database unavailable; retrying in %.1f s", delay)
        if give_up is not None and give_up.wait(delay):
            return False
        if give_up is None:
            time.sleep(delay)
        delay = min(delay * 2, 10.0)
