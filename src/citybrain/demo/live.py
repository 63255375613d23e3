"""New events keep arriving while the demo runs (issue 3, item 10).

SYNTHETIC DATA. A daemon thread wakes every 20–60 s (seeded), reports one new event through
``service.report`` in its own session and commits, and now and then moves an open event one
step along the workflow with ``service.transition``. ``tick`` is one such step without the
thread, so it can be tested directly.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from typing import Any

import shapely
from sqlalchemy import select
from sqlalchemy.orm import Session

from citybrain.core.actor import system_actor
from citybrain.core.errors import DomainError
from citybrain.events import service
from citybrain.events.models import Event
from citybrain.events.schemas import EventReportIn

from .events_history import (
    _DEFAULT_DESCRIPTIONS,
    _RESULTS,
    CATEGORY_MIX,
    DESCRIPTIONS,
    SENSOR_CATEGORIES,
    TOWNSHIP_WEIGHT,
    township_geometries,
)

log = logging.getLogger("citybrain.demo.live")

COMMAND = system_actor("指挥中心值班员（演示）")
DEPARTMENT = system_actor("责任单位经办人（演示）")
GRID = system_actor("网格员（演示）")
REPORTERS = {"citizen": None, "hotline": system_actor("12345热线坐席（演示）"), "grid": GRID,
             "sensor": system_actor("物联感知（演示）")}
# The next step for an open event, by status: (action, actor, extra data).
NEXT_STEP: dict[str, tuple[str, Any, dict[str, Any]]] = {
    "reported": ("accept", COMMAND, {}),
    "dispatched": ("start", DEPARTMENT, {}),
    "in_progress": ("handle", DEPARTMENT, {"result": _RESULTS[0]}),
    "handled": ("verify_pass", GRID, {}),
    "verified": ("close", COMMAND, {}),
}


def _point(rng: random.Random, geom: shapely.Geometry) -> tuple[float, float]:
    min_lon, min_lat, max_lon, max_lat = geom.bounds
    for _ in range(1000):
        lon, lat = round(rng.uniform(min_lon, max_lon), 6), round(rng.uniform(min_lat, max_lat), 6)
        if geom.contains(shapely.Point(lon, lat)):
            return lon, lat
    p = geom.representative_point()
    return round(p.x, 6), round(p.y, 6)


def tick(db: Session, rng: random.Random, *, advance_probability: float = 0.4) -> dict[str, Any]:
    """Report one new event and maybe advance an open one. Flushes; the caller commits."""
    townships = township_geometries(db)
    codes = sorted(townships)
    township = rng.choices(codes, weights=[TOWNSHIP_WEIGHT.get(c, 1.0) for c in codes])[0]
    cats = sorted(CATEGORY_MIX)
    code = rng.choices(cats, weights=[CATEGORY_MIX[c][0] for c in cats])[0]
    channel = rng.choices(["grid", "hotline", "citizen", "sensor"], weights=[38, 30, 26, 6])[0]
    if channel == "sensor" and code not in SENSOR_CATEGORIES:
        channel = "grid"
    lon, lat = _point(rng, townships[township])
    event = service.report(db, data=EventReportIn(
        channel=channel, category_code=code, lon=lon, lat=lat,
        description=rng.choice(DESCRIPTIONS.get(code, _DEFAULT_DESCRIPTIONS)),
        external_id=f"demo-live-{rng.getrandbits(48):012x}" if channel == "sensor" else None,
    ), actor=REPORTERS[channel])
    done: dict[str, Any] = {"reported": event.tracking_no, "advanced": None}
    if rng.random() < advance_probability:
        candidates = list(db.scalars(select(Event.id).where(Event.status.in_(list(NEXT_STEP)), Event.id != event.id)
                                     .order_by(Event.id)))
        if candidates:
            target = service.get_event(db, event_id=rng.choice(candidates))
            action, actor, data = NEXT_STEP[target.status]
            service.transition(db, event_id=target.id, action=action, actor=actor, **data)
            done["advanced"] = (target.tracking_no, action)
    return done


class LiveEvents:
    """The background generator: ``start()`` once, ``stop()`` (or process exit) ends it."""

    def __init__(self, sessionmaker: Callable[[], Session], *, seed: int, min_s: float = 20, max_s: float = 60):
        self.sessionmaker = sessionmaker
        self.rng = random.Random(f"citybrain-live:{seed}")
        self.min_s, self.max_s = min_s, max_s
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="citybrain-demo-live", daemon=True)

    def start(self) -> LiveEvents:
        self.thread.start()
        return self

    def stop(self, timeout: float = 5) -> None:
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join(timeout)

    def _run(self) -> None:
        while not self.stopping.wait(self.rng.uniform(self.min_s, self.max_s)):
            try:
                with self.sessionmaker() as db:
                    done = tick(db, self.rng)
                    db.commit()
                log.info("demo event arrived", extra=done)
            except DomainError as exc:  # e.g. a conflict with a person acting on the same event
                log.warning("demo live step refused: %s", exc.message)
            except Exception:  # noqa: BLE001 - the demo keeps running whatever happens
                log.exception("demo live step failed")
