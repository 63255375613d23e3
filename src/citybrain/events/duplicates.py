"""Duplicate reports: suggest open events of the same small class nearby, and merge them.

A new report within ``DEFAULT_RADIUS_M`` metres (great-circle distance on WGS-84) and
``DEFAULT_WINDOW_HOURS`` hours of an open event of the same small class is suggested as a
duplicate. The command centre merges it: the merged report becomes ``merged`` with
``duplicate_of_id`` pointing at the main event, and its reporter follows the main event's
progress by the tracking number they already hold (``resolve_tracking``).
"""

from __future__ import annotations

import math
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from citybrain.core import audit, clock
from citybrain.core.actor import Actor
from citybrain.core.errors import Conflict, Invalid

from . import service
from .enums import OPEN_STATUSES, Status
from .models import Event

DEFAULT_RADIUS_M = 200.0
DEFAULT_WINDOW_HOURS = 72.0
EARTH_RADIUS_M = 6_371_008.8  # mean Earth radius (IUGG), good to ~0.5 % for haversine
_MAX_CHAIN = 20  # a merged event whose main event was merged in turn: follow at most this far


def haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance in metres between two WGS-84 points (degrees)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def suggest_duplicates(db: Session, *, event: Event, radius_m: float = DEFAULT_RADIUS_M,
                       window_hours: float = DEFAULT_WINDOW_HOURS, limit: int = 10) -> list[Event]:
    """Open events that ``event`` probably repeats, nearest first.

    Candidates share the small class, are open (not closed, not accepted or merged), have a
    point, were reported within ``window_hours`` before or after ``event`` and lie within
    ``radius_m``. A bounding box narrows the rows in SQL; the exact distance is computed here.
    """
    if event.lon is None or event.lat is None or radius_m <= 0 or window_hours <= 0:
        return []
    dlat = math.degrees(radius_m / EARTH_RADIUS_M)
    dlon = dlat / max(math.cos(math.radians(event.lat)), 1e-6)
    window = timedelta(hours=window_hours)
    rows = db.scalars(
        select(Event).where(
            Event.id != event.id,
            Event.category_code == event.category_code,
            Event.status.in_([str(s) for s in OPEN_STATUSES]),
            Event.duplicate_of_id.is_(None),
            Event.created_at >= event.created_at - window,
            Event.created_at <= event.created_at + window,
            Event.lat.between(event.lat - dlat, event.lat + dlat),
            Event.lon.between(event.lon - dlon, event.lon + dlon),
        )
    )
    near = [(haversine_m(event.lon, event.lat, e.lon, e.lat), e) for e in rows
            if e.lon is not None and e.lat is not None]
    near = [(d, e) for d, e in near if d <= radius_m]
    near.sort(key=lambda pair: (pair[0], pair[1].id))
    return [e for _, e in near[:limit]]


def distance_m(a: Event, b: Event) -> float | None:
    if None in (a.lon, a.lat, b.lon, b.lat):
        return None
    return haversine_m(a.lon, a.lat, b.lon, b.lat)  # type: ignore[arg-type]


def merge(db: Session, *, event_id: int, into_id: int, actor: Actor, expected_version: int | None = None,
          note: str = "") -> Event:
    """Merge report ``event_id`` into the main event ``into_id``; returns the merged event.

    Refused whole (nothing written) when: the actor lacks ``events:command``; the two are the
    same event; the report is already merged (409) or otherwise final; the main event is
    closed, not accepted or merged itself; the small classes differ; or the report changed
    since ``expected_version``.
    """
    actor.check("events:command")
    if event_id == into_id:
        raise Invalid("an event cannot be merged into itself")
    event = service.get_event(db, event_id=event_id)
    main = service.get_event(db, event_id=into_id)
    if expected_version is not None and expected_version != event.version:
        raise Conflict(f"event {event.tracking_no} was changed by someone else (version {event.version}, "
                       f"you had {expected_version}); reload it and try again", version=event.version)
    if event.status == Status.MERGED:
        target = db.get(Event, event.duplicate_of_id) if event.duplicate_of_id else None
        raise Conflict(f"event {event.tracking_no} is already merged"
                       + (f" into {target.tracking_no}" if target else ""))
    if event.status not in OPEN_STATUSES:
        raise Invalid(f"event {event.tracking_no} is {event.status} and can no longer be merged")
    if main.status not in OPEN_STATUSES:
        raise Invalid(f"cannot merge into event {main.tracking_no}: it is {main.status}")
    if main.duplicate_of_id == event.id:
        raise Invalid(f"event {main.tracking_no} is itself merged into {event.tracking_no}")
    if main.category_code != event.category_code:
        raise Invalid(f"cannot merge across small classes ({event.category_code} into {main.category_code})")

    now = clock.now()
    before = service._snapshot(event)  # noqa: SLF001 - same domain: one snapshot shape for the audit
    from_status = event.status
    event.status = Status.MERGED
    event.duplicate_of_id = main.id
    event.stage = None
    event.stage_started_at = None
    event.due_at = None
    event.overdue = False
    event.extension_request = None
    event.suspension = None
    event.updated_at = now
    distance = distance_m(event, main)
    data = {"into_id": main.id, "into": main.tracking_no,
            "distance_m": round(distance, 1) if distance is not None else None}
    service._log(db, event, actor=actor.label, action="merge", at=now, from_status=from_status,  # noqa: SLF001
                 to_status=Status.MERGED, note=note.strip(), data=data)
    service._log(db, main, actor=actor.label, action="duplicate_merged", at=now,  # noqa: SLF001
                 from_status=main.status, to_status=main.status, note=note.strip(),
                 data={"duplicate_id": event.id, "duplicate": event.tracking_no})
    tracking_no = event.tracking_no
    try:
        db.flush()
    except StaleDataError:
        raise Conflict(f"event {tracking_no} was changed by someone else at the same moment; "
                       "reload it and try again") from None
    audit.record(db, actor=actor, action="event.merge", object_type="event", object_id=event.id,
                 before=before, after=service._snapshot(event) | {"duplicate_of_id": main.id,  # noqa: SLF001
                                                                   "into": main.tracking_no})
    _announce(db, event, "merge")
    _announce(db, main, "duplicate_merged")
    return event


def _announce(db: Session, event: Event, action: str) -> None:
    """Tell open pages (server-sent events) once the transaction commits."""
    from . import live

    live.queue_change(db, event=event, action=action)


def main_event(db: Session, *, event: Event) -> Event:
    """The event whose outcome ``event`` shares: itself, or the end of its merge chain."""
    seen = {event.id}
    current = event
    for _ in range(_MAX_CHAIN):
        if current.duplicate_of_id is None:
            return current
        nxt = db.get(Event, current.duplicate_of_id)
        if nxt is None or nxt.id in seen:
            return current
        seen.add(nxt.id)
        current = nxt
    return current


def resolve_tracking(db: Session, tracking_no: str) -> Event:
    """The event a citizen's tracking number stands for: a merged report answers with its main
    event, so every reporter sees the one outcome. Unknown numbers raise ``NotFound``."""
    return main_event(db, event=service.get_by_tracking(db, tracking_no=tracking_no))


def merged_reports(db: Session, *, event_id: int) -> list[Event]:
    """Reports merged directly into ``event_id``, oldest first."""
    return list(db.scalars(select(Event).where(Event.duplicate_of_id == event_id)
                           .order_by(Event.created_at, Event.id)))
