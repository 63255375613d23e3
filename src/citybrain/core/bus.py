"""In-process event bus: domains announce what happened; other domains listen.

``listen(name, handler)`` returns an unsubscribe function; ``publish(name, payload)`` calls each
listener of ``name`` in turn. A failing listener is logged and never breaks the others or the
publisher. Events that must not be lost will go through an outbox table written in the same
transaction as the change (a later step); this bus is the in-process delivery.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("citybrain.bus")

Handler = Callable[[dict[str, Any]], Any]


class Bus:
    def __init__(self) -> None:
        self._listeners: dict[str, list[Handler]] = {}
        self._lock = threading.Lock()

    def listen(self, name: str, handler: Handler) -> Callable[[], None]:
        with self._lock:
            self._listeners.setdefault(name, []).append(handler)

        def unsubscribe() -> None:
            with self._lock:
                handlers = self._listeners.get(name, [])
                if handler in handlers:
                    handlers.remove(handler)

        return unsubscribe

    def publish(self, name: str, payload: dict[str, Any]) -> int:
        """Deliver to every listener; returns how many succeeded."""
        with self._lock:
            handlers = list(self._listeners.get(name, []))
        ok = 0
        for handler in handlers:
            try:
                handler(payload)
                ok += 1
            except Exception:  # noqa: BLE001 - one listener's failure must not break the others
                log.exception("bus listener %r failed on %s", getattr(handler, "__name__", handler), name)
        return ok

    def listeners(self, name: str) -> int:
        with self._lock:
            return len(self._listeners.get(name, []))


default_bus = Bus()
listen = default_bus.listen
publish = default_bus.publish
