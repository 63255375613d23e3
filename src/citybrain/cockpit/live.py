"""One aggregation, many screens: the cockpit's live snapshot and its server-sent-event stream.

The ``Aggregator`` listens on the bus for ``event.changed`` (published after commit, see
``events/live.py``). A change only marks the snapshot dirty; a single task on the app's event
loop recomputes it — in a worker thread, with a session of its own — at most once per
``MIN_INTERVAL_S`` however many changes arrive (a burst of 50 changes/s costs one query round
per second), and hands the result to every subscriber. Each subscriber keeps only the newest
snapshot (a slot, not a queue), so a slow screen skips intermediate states instead of
slowing the others or piling up memory. Nobody watching: nothing is computed; the next
``current()`` call (``GET /api/cockpit/snapshot``) computes it with the caller's session.
Time alone changes some figures (overdue, today), so a watched snapshot is also refreshed
every ``REFRESH_S``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from citybrain.core import bus

from . import aggregates

log = logging.getLogger("citybrain.cockpit.live")

EVENT_CHANGED = "event.changed"
# Published by the IoT hub after a committed ingestion batch or alarm change (the snapshot's IoT
# panels read its tables); the debounce below makes one per batch cheap.
IOT_CHANGED = "iot.changed"
MIN_INTERVAL_S = 1.0
REFRESH_S = 60.0
PING_SECONDS = 15.0
RETRY_MS = 2000


@dataclass(eq=False)
class Subscriber:
    """One open screen: holds the newest snapshot it has not sent yet."""

    loop: asyncio.AbstractEventLoop
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    pending: dict[str, Any] | None = None

    def offer(self, snap: dict[str, Any]) -> None:  # runs on the subscriber's loop
        self.pending = snap
        self.wake.set()

    async def next(self, timeout: float) -> dict[str, Any] | None:
        """The newest snapshot, or None after ``timeout`` seconds without one."""
        try:
            await asyncio.wait_for(self.wake.wait(), timeout=timeout)
        except TimeoutError:
            return None
        self.wake.clear()
        snap, self.pending = self.pending, None
        return snap


class Aggregator:
    def __init__(self, sessionmaker: Callable[[], Session], *, min_interval_s: float = MIN_INTERVAL_S,
                 refresh_s: float = REFRESH_S, compute: Callable[[Session], dict[str, Any]] | None = None) -> None:
        self.sessionmaker = sessionmaker
        self.min_interval_s = min_interval_s
        self.refresh_s = refresh_s
        self._compute = compute or (lambda db: aggregates.snapshot(db))
        self._latest: dict[str, Any] | None = None
        self._latest_at = 0.0  # monotonic time of the last computation
        self._stale = True
        self._subscribers: set[Subscriber] = set()
        self._lock = threading.Lock()
        self._compute_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dirty: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._unlisten: Callable[[], None] | None = None
        self.computations = 0

    # --- lifecycle (app lifespan) ---

    def start(self, source: bus.Bus = bus.default_bus) -> Callable[[], Awaitable[None]]:
        """Listen on the bus and run the recompute loop; returns the coroutine function that stops it."""
        self._loop = asyncio.get_running_loop()
        self._dirty = asyncio.Event()
        stops = [source.listen(name, self.changed) for name in (EVENT_CHANGED, IOT_CHANGED)]
        self._unlisten = lambda: [stop() for stop in stops]
        self._task = self._loop.create_task(self._run(), name="cockpit-aggregator")
        return self.stop

    async def stop(self) -> None:
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def changed(self, _payload: dict[str, Any] | None = None) -> None:
        """Bus listener (any thread): something changed; recompute soon."""
        self._stale = True
        loop, dirty = self._loop, self._dirty
        if loop is not None and dirty is not None and not loop.is_closed():
            loop.call_soon_threadsafe(dirty.set)

    async def _run(self) -> None:
        assert self._dirty is not None
        while True:
            try:
                await asyncio.wait_for(self._dirty.wait(), timeout=self.refresh_s)
            except TimeoutError:
                self._stale = True
            # Debounce: wait out the rest of the interval so a burst becomes one computation.
            wait = self.min_interval_s - (time.monotonic() - self._latest_at)
            if wait > 0:
                await asyncio.sleep(wait)
            self._dirty.clear()
            if not self.subscribers:
                continue  # nobody watching: current() computes on demand
            try:
                snap = await asyncio.to_thread(self._compute_with_own_session)
            except Exception:  # noqa: BLE001 - a failed round is logged; the next change retries
                log.exception("cockpit snapshot failed")
                continue
            self._publish(snap)

    # --- computing ---

    def _compute_with_own_session(self) -> dict[str, Any]:
        with self.sessionmaker() as db:
            return self._store(db)

    def _store(self, db: Session) -> dict[str, Any]:
        with self._compute_lock:
            self._stale = False
            started = time.monotonic()
            snap = self._compute(db)
            with self._lock:
                self._latest, self._latest_at = snap, started
                self.computations += 1
            return snap

    def current(self, db: Session) -> dict[str, Any]:
        """The shared snapshot; computed now with ``db`` if it is missing, stale or too old."""
        with self._lock:
            snap, fresh = self._latest, not self._stale and time.monotonic() - self._latest_at < self.refresh_s
        if snap is not None and fresh:
            return snap
        return self._store(db)

    # --- fan-out ---

    def subscribe(self) -> Subscriber:
        sub = Subscriber(loop=asyncio.get_running_loop())
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

    def _publish(self, snap: dict[str, Any]) -> None:
        with self._lock:
            subs = list(self._subscribers)
        for sub in subs:
            try:
                sub.loop.call_soon_threadsafe(sub.offer, snap)
            except RuntimeError:  # that screen's loop is gone
                self.unsubscribe(sub)


_last_encoded: tuple[dict[str, Any] | None, str] = (None, "")


def sse_snapshot(snap: dict[str, Any]) -> str:
    """The SSE message for a snapshot, encoded once however many screens receive it.

    Every subscriber is offered the same snapshot object, so the last encoding is reused when
    the object is the same (``is``, not equality: cheap, and never stale).
    """
    global _last_encoded
    cached, text = _last_encoded
    if cached is snap:
        return text
    text = f"event: snapshot\ndata: {json.dumps(snap, ensure_ascii=False, separators=(',', ':'))}\n\n"
    _last_encoded = (snap, text)
    return text


async def stream(aggregator: Aggregator, sub: Subscriber, first: dict[str, Any], *,
                 still_allowed: Callable[[], Awaitable[bool]] | None = None,
                 ping_seconds: float = PING_SECONDS) -> AsyncIterator[str]:
    """``text/event-stream`` for one screen: the current snapshot at once, then each new one.

    ``still_allowed`` is asked at every ping; when it says no (a revoked display token) the
    stream ends, and the browser's reconnect meets the 401.
    """
    yield f"retry: {RETRY_MS}\n\n"
    yield sse_snapshot(first)
    while True:
        snap = await sub.next(ping_seconds)
        if snap is None:
            if still_allowed is not None and not await still_allowed():
                return
            yield ": ping\n\n"
            continue
        yield sse_snapshot(snap)
