"""Live device state and alarm changes for the staff pages (server-sent events, ``/iot/stream``).

Ingestion runs in other threads or processes and writes straight to the database, so the pages
learn of changes by polling it — once for everybody: one ``Watcher`` thread per app polls every
``INTERVAL_S`` while at least one page is open, and fans the changes out through the event
command's ``Broadcaster`` (one bounded queue per open stream; a slow reader is dropped and its
browser reconnects). What a poll costs does not grow with the number of viewers:

- device states whose ``last_seen`` moved past the last mark (minus a little slack for
  writers whose transactions commit late), plus devices that went quiet past their product's
  online timeout (an offline transition has no row of its own);
- the open alarms (active, or cleared but unacknowledged; few by construction) compared with
  the previous poll: new, changed, or gone (gone = cleared and acknowledged).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from citybrain.core import clock
from citybrain.core.actor import Actor
from citybrain.events import live as events_live

from . import registry
from .alarms import AlarmStatus
from .models import AlarmRecord, Device, DeviceState
from .thingmodel import Product

log = logging.getLogger("citybrain.iot.live")

INTERVAL_S = 2.0
SLACK_MS = 10_000  # a state written with an older last_seen but committed after our last poll
PRODUCTS_TTL_S = 60.0
PING_SECONDS = 15.0
OPEN_ALARMS = (AlarmStatus.ACTIVE_UNACK, AlarmStatus.ACTIVE_ACK, AlarmStatus.CLEARED_UNACK)


@dataclass
class _Seen:
    key: str
    department_id: int
    product: str
    last_seen: int
    online: bool


def _now_ms() -> int:
    return int(clock.now().timestamp() * 1000)


class Watcher:
    """Polls device states and open alarms; ``poll`` returns the changes since the last call."""

    def __init__(self, sessionmaker: Callable[[], Session], *, interval_s: float = INTERVAL_S) -> None:
        self.sessionmaker = sessionmaker
        self.interval_s = interval_s
        self.broadcaster = events_live.Broadcaster()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._reset()

    def _reset(self) -> None:
        self._devices: dict[int, _Seen] = {}
        self._alarms: dict[str, tuple[str, int]] = {}  # open alarm id -> (status, count)
        self._mark: int | None = None
        self._products: dict[str, Product] = {}
        self._products_at = -1e9

    # --- polling ---

    def _timeouts(self, db: Session) -> dict[str, Product]:
        if time.monotonic() - self._products_at > PRODUCTS_TTL_S:
            self._products, self._products_at = registry.products(db), time.monotonic()
        return self._products

    def _online(self, product: str, last_seen: int, now_ms: int) -> bool:
        found = self._products.get(product)
        return found is not None and now_ms - last_seen <= found.online_timeout_s * 1000

    def poll(self, db: Session, *, now_ms: int | None = None) -> list[dict[str, Any]]:
        """Changes since the previous poll. The first poll only takes stock and returns nothing."""
        now_ms = _now_ms() if now_ms is None else now_ms
        self._timeouts(db)
        first = self._mark is None
        changes = self._device_changes(db, now_ms, first) + self._alarm_changes(db, first)
        return [] if first else changes

    def _device_changes(self, db: Session, now_ms: int, first: bool) -> list[dict[str, Any]]:
        query = (select(DeviceState.device_id, Device.key, Device.department_id, Device.product, DeviceState.last_seen,
                        DeviceState.ts, DeviceState.data, DeviceState.status)
                 .join(Device, Device.id == DeviceState.device_id))
        if self._mark is not None:
            query = query.where(DeviceState.last_seen > self._mark - SLACK_MS)
        out: list[dict[str, Any]] = []
        mark = self._mark or 0
        for device_id, key, dept, product, last_seen, ts, data, status in db.execute(query):
            mark = max(mark, last_seen)
            seen = self._devices.get(device_id)
            if seen is not None and seen.last_seen >= last_seen:
                continue
            online = self._online(product, last_seen, now_ms)
            self._devices[device_id] = _Seen(key, dept, product, last_seen, online)
            out.append({"type": "device", "key": key, "department_id": dept, "product": product,
                        "last_seen": last_seen, "ts": ts, "online": online, "status": status,
                        "data": data or {}})
        self._mark = max(mark, now_ms - SLACK_MS) if first else mark
        for seen in self._devices.values():
            if seen.online and not self._online(seen.product, seen.last_seen, now_ms):
                seen.online = False
                out.append({"type": "device", "key": seen.key, "department_id": seen.department_id,
                            "product": seen.product, "last_seen": seen.last_seen, "online": False})
        return out

    def _alarm_changes(self, db: Session, first: bool) -> list[dict[str, Any]]:
        query = (select(AlarmRecord, Device.department_id)
                 .outerjoin(Device, Device.key == AlarmRecord.device_key)
                 .where(AlarmRecord.status.in_([str(s) for s in OPEN_ALARMS])))
        rows = db.execute(query).all()
        current = {a.id: (a.status, a.count) for a, _d in rows}
        out = [_alarm_message(a, dept) for a, dept in rows if self._alarms.get(a.id) != current[a.id]]
        gone = [alarm_id for alarm_id in self._alarms if alarm_id not in current]
        if gone:
            found = db.execute(select(AlarmRecord, Device.department_id)
                               .outerjoin(Device, Device.key == AlarmRecord.device_key)
                               .where(AlarmRecord.id.in_(gone))).all()
            out += [_alarm_message(a, dept) for a, dept in found]
        self._alarms = current
        return [] if first else out

    # --- the shared thread ---

    def subscribe(self) -> events_live.Subscriber:
        sub = self.broadcaster.subscribe()
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._reset()
                self._thread = threading.Thread(target=self._run, name="citybrain-iot-live", daemon=True)
                self._thread.start()
        return sub

    def unsubscribe(self, sub: events_live.Subscriber) -> None:
        self.broadcaster.unsubscribe(sub)

    def _run(self) -> None:
        while True:
            with self._lock:
                if self.broadcaster.subscribers == 0:
                    self._thread = None  # the next subscriber starts a fresh one
                    return
            try:
                with self.sessionmaker() as db:
                    changes = self.poll(db)
                    db.rollback()
                for change in changes:
                    self.broadcaster.publish(change)
            except Exception:  # noqa: BLE001 - a failed poll is logged; the next one retries
                log.exception("iot live poll failed")
            time.sleep(self.interval_s)


def _alarm_message(alarm: AlarmRecord, department_id: int | None) -> dict[str, Any]:
    return {"type": "alarm", "id": alarm.id, "device_key": alarm.device_key, "department_id": department_id,
            "status": alarm.status, "severity": alarm.severity, "count": alarm.count, "message": alarm.message,
            "product": alarm.product}


def watcher_for(app: Any) -> Watcher:
    """The app's watcher, made on first use (it polls only while someone is watching)."""
    watcher = getattr(app.state, "iot_watcher", None)
    if watcher is None:
        watcher = app.state.iot_watcher = Watcher(lambda: app.state.sessionmaker())
    return watcher


def concerns(actor: Actor, message: dict[str, Any], *, device_key: str | None = None) -> bool:
    """Whether ``actor`` may see this change (and, for a device page, whether it is that device's)."""
    if device_key is not None and device_key != message.get("key", message.get("device_key")):
        return False
    return actor.sees_all_departments or (
        actor.department_id is not None and message.get("department_id") == actor.department_id)


def sse_message(message: dict[str, Any]) -> str:
    body = {k: v for k, v in message.items() if k not in ("type", "department_id")}
    return f"event: {message['type']}\ndata: {json.dumps(body, ensure_ascii=False, default=str)}\n\n"


def stream(sub: events_live.Subscriber, accept: Callable[[dict[str, Any]], bool], *,
           ping_seconds: float = PING_SECONDS) -> AsyncIterator[str]:
    """The ``text/event-stream`` of one page until its subscriber is dropped."""
    return events_live.stream(sub, accept, ping_seconds=ping_seconds, encode=sse_message)
