"""Transactional outbox: bus messages that must not be lost.

``enqueue(db, topic, payload)`` adds a row in the caller's transaction, so the message exists
exactly when the change it announces was committed. ``relay_once`` delivers undelivered rows to
the in-process bus in id order and marks them delivered; a process that dies in between
delivers again on restart, which is why every listener of an outbox topic is idempotent
(``alarm.raised`` is keyed by its alarm id). ``Relay`` runs ``relay_once`` in a thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from . import bus, clock
from .models import OutboxMessage

log = logging.getLogger("citybrain.outbox")

MAX_ATTEMPTS = 20  # after this a message stays undelivered, visible with its last error


def enqueue(db: Session, topic: str, payload: dict[str, Any]) -> OutboxMessage:
    row = OutboxMessage(created_at=clock.now(), topic=topic, payload=payload, attempts=0)
    db.add(row)
    return row


def relay_once(session_factory: Callable[[], Session], *, on: bus.Bus = bus.default_bus, limit: int = 200) -> int:
    """Deliver up to ``limit`` pending messages; returns how many were delivered."""
    db = session_factory()
    try:
        rows = db.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.delivered_at.is_(None), OutboxMessage.attempts < MAX_ATTEMPTS)
            .order_by(OutboxMessage.id)
            .limit(limit)
        ).all()
        pending = [(row.id, row.topic, row.payload) for row in rows]
        db.rollback()
    finally:
        db.close()
    delivered = 0
    for row_id, topic, payload in pending:
        listeners = on.listeners(topic)
        if listeners == 0:
            continue  # nobody in this process handles it yet (e.g. still starting): keep it pending
        ok = on.publish(topic, dict(payload))
        error = None if ok == listeners else f"{listeners - ok} of {listeners} listeners failed"
        db = session_factory()
        try:
            values: dict[str, Any] = {"attempts": OutboxMessage.attempts + 1, "last_error": error}
            if error is None:
                values["delivered_at"] = clock.now()
                delivered += 1
            db.execute(update(OutboxMessage).where(OutboxMessage.id == row_id).values(**values))
            db.commit()
        finally:
            db.close()
    return delivered


class Relay:
    """Polls the outbox in a daemon thread; ``poke()`` wakes it at once after a commit."""

    def __init__(self, session_factory: Callable[[], Session], *, on: bus.Bus = bus.default_bus,
                 interval_s: float = 1.0) -> None:
        self._session_factory = session_factory
        self._bus = on
        self._interval = interval_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="citybrain-outbox", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                while relay_once(self._session_factory, on=self._bus) and not self._stop.is_set():
                    pass
            except Exception:  # noqa: BLE001 - the relay must outlive a database hiccup
                log.exception("outbox relay failed; retrying")
            self._wake.wait(self._interval)
            self._wake.clear()
