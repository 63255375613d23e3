"""Time-limit supervision (督办): deadline warnings, overdue marking and automatic supervision.

``run_supervision(db, now=...)`` looks at every running event with a deadline:

* past ``warning_at`` (``WARNING_FRACTION`` of the stage's time, counted in working time for
  working-time limits) and not yet warned in this stage → a ``deadline_warning`` timeline entry;
* past ``due_at`` and not yet marked → ``overdue = True``, an ``overdue`` timeline entry, an
  ``event.overdue`` audit entry, and an automatic supervision (督办) entry ``supervision``
  addressed to the lead department and the command centre, announced on the bus as
  ``event.supervised``.

It is idempotent: a second run at the same moment changes nothing. Marking overdue is a
conditional ``UPDATE … WHERE overdue = false`` that does not bump the event's ``version``: a
derived flag must not turn a person's pending action into a conflict. ``supervise_forever``
runs it every ``INTERVAL_S`` seconds inside the web application (started in the lifespan).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from citybrain.core import audit, bus, clock
from citybrain.core.actor import system_actor
from citybrain.org import service as org_service

from . import service, timelimits
from .enums import Status, TimeUnit
from .models import Event, EventCategory, EventLog

log = logging.getLogger("citybrain.events.supervision")

WARNING_FRACTION = 0.8
INTERVAL_S = 60.0
COMMAND_CENTRE = "command-centre"
SUPERVISION_ACTOR = "supervision"
RUNNING = (Status.REPORTED, Status.ACCEPTED, Status.REGISTERED, Status.DISPATCHED, Status.IN_PROGRESS,
           Status.HANDLED, Status.VERIFIED)  # open and not suspended: their clock is running
_PG_LOCK_KEY = 0x7375707276  # "suprv": one supervisor at a time across worker processes


@dataclass
class EventSupervised:
    """``event.supervised`` — fired when an event passes its stage deadline and automatic
    supervision (督办) is sent to its lead department and the command centre."""

    event_id: int
    tracking_no: str
    stage: str | None
    due_at: str
    department_id: int | None
    department_code: str | None
    addressed_to: list[str]
    at: str
    name: str = "event.supervised"

    def payload(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "name"}


def _warning_at(event: Event, category: EventCategory | None) -> datetime | None:
    if event.due_at is None or event.stage_started_at is None:
        return None
    limit = ((category.time_limits if category else None) or {}).get(event.stage or "") or {}
    natural = limit.get("unit") == TimeUnit.NATURAL_HOURS
    calendar = None if natural else timelimits.DEFAULT
    return timelimits.warning_at(event.stage_started_at, event.due_at, WARNING_FRACTION, calendar=calendar)


def _warned_this_stage(db: Session, events: list[Event]) -> set[int]:
    if not events:
        return set()
    started = {e.id: e.stage_started_at for e in events}
    rows = db.execute(select(EventLog.event_id, EventLog.at).where(
        EventLog.action == "deadline_warning", EventLog.event_id.in_(list(started))))
    return {eid for eid, at in rows if started[eid] is not None and at >= started[eid]}


def _locked_out(db: Session) -> bool:
    """On PostgreSQL, another process already supervising this moment: skip this round."""
    if db.get_bind().dialect.name != "postgresql":
        return False
    return not db.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})


def run_supervision(db: Session, *, now: datetime | None = None) -> dict[str, Any]:
    """One supervision round; returns counts and the tracking numbers touched."""
    now = now or clock.now()
    result: dict[str, Any] = {"checked": 0, "warned": [], "overdue": [], "supervised": []}
    if _locked_out(db):
        result["skipped"] = "another supervisor holds the lock"
        return result
    events = list(db.scalars(select(Event).where(
        Event.status.in_([str(s) for s in RUNNING]), Event.due_at.is_not(None), Event.overdue.is_(False))
        .order_by(Event.due_at, Event.id)))
    result["checked"] = len(events)
    categories = {c.code: c for c in db.scalars(select(EventCategory))}
    late = [e for e in events if now > e.due_at]  # type: ignore[operator]
    for event in late:
        if _mark_overdue(db, event, now):
            result["overdue"].append(event.tracking_no)
            result["supervised"].append(event.tracking_no)
    on_time = [e for e in events if e not in late]
    warned = _warned_this_stage(db, on_time)
    for event in on_time:
        if event.id in warned:
            continue
        when = _warning_at(event, categories.get(event.category_code))
        if when is not None and now >= when:
            _warn(db, event, now, when)
            result["warned"].append(event.tracking_no)
    db.flush()
    return result


def _warn(db: Session, event: Event, now: datetime, when: datetime) -> None:
    left = timelimits.remaining(now, event.due_at)  # type: ignore[arg-type]
    service._log(db, event, actor=SUPERVISION_ACTOR, action="deadline_warning", at=now,  # noqa: SLF001
                 from_status=event.status, to_status=event.status,
                 note=f"deadline approaching: {event.stage} due {event.due_at.isoformat()}",  # type: ignore[union-attr]
                 data={"stage": event.stage, "due_at": event.due_at.isoformat(),  # type: ignore[union-attr]
                       "warning_at": when.isoformat(), "remaining_s": round(left.total_seconds())})


def _mark_overdue(db: Session, event: Event, now: datetime) -> bool:
    """Flip the flag once; False when another run (or a person) got there first."""
    done = db.execute(update(Event).where(Event.id == event.id, Event.overdue.is_(False),
                                          Event.due_at == event.due_at)
                      .values(overdue=True).execution_options(synchronize_session=False))
    if done.rowcount != 1:  # type: ignore[attr-defined]
        return False
    # The UPDATE bypassed the ORM: tell the loaded object without marking it dirty.
    from sqlalchemy.orm.attributes import set_committed_value

    set_committed_value(event, "overdue", True)
    due = event.due_at.isoformat()  # type: ignore[union-attr]
    department = org_service.get_department(db, department_id=event.department_id) if event.department_id else None
    addressed = ([department.code] if department else []) + [COMMAND_CENTRE]
    actor = system_actor(SUPERVISION_ACTOR)
    service._log(db, event, actor=actor.label, action="overdue", at=now, from_status=event.status,  # noqa: SLF001
                 to_status=event.status, note=f"stage {event.stage} overdue since {due}",
                 data={"stage": event.stage, "due_at": due})
    note = f"督办: {event.tracking_no} stage {event.stage} passed its deadline {due}"
    service._log(db, event, actor=actor.label, action="supervision", at=now,  # noqa: SLF001
                 from_status=event.status, to_status=event.status, note=note,
                 data={"stage": event.stage, "due_at": due, "addressed_to": addressed})
    audit.record(db, actor=actor, action="event.overdue", object_type="event", object_id=event.id,
                 after={"status": event.status, "stage": event.stage, "due_at": due, "overdue": True,
                        "supervised": addressed})
    message = EventSupervised(event_id=event.id, tracking_no=event.tracking_no, stage=event.stage, due_at=due,
                              department_id=event.department_id,
                              department_code=department.code if department else None,
                              addressed_to=addressed, at=now.isoformat())
    bus.publish(message.name, message.payload())
    return True


# --- the periodic task ------------------------------------------------------------------------


def run_once(session_factory: Callable[[], Session], *, now: datetime | None = None) -> dict[str, Any]:
    """One round in its own transaction (the job owns it): commit on success, roll back on error."""
    db = session_factory()
    try:
        result = run_supervision(db, now=now)
        db.commit()
        return result
    except BaseException:
        db.rollback()
        raise
    finally:
        db.close()


async def supervise_forever(session_factory: Callable[[], Session], *, interval_s: float = INTERVAL_S,
                            first_delay_s: float | None = None) -> None:
    """Run a round every ``interval_s`` seconds until cancelled; a failing round is logged and
    the next one still runs. The database work runs in a thread so requests are not blocked."""
    await asyncio.sleep(interval_s if first_delay_s is None else first_delay_s)
    while True:
        try:
            result = await asyncio.to_thread(run_once, session_factory)
            if result["overdue"] or result["warned"]:
                log.info("supervision: %d overdue, %d warned", len(result["overdue"]), len(result["warned"]))
        except Exception:  # noqa: BLE001 - a bad round must not stop supervision
            log.exception("supervision round failed")
        await asyncio.sleep(interval_s)


def start(session_factory: Callable[[], Session], *, interval_s: float = INTERVAL_S,
          first_delay_s: float | None = None) -> Callable[[], Any]:
    """Start the periodic task on the running loop; returns an async ``stop`` that cancels it."""
    task = asyncio.get_running_loop().create_task(
        supervise_forever(session_factory, interval_s=interval_s, first_delay_s=first_delay_s),
        name="citybrain-supervision")

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return stop
