"""What the staff console reads and does: device history series, the alarm console (list,
acknowledge, clear) and the dead-letter store.

History picks its source by the span asked for, so a chart never pulls more than a few
thousand points: raw ``iot_telemetry`` rows for short spans, 1-min rollups up to two days,
1-h rollups beyond. Rollups are computed behind real time (``iot_rollup_mark.done_until``);
the part of a span they do not cover yet is aggregated from raw rows in SQL, bucket for
bucket, so a chart reaches up to now and looks the same whichever source filled it.

Alarms change state only through ``alarms.transition`` (the one lifecycle table). Department
staff see and act on the alarms of their own department's devices.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, false, func, or_, select
from sqlalchemy.orm import Session

from citybrain.core import audit, clock, outbox
from citybrain.core.actor import Actor
from citybrain.core.errors import Invalid

from . import alarm_store, alarms
from .alarms import AlarmNotFound, AlarmStatus
from .models import AlarmRecord, DeadLetter, Device, DeviceState, Rollup, RollupMark, Telemetry
from .rules import Severity
from .thingmodel import Product, PropertyType

# --- history --------------------------------------------------------------------------------

RAW_MAX_SPAN_MS = 3 * 3600 * 1000  # up to 3 h: every reading
MINUTE_MAX_SPAN_MS = 2 * 86400 * 1000  # up to 2 days: 1-min rollups; beyond: 1-h rollups
MAX_SPAN_MS = 400 * 86400 * 1000
RAW_POINT_LIMIT = 20_000
NUMERIC = (PropertyType.INT, PropertyType.FLOAT)
RANGES_MS = {"1h": 3600 * 1000, "24h": 86400 * 1000, "7d": 7 * 86400 * 1000, "30d": 30 * 86400 * 1000}


@dataclass(frozen=True, slots=True)
class Point:
    t: int  # epoch ms: the reading, or the start of its bucket
    avg: float
    min: float
    max: float
    count: int


@dataclass(frozen=True)
class Series:
    prop: str
    source: str  # "raw" | "rollup"
    period_s: int | None  # bucket length; None for raw readings
    points: list[Point]
    aggregated_from_ms: int | None = None  # rollups not computed from here on: raw rows aggregated

    def as_json(self) -> dict[str, Any]:
        return {"prop": self.prop, "source": self.source, "period_s": self.period_s,
                "aggregated_from_ms": self.aggregated_from_ms,
                "points": [[p.t, p.avg, p.min, p.max, p.count] for p in self.points]}


def numeric_property(product: Product | None, prop: str) -> None:
    """Refuse a property the chart cannot draw (unknown, or not a number)."""
    found = product.get_property(prop) if product is not None else None
    if found is None:
        raise Invalid(f"unknown property {prop!r}" + (f" for product {product.identifier!r}" if product else ""))
    if found.type not in NUMERIC:
        raise Invalid(f"property {prop!r} is {found.type.value}, not a number: it has no history chart")


def period_for(span_ms: int) -> int | None:
    """The rollup period (s) a span is drawn from; None: raw readings."""
    if span_ms <= RAW_MAX_SPAN_MS:
        return None
    return 60 if span_ms <= MINUTE_MAX_SPAN_MS else 3600


def history(db: Session, device: Device, prop: str, start_ms: int, end_ms: int) -> Series:
    """The numeric series of ``prop`` on ``device`` in [start_ms, end_ms), from the right source."""
    if end_ms <= start_ms:
        raise Invalid("the end of a history range must be after its start")
    if end_ms - start_ms > MAX_SPAN_MS:
        raise Invalid("a history range may cover at most 400 days")
    period = period_for(end_ms - start_ms)
    if period is None:
        return Series(prop, "raw", None, _raw(db, device.id, prop, start_ms, end_ms))
    covered = _rollups_until(db, device.id, prop, period, start_ms, end_ms)
    points = _rollups(db, device.id, prop, period, start_ms, covered) if covered > start_ms else []
    tail_from = max(start_ms, covered)
    tail = _aggregate_raw(db, device.id, prop, period, tail_from, end_ms) if tail_from < end_ms else []
    return Series(prop, "rollup", period, points + tail, aggregated_from_ms=tail_from if tail_from < end_ms else None)


def _value(prop: str) -> Any:
    return Telemetry.data[prop].as_float()


def _raw(db: Session, device_id: int, prop: str, start_ms: int, end_ms: int) -> list[Point]:
    value = _value(prop)
    rows = db.execute(
        select(Telemetry.ts, value)
        .where(Telemetry.device_id == device_id, Telemetry.ts >= start_ms, Telemetry.ts < end_ms, value.is_not(None))
        .order_by(Telemetry.ts).limit(RAW_POINT_LIMIT)
    ).all()
    return [Point(ts, float(v), float(v), float(v), 1) for ts, v in rows]


def _rollups_until(db: Session, device_id: int, prop: str, period: int, start_ms: int, end_ms: int) -> int:
    """Up to where (epoch ms, exclusive) rollups of ``period`` can be trusted for this range."""
    done = db.scalar(select(RollupMark.done_until).where(RollupMark.period == period))
    if done is not None:
        return min(int(done), end_ms)
    # No mark (rollups written by something that keeps none): trust what is there.
    last = db.scalar(select(func.max(Rollup.bucket)).where(
        Rollup.device_id == device_id, Rollup.prop == prop, Rollup.period == period,
        Rollup.bucket >= start_ms - period * 1000, Rollup.bucket < end_ms))
    return start_ms if last is None else min(int(last) + period * 1000, end_ms)


def _rollups(db: Session, device_id: int, prop: str, period: int, start_ms: int, end_ms: int) -> list[Point]:
    rows = db.execute(
        select(Rollup.bucket, Rollup.sum, Rollup.min, Rollup.max, Rollup.count)
        .where(Rollup.device_id == device_id, Rollup.prop == prop, Rollup.period == period,
               Rollup.bucket >= start_ms - start_ms % (period * 1000), Rollup.bucket < end_ms, Rollup.count > 0)
        .order_by(Rollup.bucket)
    ).all()
    return [Point(int(b), s / n, float(lo), float(hi), int(n)) for b, s, lo, hi, n in rows]


def _aggregate_raw(db: Session, device_id: int, prop: str, period: int, start_ms: int, end_ms: int) -> list[Point]:
    width = period * 1000
    value = _value(prop)
    bucket = (Telemetry.ts - Telemetry.ts % width).label("bucket")
    rows = db.execute(
        select(bucket, func.avg(value), func.min(value), func.max(value), func.count(value))
        .where(Telemetry.device_id == device_id, Telemetry.ts >= start_ms, Telemetry.ts < end_ms, value.is_not(None))
        .group_by(bucket).order_by(bucket)
    ).all()
    return [Point(int(b), float(a), float(lo), float(hi), int(n)) for b, a, lo, hi, n in rows]


def range_bounds(name: str, *, now_ms: int | None = None) -> tuple[int, int]:
    """A named range ("1h", "24h", "7d", "30d") ending now, as [start_ms, end_ms)."""
    if name not in RANGES_MS:
        raise Invalid(f"range must be one of {', '.join(RANGES_MS)}, not {name!r}")
    end = now_ms if now_ms is not None else int(clock.now().timestamp() * 1000)
    return end - RANGES_MS[name], end + 1


# --- alarms ---------------------------------------------------------------------------------

STATUS_GROUPS = {
    "active": (AlarmStatus.ACTIVE_UNACK, AlarmStatus.ACTIVE_ACK),
    "unacknowledged": (AlarmStatus.ACTIVE_UNACK, AlarmStatus.CLEARED_UNACK),
    "cleared": (AlarmStatus.CLEARED_UNACK, AlarmStatus.CLEARED_ACK),
}


def _scoped(query: Select[Any], actor: Actor) -> Select[Any]:
    if actor.sees_all_departments:
        return query
    return query.where(Device.department_id == actor.department_id)


def list_alarms(db: Session, *, actor: Actor, status: str | None = None, severity: str | None = None,
                product: str | None = None, device_key: str | None = None, limit: int = 50, offset: int = 0
                ) -> tuple[list[tuple[AlarmRecord, Device | None]], int]:
    """Alarms the actor may see, newest first, with their device (None if it was removed).

    ``status``: one status value, or a group: ``active``, ``unacknowledged``, ``cleared``.
    """
    query = select(AlarmRecord, Device).outerjoin(Device, Device.key == AlarmRecord.device_key)
    query = _scoped(query, actor)
    if status:
        statuses = STATUS_GROUPS.get(status) or ((AlarmStatus(status),) if status in set(AlarmStatus) else None)
        if statuses is None:
            raise Invalid(f"unknown alarm status {status!r}; use one of "
                          f"{', '.join([*STATUS_GROUPS, *AlarmStatus])}")
        query = query.where(AlarmRecord.status.in_([str(s) for s in statuses]))
    if severity:
        if severity not in set(Severity):
            raise Invalid(f"unknown severity {severity!r}; use one of {', '.join(Severity)}")
        query = query.where(AlarmRecord.severity == severity)
    if product:
        query = query.where(AlarmRecord.product == product)
    if device_key:
        query = query.where(AlarmRecord.device_key == device_key)
    total = db.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = db.execute(query.order_by(AlarmRecord.raised_at.desc(), AlarmRecord.id).limit(limit).offset(offset)).all()
    return [(a, d) for a, d in rows], total


def alarm_counts(db: Session, *, actor: Actor) -> dict[str, int]:
    """Alarms per status the actor may see."""
    query = _scoped(select(AlarmRecord.status, func.count())
                    .select_from(AlarmRecord).outerjoin(Device, Device.key == AlarmRecord.device_key), actor)
    return {status: count for status, count in db.execute(query.group_by(AlarmRecord.status))}


def _alarm_for_update(db: Session, alarm_id: str, actor: Actor) -> tuple[AlarmRecord, AlarmStatus]:
    row = db.scalar(select(AlarmRecord).where(AlarmRecord.id == alarm_id).with_for_update())
    if row is None:
        raise AlarmNotFound(f"no alarm {alarm_id!r}", alarm_id=alarm_id)
    department_id = db.scalar(select(Device.department_id).where(Device.key == row.device_key))
    actor.check_department(department_id)
    return row, AlarmStatus(row.status)


def acknowledge_alarm(db: Session, alarm_id: str, actor: Actor) -> AlarmRecord:
    """Someone has seen the alarm: ACTIVE_UNACK → ACTIVE_ACK, CLEARED_UNACK → CLEARED_ACK."""
    row, status = _alarm_for_update(db, alarm_id, actor)
    nxt = alarms.transition(status, "acknowledge", alarm_id=alarm_id)  # Conflict: nothing changed
    row.status, row.acknowledged_at, row.acknowledged_by = str(nxt), clock.now(), actor.label
    db.flush()
    audit.record(db, actor=actor, action="iot.alarm_acknowledged", object_type="iot_alarm", object_id=alarm_id,
                 before={"status": str(status)}, after={"status": str(nxt)})
    return row


def clear_alarm(db: Session, alarm_id: str, actor: Actor) -> AlarmRecord:
    """A person clears an active alarm from the console: ACTIVE_UNACK → CLEARED_UNACK,
    ACTIVE_ACK → CLEARED_ACK. A dispatching alarm announces ``alarm.cleared`` (outbox, same
    transaction), so the event opened for it records the clear."""
    row, status = _alarm_for_update(db, alarm_id, actor)
    nxt = alarms.transition(status, "clear", alarm_id=alarm_id)
    row.status, row.cleared_at, row.cleared_by = str(nxt), clock.now(), actor.label
    db.flush()
    audit.record(db, actor=actor, action="iot.alarm_cleared", object_type="iot_alarm", object_id=alarm_id,
                 before={"status": str(status)}, after={"status": str(nxt), "cleared_by": actor.label})
    if row.dispatch:
        outbox.enqueue(db, alarms.ALARM_CLEARED, alarms.cleared_payload(alarm_store.to_alarm(row)))
    return row


# --- dead letters -----------------------------------------------------------------------------


def _dead_letter_scope(query: Select[Any], actor: Actor) -> Select[Any]:
    """Staff see dead letters of their department's devices; messages naming no known device
    (unknown keys, bad topics) are the operators' (admins') to read."""
    if actor.sees_all_departments:
        return query
    own = select(Device.key).where(Device.department_id == actor.department_id)
    return query.where(DeadLetter.device_key.in_(own))


def list_dead_letters(db: Session, *, actor: Actor, code: str | None = None, device_key: str | None = None,
                      limit: int = 50, offset: int = 0) -> tuple[list[DeadLetter], int]:
    actor.check("iot:alarm")
    query = _dead_letter_scope(select(DeadLetter), actor)
    if code:
        query = query.where(DeadLetter.code == code)
    if device_key:
        query = query.where(DeadLetter.device_key == device_key)
    total = db.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = db.scalars(query.order_by(DeadLetter.received_at.desc(), DeadLetter.id.desc())
                      .limit(limit).offset(offset)).all()
    return list(rows), total


def dead_letter_counts(db: Session, *, actor: Actor, device_key: str | None = None) -> dict[str, int]:
    """Dead letters per reason code, most frequent first."""
    actor.check("iot:alarm")
    query = _dead_letter_scope(select(DeadLetter.code, func.count().label("n")), actor)
    if device_key:
        query = query.where(DeadLetter.device_key == device_key)
    rows = db.execute(query.group_by(DeadLetter.code).order_by(func.count().desc(), DeadLetter.code)).all()
    return {code: int(n) for code, n in rows}


# --- devices ----------------------------------------------------------------------------------


def is_online(last_seen_ms: int | None, product: Product | None, *, now_ms: int) -> bool:
    if last_seen_ms is None or product is None:
        return False
    return now_ms - last_seen_ms <= product.online_timeout_s * 1000


def _online(products: dict[str, Product], now_ms: int) -> Any:
    """SQL: the device was heard from within its product's online timeout."""
    per_product = [and_(Device.product == ident, DeviceState.last_seen >= now_ms - p.online_timeout_s * 1000)
                   for ident, p in products.items()]
    return or_(*per_product) if per_product else false()


@dataclass(frozen=True)
class DeviceFilters:
    product: str | None = None
    township: str | None = None
    state: str | None = None
    online: bool | None = None
    q: str | None = None


def _device_query(actor: Actor, f: DeviceFilters) -> Select[Any]:
    """Devices the actor may see (the rule of ``registry.list_devices``), filtered, but online."""
    query = select(Device, DeviceState).outerjoin(DeviceState, DeviceState.device_id == Device.id)
    if not actor.sees_all_departments:
        query = query.where(Device.department_id == actor.department_id)
    if f.product:
        query = query.where(Device.product == f.product)
    if f.township:
        query = query.where(Device.township_code == f.township)
    if f.state:
        query = query.where(Device.state == f.state)
    if f.q and f.q.strip():
        like = f"%{f.q.strip()}%"
        query = query.where(Device.key.ilike(like) | Device.name.ilike(like) | Device.address.ilike(like))
    return query


def list_devices(db: Session, *, actor: Actor, products: dict[str, Product], filters: DeviceFilters,
                 now_ms: int, limit: int = 50, offset: int = 0
                 ) -> tuple[list[tuple[Device, DeviceState | None]], int, dict[str, int]]:
    """One page of devices, the total matching, and counts (all, online, offline, alarming) of
    the devices matching every filter except online/offline."""
    base = _device_query(actor, filters)
    online = _online(products, now_ms)
    # A device never heard from has no state row: offline (NOT of NULL would drop it).
    offline = or_(DeviceState.last_seen.is_(None), ~online)
    query = base if filters.online is None else base.where(online if filters.online else offline)
    total = db.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = db.execute(query.order_by(Device.key).limit(limit).offset(offset)).all()
    ids = base.with_only_columns(Device.id)
    alarming = (select(func.count(func.distinct(AlarmRecord.device_key)))
                .where(AlarmRecord.status.in_([str(s) for s in STATUS_GROUPS["active"]]),
                       AlarmRecord.device_key.in_(base.with_only_columns(Device.key))))
    counts = {
        "all": db.scalar(select(func.count()).select_from(ids.subquery())) or 0,
        "online": db.scalar(select(func.count()).select_from(base.where(online).with_only_columns(Device.id)
                                                             .subquery())) or 0,
        "alarming": db.scalar(alarming) or 0,
    }
    counts["offline"] = counts["all"] - counts["online"]
    return [(d, s) for d, s in rows], total, counts


def active_alarm_keys(db: Session, keys: list[str]) -> set[str]:
    """Which of these devices have an active alarm."""
    if not keys:
        return set()
    return set(db.scalars(select(AlarmRecord.device_key).distinct().where(
        AlarmRecord.device_key.in_(keys), AlarmRecord.status.in_([str(s) for s in STATUS_GROUPS["active"]]))))
