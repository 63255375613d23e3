"""Cross-domain work of the event command: sensor alarms from the IoT hub become events.

Contract (documented in docs/events.md): the IoT hub publishes on the bus

- ``alarm.raised`` with ``alarm_id, device_id, product, category_code, lon, lat, severity,
  message, raised_at`` — opens one event (channel ``sensor``, ``external_id`` = alarm id).
  Delivering the same alarm again changes nothing: the alarm id is the idempotency key.
- ``alarm.cleared`` with ``alarm_id, device_id, cleared_at`` (other fields optional) — adds a
  note to that event's timeline (once). Clearing does not close the event: a person still
  verifies that the cause is gone.

Listeners run in the publisher's thread and open their own session (``install``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from citybrain.core import audit, bus, clock
from citybrain.core.actor import system_actor
from citybrain.core.errors import Invalid

from . import service
from .enums import Channel
from .models import Event, EventLog
from .schemas import MAX_DESCRIPTION, EventReportIn

log = logging.getLogger("citybrain.events.flows")

ALARM_RAISED = "alarm.raised"
ALARM_CLEARED = "alarm.cleared"
IOT_ACTOR = "iot-hub"
# ThingsBoard-style severities → event urgency; others keep the category's urgency.
SEVERITY_URGENCY = {"critical": "critical", "major": "urgent"}


def _plain(text: object) -> str:
    # Device messages are not trusted to be plain text; the intake model refuses HTML.
    return str(text or "").replace("<", "‹").replace(">", "›").strip()


def _alarm_id(payload: dict[str, Any]) -> str:
    alarm_id = str(payload.get("alarm_id") or "").strip()
    if not alarm_id:
        raise Invalid("alarm payload without alarm_id")
    return alarm_id[:64]


def handle_alarm_raised(db: Session, *, payload: dict[str, Any]) -> Event:
    alarm_id = _alarm_id(payload)
    existing = service.get_by_external_id(db, channel=Channel.SENSOR, external_id=alarm_id)
    if existing is not None:
        return existing
    severity = str(payload.get("severity") or "").lower()
    text = (f"[{severity or 'alarm'}] {_plain(payload.get('message')) or 'sensor alarm'} "
            f"(device {_plain(payload.get('device_id'))}, product {_plain(payload.get('product'))}, "
            f"alarm {alarm_id}, raised {_plain(payload.get('raised_at'))})")
    data = EventReportIn(
        channel=Channel.SENSOR, category_code=str(payload.get("category_code") or ""),
        description=text[:MAX_DESCRIPTION], lon=payload.get("lon"), lat=payload.get("lat"),
        crs=str(payload.get("crs") or "wgs84"), external_id=alarm_id,
        urgency=SEVERITY_URGENCY.get(severity),
    )
    return service.report(db, data=data, actor=system_actor(IOT_ACTOR))


def handle_alarm_cleared(db: Session, *, payload: dict[str, Any]) -> Event | None:
    alarm_id = _alarm_id(payload)
    event = service.get_by_external_id(db, channel=Channel.SENSOR, external_id=alarm_id)
    if event is None:
        log.info("alarm %s cleared but no event was opened for it", alarm_id)
        return None
    already = db.scalar(select(EventLog.id).where(EventLog.event_id == event.id,
                                                   EventLog.action == "alarm_cleared"))
    if already is not None:
        return event
    cleared_at = _plain(payload.get("cleared_at"))
    db.add(EventLog(event_id=event.id, at=clock.now(), actor=IOT_ACTOR, action="alarm_cleared",
                    from_status=event.status, to_status=event.status,
                    note=f"sensor alarm {alarm_id} cleared at {cleared_at or 'unknown time'}",
                    data={"alarm_id": alarm_id, "cleared_at": cleared_at or None}))
    db.flush()
    audit.record(db, actor=system_actor(IOT_ACTOR), action="event.alarm_cleared", object_type="event",
                 object_id=event.id, after={"alarm_id": alarm_id, "status": event.status})
    return event


def install(session_factory: Callable[[], Session], on: bus.Bus = bus.default_bus) -> Callable[[], None]:
    """Subscribe the alarm handlers; each delivery runs in its own transaction. Returns unsubscribe."""

    def listener(handler: Callable[..., Any]) -> Callable[[dict[str, Any]], None]:
        def run(payload: dict[str, Any]) -> None:
            db = session_factory()
            try:
                handler(db, payload=payload)
                db.commit()
            except BaseException:
                db.rollback()
                raise
            finally:
                db.close()

        run.__name__ = handler.__name__
        return run

    stops = [on.listen(ALARM_RAISED, listener(handle_alarm_raised)),
             on.listen(ALARM_CLEARED, listener(handle_alarm_cleared))]

    def uninstall() -> None:
        for stop in stops:
            stop()

    return uninstall
