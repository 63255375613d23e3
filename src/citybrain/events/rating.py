"""Citizen satisfaction (满意度评价): one rating from 1 to 5 per closed event, audited.

It feeds the evaluation's satisfaction figure. The citizen page rates by tracking number, so
the actor is usually None (the public).
"""

from __future__ import annotations

from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from citybrain.core import audit, clock
from citybrain.core.actor import Actor, system_actor
from citybrain.core.errors import Conflict, Invalid

from . import service
from .enums import Status
from .models import Event, EventLog

MIN_RATING, MAX_RATING = 1, 5


def rate(db: Session, *, event_id: int, rating: int, actor: Actor | None) -> Event:
    """Store the rating; refused (changing nothing) unless the event is closed and not yet rated."""
    if not MIN_RATING <= rating <= MAX_RATING:
        raise Invalid(f"a rating is a whole number from {MIN_RATING} to {MAX_RATING}", field="rating")
    event = service.get_event(db, event_id=event_id)
    if event.status != Status.CLOSED:
        raise Invalid("only a closed event can be rated", field="rating")
    if event.rating is not None:
        raise Conflict(f"event {event.tracking_no} has already been rated")
    now = clock.now()
    event.rating = rating
    try:
        db.flush()  # the version column: of two simultaneous ratings only one is stored
    except StaleDataError:
        raise Conflict(f"event {event.tracking_no} has already been rated") from None
    who = actor or system_actor("public")
    db.add(EventLog(event_id=event.id, at=now, actor=who.label, action="rate", from_status=event.status,
                    to_status=event.status, note="", data={"rating": rating}))
    db.flush()
    audit.record(db, actor=who, action="event.rate", object_type="event", object_id=event.id,
                 before={"rating": None}, after={"rating": rating})
    return event
