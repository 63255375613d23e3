"""Live notifications: new work appears in the recipient's inbox at once (server-sent events).

A change is announced only once it is committed, so nobody is told about work that a rollback
then takes back: ``service`` calls ``queue_change`` during the transaction, the session keeps
the notices in ``session.info``, and an ``after_commit`` hook publishes them on the bus as
``event.changed``. The ``Broadcaster`` listens on the bus and fans each notice out to the open
``/events/stream`` connections, one bounded queue each. A subscriber that does not keep up is
dropped (its stream ends; the browser reconnects and reloads) instead of slowing the others.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.orm import Session, SessionTransaction

from citybrain.core import bus
from citybrain.core.actor import Actor

from .enums import Status
from .models import Event, EventAssignment

log = logging.getLogger("citybrain.events.live")

EVENT_CHANGED = "event.changed"
PENDING_KEY = "citybrain.events.live.pending"
MAX_PENDING = 500  # a bulk import announces itself once instead of once per event
QUEUE_SIZE = 100
PING_SECONDS = 15.0
RETRY_MS = 3000
# Assisting departments (协办) exist only while an event is being worked on.
_WITH_ASSISTANTS = frozenset({Status.DISPATCHED, Status.IN_PROGRESS, Status.HANDLED})


@dataclass
class EventChanged:
    """``event.changed`` — fired after a transaction that reported or changed events commits.

    Payload: ``id``, ``tracking_no``, ``status``, ``action``, ``department_ids`` (lead and
    assisting), ``township_code``; or ``{"bulk": true, "count": n}`` after a bulk change.
    """

    name = EVENT_CHANGED


# --- collecting notices inside the transaction -------------------------------------------------


def queue_change(db: Session, *, event: Event, action: str) -> None:
    """Remember that ``event`` changed; it is announced when (and if) the session commits."""
    pending: list[dict[str, Any]] = db.info.setdefault(PENDING_KEY, [])
    if len(pending) >= MAX_PENDING:
        pending[-1] = {"bulk": True, "count": len(pending)}
        return
    departments: set[int] = set()
    if event.status in _WITH_ASSISTANTS:
        # Service functions flush their assignment changes; what may still be pending here is
        # the action's audit entry, which this read does not need flushed first.
        with db.no_autoflush:
            departments.update(db.scalars(select(EventAssignment.department_id)
                                          .where(EventAssignment.event_id == event.id)))
    if event.department_id is not None:
        departments.add(event.department_id)
    pending.append({"id": event.id, "tracking_no": event.tracking_no, "status": event.status,
                    "action": action, "department_ids": sorted(departments),
                    "township_code": event.township_code})


@sa_event.listens_for(Session, "after_commit")
def _publish_committed(session: Session) -> None:
    if session.in_nested_transaction():  # a savepoint released: the real commit is still to come
        return
    pending = session.info.pop(PENDING_KEY, None)
    for payload in pending or ():
        bus.publish(EVENT_CHANGED, payload)


@sa_event.listens_for(Session, "after_soft_rollback")
def _forget_rolled_back(session: Session, previous: SessionTransaction) -> None:
    if previous.parent is None:
        session.info.pop(PENDING_KEY, None)


# --- fan-out to the open streams -----------------------------------------------------------------

_DROPPED: dict[str, Any] = {"dropped": True}


@dataclass(eq=False)
class Subscriber:
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    dropped: bool = False

    def offer(self, message: dict[str, Any]) -> None:
        """Runs on the subscriber's loop. A full queue means a slow reader: drop it."""
        if self.dropped:
            return
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.dropped = True
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(_DROPPED)

    async def get(self) -> dict[str, Any] | None:
        """The next message; None once this subscriber was dropped."""
        message = await self.queue.get()
        return None if message is _DROPPED else message


class Broadcaster:
    """One publisher (the bus), many subscriber queues; publishing never blocks."""

    def __init__(self, queue_size: int = QUEUE_SIZE) -> None:
        self.queue_size = queue_size
        self._subscribers: set[Subscriber] = set()
        self._lock = threading.Lock()
        self._unlisten: Callable[[], None] | None = None

    def start(self, source: bus.Bus = bus.default_bus) -> None:
        """Listen on the bus (once)."""
        with self._lock:
            if self._unlisten is None:
                self._unlisten = source.listen(EVENT_CHANGED, self.publish)

    def stop(self) -> None:
        with self._lock:
            if self._unlisten is not None:
                self._unlisten()
                self._unlisten = None

    def subscribe(self) -> Subscriber:
        sub = Subscriber(loop=asyncio.get_running_loop(), queue=asyncio.Queue(self.queue_size))
        with self._lock:
            self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        with self._lock:
            self._subscribers.discard(sub)

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def publish(self, message: dict[str, Any]) -> int:
        """Hand ``message`` to every subscriber; callable from any thread. Returns how many."""
        with self._lock:
            subs = list(self._subscribers)
        for sub in subs:
            if sub.dropped:
                self.unsubscribe(sub)
                continue
            try:
                sub.loop.call_soon_threadsafe(sub.offer, message)
            except RuntimeError:  # the subscriber's loop is closed: it is gone
                self.unsubscribe(sub)
        return len(subs)


BROADCASTER = Broadcaster()


# --- who is told what ----------------------------------------------------------------------------


def concerns(actor: Actor, message: dict[str, Any], *, township_code: str | None = None) -> bool:
    """Whether a change belongs in ``actor``'s inbox (``township_code``: a grid worker's)."""
    if message.get("bulk"):
        return actor.sees_all_departments
    if actor.sees_all_departments:
        return True
    if township_code and actor.role == "grid_worker":
        return message.get("township_code") == township_code
    return actor.department_id is not None and actor.department_id in message.get("department_ids", ())


def sse_message(message: dict[str, Any]) -> str:
    data = {k: message[k] for k in ("id", "tracking_no", "status", "action", "bulk", "count") if k in message}
    return f"event: inbox\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


async def stream(sub: Subscriber, accept: Callable[[dict[str, Any]], bool], *,
                 ping_seconds: float = PING_SECONDS,
                 encode: Callable[[dict[str, Any]], str] | None = None) -> AsyncIterator[str]:
    """The text of a ``text/event-stream`` for one subscriber, until it is dropped; ``encode``
    turns a message into its SSE text (the inbox's ``sse_message`` by default)."""
    encode = encode or sse_message
    yield f"retry: {RETRY_MS}\n\n"
    while True:
        try:
            message = await asyncio.wait_for(sub.get(), timeout=ping_seconds)
        except TimeoutError:
            yield ": ping\n\n"
            continue
        if message is None:
            return
        if accept(message):
            yield encode(message)
