"""Alarms raised and cleared by rules, persisted in ``iot_alarm`` and announced through the outbox.

The database is the one alarm book shared by every ingestion worker: the partial unique index
``uq_iot_alarm_active`` keeps at most one active alarm per (rule, device), so a repeated raise
only counts. Alarm changes of dispatching rules are written to the outbox in the caller's
transaction, which is what makes "alarm stored" and "event will be opened" one fact.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from citybrain.core import audit, outbox
from citybrain.core.actor import system_actor

from .alarms import (
    ALARM_CLEARED,
    ALARM_RAISED,
    Alarm,
    AlarmStatus,
    cleared_payload,
    raised_payload,
    transition,
)
from .models import AlarmRecord
from .rules import Severity, Signal

IOT_ACTOR = "iot-hub"
ACTIVE = (AlarmStatus.ACTIVE_UNACK.value, AlarmStatus.ACTIVE_ACK.value)


def to_alarm(row: AlarmRecord) -> Alarm:
    return Alarm(id=row.id, rule_id=row.rule_id, device_id=row.device_key, product=row.product,
                 severity=Severity(row.severity), category_code=row.category_code, dispatch=row.dispatch,
                 message=row.message, value=row.value, status=AlarmStatus(row.status), raised_at=row.raised_at,
                 last_seen=row.last_seen, count=row.count, acknowledged_at=row.acknowledged_at,
                 acknowledged_by=row.acknowledged_by, cleared_at=row.cleared_at, cleared_by=row.cleared_by,
                 lon=row.lon, lat=row.lat)


def active_alarm(db: Session, rule_id: str, device_key: str) -> AlarmRecord | None:
    return db.scalar(select(AlarmRecord).where(AlarmRecord.rule_id == rule_id, AlarmRecord.device_key == device_key,
                                               AlarmRecord.status.in_(ACTIVE)))


def _json_value(value: Any) -> Any:
    return value if isinstance(value, int | float | str | bool) or value is None else str(value)


def raise_alarm(db: Session, signal: Signal, *, lon: float | None, lat: float | None) -> int:
    """Open an alarm for a raise signal, or count it on the active one; returns 1 if opened."""
    current = active_alarm(db, signal.rule.id, signal.device)
    if current is not None:
        current.count += 1
        current.last_seen = max(current.last_seen, signal.at)
        return 0
    rule = signal.rule
    row = AlarmRecord(id=f"ALM-{uuid.uuid4().hex[:20]}", rule_id=rule.id, device_key=signal.device,
                      product=signal.product, severity=rule.severity.value, category_code=rule.category_code,
                      dispatch=rule.dispatch, message=signal.message[:500], value=_json_value(signal.value),
                      status=AlarmStatus.ACTIVE_UNACK.value, raised_at=signal.at, last_seen=signal.at, count=1,
                      lon=lon, lat=lat)
    try:
        with db.begin_nested():
            db.add(row)
            db.flush()
    except IntegrityError:  # another worker opened it a moment ago
        current = active_alarm(db, rule.id, signal.device)
        if current is not None:
            current.count += 1
        return 0
    audit.record(db, actor=system_actor(IOT_ACTOR), action="iot.alarm_raised", object_type="iot_alarm",
                 object_id=row.id, after={"rule": rule.id, "device": signal.device, "severity": row.severity,
                                          "message": row.message, "dispatch": row.dispatch})
    if rule.dispatch:
        outbox.enqueue(db, ALARM_RAISED, raised_payload(to_alarm(row)))
    return 1


def clear_alarm_by_rule(db: Session, signal: Signal) -> int:
    """The rule's condition ended: clear the active alarm, if any; returns 1 if one was cleared."""
    row = active_alarm(db, signal.rule.id, signal.device)
    if row is None:
        return 0
    row.status = transition(AlarmStatus(row.status), "clear", alarm_id=row.id).value
    row.cleared_at = signal.at
    row.cleared_by = None
    db.flush()
    audit.record(db, actor=system_actor(IOT_ACTOR), action="iot.alarm_cleared", object_type="iot_alarm",
                 object_id=row.id, after={"status": row.status, "by": "rule"})
    if row.dispatch:
        outbox.enqueue(db, ALARM_CLEARED, cleared_payload(to_alarm(row)))
    return 1
