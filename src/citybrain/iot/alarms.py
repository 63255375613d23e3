"""The alarm lifecycle as an explicit state machine, and an in-memory book of alarms.

::

    ACTIVE_UNACK --acknowledge--> ACTIVE_ACK --clear--> CLEARED_ACK
    ACTIVE_UNACK --clear--> CLEARED_UNACK --acknowledge--> CLEARED_ACK

``AlarmBook.apply`` turns rule ``Signal``s into alarms: a raise while an alarm for the same
rule and device is active only bumps ``count`` and ``last_seen``. Every change returns an
``AlarmChange`` saying what to publish; its payload follows the ``alarm.raised`` /
``alarm.cleared`` contract in docs/events.md (``events.flows``). Whether it reaches the bus is
the caller's choice (``change.publish``: only alarms of rules marked for dispatch).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from citybrain.core.errors import Conflict, NotFound

from .rules import Severity, Signal, SignalAction

__all__ = ["ALARM_CLEARED", "ALARM_RAISED", "Alarm", "AlarmBook", "AlarmChange", "AlarmNotFound",
           "AlarmStatus", "ChangeKind", "InvalidAlarmTransition", "Severity", "transition"]

# Bus event names; the same strings as events.flows, which listens to them.
ALARM_RAISED = "alarm.raised"
ALARM_CLEARED = "alarm.cleared"


class AlarmStatus(StrEnum):
    ACTIVE_UNACK = "active_unack"
    ACTIVE_ACK = "active_ack"
    CLEARED_UNACK = "cleared_unack"
    CLEARED_ACK = "cleared_ack"

    @property
    def active(self) -> bool:
        return self in (AlarmStatus.ACTIVE_UNACK, AlarmStatus.ACTIVE_ACK)


class ChangeKind(StrEnum):
    RAISED = "raised"
    REPEATED = "repeated"  # de-duplicated raise: count and last_seen bumped
    ACKNOWLEDGED = "acknowledged"
    CLEARED = "cleared"


class InvalidAlarmTransition(Conflict):
    """An action the alarm's current status does not allow."""


class AlarmNotFound(NotFound):
    pass


# (status, action) → next status; anything else is an invalid transition.
TRANSITIONS: dict[tuple[AlarmStatus, str], AlarmStatus] = {
    (AlarmStatus.ACTIVE_UNACK, "acknowledge"): AlarmStatus.ACTIVE_ACK,
    (AlarmStatus.ACTIVE_UNACK, "clear"): AlarmStatus.CLEARED_UNACK,
    (AlarmStatus.ACTIVE_ACK, "clear"): AlarmStatus.CLEARED_ACK,
    (AlarmStatus.CLEARED_UNACK, "acknowledge"): AlarmStatus.CLEARED_ACK,
}


def transition(status: AlarmStatus, action: str, *, alarm_id: str = "") -> AlarmStatus:
    nxt = TRANSITIONS.get((status, action))
    if nxt is None:
        allowed = sorted(a for (s, a) in TRANSITIONS if s is status) or ["nothing (final)"]
        raise InvalidAlarmTransition(
            f"alarm {alarm_id or '?'}: cannot {action} an alarm that is {status.value}; "
            f"allowed: {', '.join(allowed)}", alarm_id=alarm_id, status=status.value, action=action)
    return nxt


@dataclass(frozen=True)
class Alarm:
    id: str
    rule_id: str
    device_id: str
    product: str
    severity: Severity
    category_code: str | None
    dispatch: bool
    message: str
    value: Any
    status: AlarmStatus
    raised_at: datetime
    last_seen: datetime
    count: int = 1
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    cleared_at: datetime | None = None
    cleared_by: str | None = None  # None: cleared by its rule
    lon: float | None = None
    lat: float | None = None

    @property
    def active(self) -> bool:
        return self.status.active


@dataclass(frozen=True)
class AlarmChange:
    kind: ChangeKind
    alarm: Alarm  # the alarm after the change
    event: str | None = None  # ALARM_RAISED / ALARM_CLEARED, or None: nothing for the bus
    payload: dict[str, Any] | None = None

    @property
    def publish(self) -> bool:
        """True when the change belongs on the bus (through the outbox): dispatched rules only."""
        return self.event is not None and self.alarm.dispatch


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def raised_payload(alarm: Alarm) -> dict[str, Any]:
    """The ``alarm.raised`` payload of docs/events.md, plus rule_id, value and dispatch."""
    return {"alarm_id": alarm.id, "device_id": alarm.device_id, "product": alarm.product,
            "rule_id": alarm.rule_id, "severity": alarm.severity.value,
            "category_code": alarm.category_code, "message": alarm.message, "value": alarm.value,
            "lon": alarm.lon, "lat": alarm.lat, "raised_at": _iso(alarm.raised_at),
            "dispatch": alarm.dispatch}


def cleared_payload(alarm: Alarm) -> dict[str, Any]:
    return raised_payload(alarm) | {"cleared_at": _iso(alarm.cleared_at)}


class AlarmBook:
    """Alarms in memory, at most one active per (rule, device)."""

    def __init__(self, *, new_id: Callable[[], str] = lambda: f"ALM-{uuid.uuid4().hex}") -> None:
        self._new_id = new_id
        self._alarms: dict[str, Alarm] = {}
        self._active: dict[tuple[str, str], str] = {}  # (rule_id, device_id) → alarm id

    def __iter__(self) -> Iterator[Alarm]:
        return iter(self._alarms.values())

    def __len__(self) -> int:
        return len(self._alarms)

    def get(self, alarm_id: str) -> Alarm:
        try:
            return self._alarms[alarm_id]
        except KeyError:
            raise AlarmNotFound(f"no alarm {alarm_id!r}", alarm_id=alarm_id) from None

    def active_for(self, rule_id: str, device_id: str) -> Alarm | None:
        alarm_id = self._active.get((rule_id, device_id))
        return self._alarms[alarm_id] if alarm_id is not None else None

    def active(self) -> list[Alarm]:
        return [self._alarms[alarm_id] for alarm_id in self._active.values()]

    def apply(self, signal: Signal, *, lon: float | None = None, lat: float | None = None) -> AlarmChange | None:
        """A rule signal → the change it makes; None for a clear with no active alarm to clear.

        ``lon``/``lat`` (WGS-84) are the device's position, which the event command needs to
        dispatch the event automatically.
        """
        if signal.action is SignalAction.RAISE:
            return self.raise_(signal, lon=lon, lat=lat)
        alarm = self.active_for(signal.rule.id, signal.device)
        if alarm is None:
            return None  # e.g. rules changed or the book was reloaded; nothing is open
        return self.clear(alarm.id, at=signal.at)

    def raise_(self, signal: Signal, *, lon: float | None = None, lat: float | None = None) -> AlarmChange:
        current = self.active_for(signal.rule.id, signal.device)
        if current is not None:
            bumped = replace(current, count=current.count + 1, last_seen=max(current.last_seen, signal.at))
            self._alarms[bumped.id] = bumped
            return AlarmChange(ChangeKind.REPEATED, bumped)
        rule = signal.rule
        alarm = Alarm(id=self._new_id(), rule_id=rule.id, device_id=signal.device, product=signal.product,
                      severity=rule.severity, category_code=rule.category_code, dispatch=rule.dispatch,
                      message=signal.message, value=signal.value, status=AlarmStatus.ACTIVE_UNACK,
                      raised_at=signal.at, last_seen=signal.at, lon=lon, lat=lat)
        self._alarms[alarm.id] = alarm
        self._active[(rule.id, signal.device)] = alarm.id
        return AlarmChange(ChangeKind.RAISED, alarm, ALARM_RAISED, raised_payload(alarm))

    def acknowledge(self, alarm_id: str, *, at: datetime, by: str) -> AlarmChange:
        alarm = self.get(alarm_id)
        status = transition(alarm.status, "acknowledge", alarm_id=alarm_id)
        acked = replace(alarm, status=status, acknowledged_at=at, acknowledged_by=by)
        self._alarms[alarm_id] = acked
        return AlarmChange(ChangeKind.ACKNOWLEDGED, acked)

    def clear(self, alarm_id: str, *, at: datetime, by: str | None = None) -> AlarmChange:
        """Clear an active alarm — by its rule (``by=None``) or by a person from the console."""
        alarm = self.get(alarm_id)
        status = transition(alarm.status, "clear", alarm_id=alarm_id)
        cleared = replace(alarm, status=status, cleared_at=at, cleared_by=by)
        self._alarms[alarm_id] = cleared
        self._active.pop((alarm.rule_id, alarm.device_id), None)
        return AlarmChange(ChangeKind.CLEARED, cleared, ALARM_CLEARED, cleared_payload(cleared))

    def prune(self) -> list[Alarm]:
        """Drop and return alarms that are cleared and acknowledged (final); the caller keeps history."""
        done = [alarm for alarm in self._alarms.values() if alarm.status is AlarmStatus.CLEARED_ACK]
        for alarm in done:
            del self._alarms[alarm.id]
        return done
