"""The unified event command's service layer: intake from every channel, reading, transitions.

Every channel (citizen page, grid worker, 12345 hotline, JSON API, Open311, sensor alarms) ends
in ``report``; every change of state goes through ``transition``, which applies one row of the
workflow table (``workflow.py``) and writes the timeline and the audit log.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import exists, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from citybrain.core import audit, clock
from citybrain.core.actor import Actor, system_actor
from citybrain.core.errors import Conflict, Forbidden, Invalid, NotFound
from citybrain.core.permissions import Role
from citybrain.geo import service as geo_service
from citybrain.org import service as org_service

from . import live, workflow
from .enums import OPEN_STATUSES, Channel, LocationState, Stage, Status
from .models import Event, EventAssignment, EventCategory, EventLog
from .schemas import EventReportIn

CHINA = timezone(timedelta(hours=8))  # tracking numbers count China days (no DST since 1991)
TRACKING_PREFIX = "ZC"
_TRACKING_ATTEMPTS = 20
# Machine channels whose located reports are accepted without a person: the device's rule or
# the video-AI model already decided that something is wrong at that place.
AUTO_ACCEPT_CHANNELS = frozenset({Channel.SENSOR, Channel.VIDEO})
PUBLIC_CHANNELS = frozenset({Channel.CITIZEN, Channel.OPEN311})
AUTO_ACTOR = "auto-dispatch"


# --- helpers ------------------------------------------------------------------------------------


def mask_phone(phone: str) -> str:
    digits = phone.strip()
    if len(digits) < 7:
        return "*" * len(digits)
    return f"{digits[:3]}****{digits[-4:]}"


def china_day(at: datetime) -> str:
    return at.astimezone(CHINA).strftime("%Y%m%d")


def _snapshot(event: Event) -> dict[str, Any]:
    return {"status": event.status, "stage": event.stage,
            "due_at": event.due_at.isoformat() if event.due_at else None,
            "department_id": event.department_id, "version": event.version}


def _log(db: Session, event: Event, *, actor: str, action: str, at: datetime, from_status: str | None,
         to_status: str | None, note: str = "", data: dict[str, Any] | None = None) -> EventLog:
    entry = EventLog(event_id=event.id, at=at, actor=actor, action=action, from_status=from_status,
                     to_status=to_status, note=note, data=data or None)
    db.add(entry)
    return entry


def get_category_for_report(db: Session, *, code: str, actor: Actor | None) -> EventCategory:
    category = db.get(EventCategory, code)
    if category is None or not category.active:
        raise Invalid(f"unknown event category {code!r}", field="category_code")
    if (actor is None or actor.role == Role.CITIZEN) and not category.public:
        raise Invalid(f"event category {code!r} is not open to public reports", field="category_code")
    return category


# --- location -----------------------------------------------------------------------------------


def _locate(db: Session, *, lon: float, lat: float, crs: str) -> dict[str, Any]:
    try:
        return geo_service.locate(db, lon=lon, lat=lat, crs=crs)
    except geo_service.OutsideDistrict as exc:
        raise Invalid(f"the location is outside the district, so it cannot be handled here: {exc.message}",
                      field="location") from None
    except Invalid as exc:
        raise Invalid(f"invalid coordinates: {exc.message}", field="location") from None


def apply_location(db: Session, *, event: Event, lon: float, lat: float, crs: str = "wgs84") -> None:
    """Locate first, then change the event: a refused point leaves it as it was."""
    found = _locate(db, lon=lon, lat=lat, crs=crs)
    event.lon, event.lat = found["wgs84"]
    event.township_code = found["township_code"]
    event.grid_code = found["grid_code"]
    event.location_state = LocationState.LOCATED


def match_address(db: Session, *, address: str, event: Event | None = None) -> str | None:
    """Township code of a free-text address.

    A known place named in it (周村古商城, 区政府 …, see ``geo.places``) gives the place's
    township and, when ``event`` is passed, locates the event at the place. Otherwise the
    township named in it (丝绸路街道, 王村镇, 王村 …), if exactly one is, as a hint only.
    """
    from citybrain.geo import places as geo_places  # imported here: keeps this edit to one function

    text = "".join(address.split())
    if not text:
        return None
    place = geo_places.match_place(db, text=text)
    if place is not None:
        if event is None:
            return place.township_code
        try:
            apply_location(db, event=event, lon=place.lon, lat=place.lat)
            return event.township_code
        except Invalid:  # a place left outside a reloaded district: fall back to the hint
            pass
    found = set()
    for div in geo_service.list_divisions(db):
        if div.level != "township":
            continue
        short = div.name.removesuffix("街道").removesuffix("镇")
        if div.name in text or (len(short) >= 2 and short in text):
            found.add(div.code)
    return found.pop() if len(found) == 1 else None


# --- intake -------------------------------------------------------------------------------------


def _next_tracking_no(db: Session, day: str) -> str:
    prefix = f"{TRACKING_PREFIX}{day}-"
    # LIKE 'prefix%' alone cannot use the unique index on tracking_no (SQLite's LIKE is case-
    # insensitive, PostgreSQL needs the C collation): it scanned every event, so intake slowed
    # down as the table grew. The range [ZC<day>, ZC<next day>) is index-friendly and, having
    # only letters and digits, sorts the same under C and linguistic collations; LIKE keeps it exact.
    next_day = (datetime.strptime(day, "%Y%m%d") + timedelta(days=1)).strftime("%Y%m%d")
    last = db.scalar(select(func.max(Event.tracking_no)).where(
        Event.tracking_no >= f"{TRACKING_PREFIX}{day}", Event.tracking_no < f"{TRACKING_PREFIX}{next_day}",
        Event.tracking_no.like(prefix + "%")))
    seq = int(last[len(prefix):]) + 1 if last else 1
    return f"{prefix}{seq:06d}"


def _insert_with_tracking_no(db: Session, event: Event, now: datetime) -> None:
    """Daily sequence: take max+1; when a concurrent report took it first, the unique
    constraint refuses ours and we try the next number inside a savepoint."""
    day = china_day(now)
    for _ in range(_TRACKING_ATTEMPTS):
        event.tracking_no = _next_tracking_no(db, day)
        try:
            with db.begin_nested():
                db.add(event)
                db.flush()
            return
        except IntegrityError:
            continue
    raise Conflict("could not assign a tracking number; please retry")


def report(db: Session, *, data: EventReportIn, actor: Actor | None) -> Event:
    """Take one report from any channel: classify, locate, number, start the accept clock."""
    if actor is not None:
        actor.check("events:report")
    if (actor is None or actor.role == Role.CITIZEN) and data.channel not in PUBLIC_CHANNELS:
        raise Forbidden(f"channel {data.channel!r} is for staff and systems")
    category = get_category_for_report(db, code=data.category_code, actor=actor)
    now = clock.now()
    event = Event(
        channel=str(data.channel), external_id=data.external_id, category_code=category.code,
        description=data.description, address=data.address, location_state=LocationState.MANUAL,
        status=Status.REPORTED, urgency=data.urgency or category.urgency or "normal",
        reporter_name=data.reporter_name, reporter_phone=data.reporter_phone,
        reporter_email=data.reporter_email,
        reporter_user_id=actor.user_id if actor is not None else None,
        created_at=now, updated_at=now, overdue=False, rework_count=0, result="", dispatch_reason="",
    )
    if data.lon is not None or data.lat is not None:
        if data.lon is None or data.lat is None:
            raise Invalid("give both lon and lat, or an address", field="location")
        apply_location(db, event=event, lon=data.lon, lat=data.lat, crs=data.crs)
    elif data.address:
        # A known place locates the event; a township name is only a hint (manual queue).
        event.township_code = match_address(db, address=data.address, event=event)
    else:
        raise Invalid("a location is required: lon and lat, or an address", field="location")
    workflow.enter_stage(event, category, Stage.ACCEPT, now)
    # The audit entry below locks the chain until commit anyway; on PostgreSQL take that lock
    # first, so concurrent reports queue once instead of racing for the same tracking number.
    audit.lock_chain(db)
    _insert_with_tracking_no(db, event, now)
    who = actor.label if actor is not None else "public"
    _log(db, event, actor=who, action="report", at=now, from_status=None, to_status=event.status,
         data={"channel": event.channel, "location_state": event.location_state})
    # No flush of its own: the event row exists (it has its id); the timeline entry is written
    # with the audit entry's flush, or with the next one.
    audit.record(db, actor=actor or system_actor("public"), action="event.report", object_type="event",
                 object_id=event.id, after={
                     "tracking_no": event.tracking_no, "channel": event.channel,
                     "category_code": event.category_code, "township_code": event.township_code,
                     "location_state": event.location_state, "status": event.status,
                     "reporter_phone": mask_phone(event.reporter_phone) if event.reporter_phone else ""})
    if event.channel in AUTO_ACCEPT_CHANNELS and event.location_state == LocationState.LOCATED:
        _apply(db, event, action="accept", actor=system_actor(AUTO_ACTOR),
               note="machine channel: accepted automatically", data={})
        _auto_dispatch(db, event)
    live.queue_change(db, event=event, action="report")
    return event


# --- reading ------------------------------------------------------------------------------------


def get_event(db: Session, *, event_id: int) -> Event:
    event = db.get(Event, event_id)
    if event is None:
        raise NotFound(f"event {event_id} does not exist")
    return event


def get_by_tracking(db: Session, *, tracking_no: str) -> Event:
    event = db.scalar(select(Event).where(Event.tracking_no == tracking_no.strip().upper()))
    if event is None:
        raise NotFound(f"no event has tracking number {tracking_no!r}")
    return event


def get_by_external_id(db: Session, *, channel: str, external_id: str) -> Event | None:
    return db.scalar(select(Event).where(Event.channel == channel, Event.external_id == external_id)
                     .order_by(Event.id).limit(1))


def _visibility(db: Session, actor: Actor) -> Any:
    """A WHERE clause limiting events to what the actor may read (None: everything)."""
    actor.check("events:read")
    if actor.sees_all_departments:
        return None
    if actor.role == Role.GRID_WORKER:
        township = _actor_township(db, actor)
        own = Event.reporter_user_id == actor.user_id
        return or_(own, Event.township_code == township) if township else own
    if actor.department_id is None:
        return Event.id.is_(None)
    assisting = exists().where(EventAssignment.event_id == Event.id,
                               EventAssignment.department_id == actor.department_id)
    return or_(Event.department_id == actor.department_id, assisting)


def _actor_township(db: Session, actor: Actor) -> str | None:
    if actor.department_id is None:
        return None
    return org_service.get_department(db, department_id=actor.department_id).division_code


def check_can_read(db: Session, *, event: Event, actor: Actor) -> None:
    clause = _visibility(db, actor)
    if clause is not None and db.scalar(select(Event.id).where(Event.id == event.id, clause)) is None:
        raise Forbidden("this event belongs to another department")


def list_events(
    db: Session, *, actor: Actor, status: str | Sequence[str] | None = None, category_code: str | None = None,
    township_code: str | None = None, department_id: int | None = None, overdue: bool | None = None,
    since: datetime | None = None, until: datetime | None = None, ids: Sequence[int] | None = None,
    limit: int = 100, offset: int = 0,
) -> list[Event]:
    q = select(Event)
    if (clause := _visibility(db, actor)) is not None:
        q = q.where(clause)
    if status:
        q = q.where(Event.status.in_([status] if isinstance(status, str) else list(status)))
    if category_code:
        q = q.where(Event.category_code == category_code)
    if township_code:
        q = q.where(Event.township_code == township_code)
    if department_id is not None:
        q = q.where(Event.department_id == department_id)
    if overdue is not None:
        late = or_(Event.overdue.is_(True), Event.due_at < clock.now())
        running = Event.status.in_([s.value for s in OPEN_STATUSES if s != Status.SUSPENDED])
        q = q.where(late, running) if overdue else q.where(~(late & running))
    if since is not None:
        q = q.where(Event.created_at >= since)
    if until is not None:
        q = q.where(Event.created_at < until)
    if ids is not None:
        q = q.where(Event.id.in_(list(ids)))
    q = q.order_by(Event.created_at.desc(), Event.id.desc()).limit(min(max(limit, 1), 1000)).offset(max(offset, 0))
    return list(db.scalars(q))


def timeline(db: Session, *, event_id: int) -> list[EventLog]:
    get_event(db, event_id=event_id)
    return list(db.scalars(select(EventLog).where(EventLog.event_id == event_id)
                           .order_by(EventLog.at, EventLog.id)))


def assignments(db: Session, *, event_id: int) -> list[EventAssignment]:
    return list(db.scalars(select(EventAssignment).where(EventAssignment.event_id == event_id)
                           .order_by(EventAssignment.id)))


# --- transitions --------------------------------------------------------------------------------


def transition(db: Session, *, event_id: int, action: str, actor: Actor, expected_version: int | None = None,
               note: str = "", **data: Any) -> Event:
    """Apply one workflow action. Refused actions raise and change nothing."""
    event = get_event(db, event_id=event_id)
    if expected_version is not None and expected_version != event.version:
        raise Conflict(f"event {event.tracking_no} was changed by someone else (version {event.version}, "
                       f"you had {expected_version}); reload it and try again",
                       version=event.version)
    _apply(db, event, action=action, actor=actor, note=note, data=data)
    if action in ("accept", "locate"):
        _auto_dispatch(db, event)
    live.queue_change(db, event=event, action=action)  # announced on commit (event.changed)
    return event


def _apply(db: Session, event: Event, *, action: str, actor: Actor, note: str, data: dict[str, Any],
           choice: tuple[Any, str] | None = None) -> None:
    data = dict(data)
    reason = str(data.pop("reason", "") or "").strip() or note.strip()
    step = workflow.check(db, event=event, action=action, actor=actor, reason=reason, data=data)
    category = db.get(EventCategory, event.category_code)
    assert category is not None  # the foreign key guarantees it
    before = _snapshot(event)
    ctx = workflow.Context(db=db, event=event, category=category, actor=actor, now=clock.now(),
                           reason=reason, data=data, choice=choice)
    from_status, to_status = workflow.apply(ctx, step)
    _log(db, event, actor=actor.label, action=action, at=ctx.now, from_status=from_status,
         to_status=to_status, note=note.strip() or (reason if "reason" in step.needs else ""),
         data=ctx.log_data)
    tracking_no = event.tracking_no
    try:
        db.flush()
    except StaleDataError:
        raise Conflict(f"event {tracking_no} was changed by someone else at the same moment; "
                       "reload it and try again") from None
    audit.record(db, actor=actor, action=f"event.{action}", object_type="event", object_id=event.id,
                 before=before, after=_snapshot(event) | ({"reason": reason} if reason else {}))


def _auto_dispatch(db: Session, event: Event) -> None:
    """A located, accepted event is registered and dispatched by the rules at once."""
    if event.status != Status.ACCEPTED or event.location_state != LocationState.LOCATED:
        return
    auto = system_actor(AUTO_ACTOR)
    _apply(db, event, action="register", actor=auto, note="located and accepted: registered automatically",
           data={})
    from . import dispatch

    try:
        # Rules and departments are not among the pending changes (the register above has been
        # flushed; only its audit entry waits): reading them need not flush first.
        with db.no_autoflush:
            choice = dispatch.choose_department(db, event=event)
    except Invalid as exc:  # no department: the command centre dispatches by hand
        _log(db, event, actor=auto.label, action="note", at=clock.now(), from_status=event.status,
             to_status=event.status, note=f"automatic dispatch not possible: {exc.message}")
        db.flush()
        return
    # The department just chosen is the one the dispatch applies: no second rule lookup.
    _apply(db, event, action="dispatch", actor=auto, note="", data={}, choice=choice)
