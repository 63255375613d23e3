"""Deadlines counted in China working time (Asia/Shanghai) with the public-holiday calendar.

GB/T 30428 cases have a time limit per stage, written as value + unit (see ``TimeUnit``):

* ``working_hours`` count only the working periods (default 08:30–12:00 and 13:30–17:30) of
  working days, starting from the next working moment — a report at 22:00 starts its clock at
  08:30 on the next working day.
* ``working_days`` are ``value`` × the length of a working day in working time, so a limit ends
  at the same working-clock offset that many working days later (Fri 10:00 + 1 → Mon 10:00).
* ``natural_hours`` are plain elapsed time (emergencies run around the clock).

Working days come from the ``chinesecalendar`` package (``chinese_calendar``), which knows the
State Council's holidays *and* the adjusted working weekends (调休). It only knows the years it
was released for (1.11.0 covers 2004–2026) and raises ``NotImplementedError`` otherwise; for
such years we fall back to Monday–Friday, and ``WorkCalendar.extra_holidays`` /
``extra_workdays`` let an operator enter the new year's arrangement before the package catches
up. All datetimes going in and out are timezone-aware; results are UTC.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import chinese_calendar

from .enums import TimeUnit

CHINA_TZ = "Asia/Shanghai"
# Longest stretch we will walk looking for working time: a limit longer than this is a typo.
_MAX_DAYS = 3 * 366

Period = tuple[time, time]


@lru_cache(maxsize=4096)
def _library_workday(day: date) -> bool | None:
    """The package's answer, or None for a year it has no data for (cached: called per day)."""
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        return None


@dataclass(frozen=True)
class WorkCalendar:
    """When the city's offices work. Frozen and hashable so it can be a setting or a cache key.

    ``periods`` are the working periods of a working day in local time, in order and not
    overlapping. A date in ``extra_workdays``/``extra_holidays`` overrides the holiday package
    (local arrangements, or a year the package does not know yet). With ``use_holiday_package``
    off, or for a year the package does not cover, working days are Monday–Friday.
    """

    periods: tuple[Period, ...] = ((time(8, 30), time(12, 0)), (time(13, 30), time(17, 30)))
    tz: str = CHINA_TZ
    use_holiday_package: bool = True
    extra_workdays: frozenset[date] = field(default_factory=frozenset)
    extra_holidays: frozenset[date] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if not self.periods:
            raise ValueError("a work calendar needs at least one working period")
        previous_end = time.min
        for start, end in self.periods:
            if not start < end:
                raise ValueError(f"working period {start}–{end} ends before it starts")
            if start < previous_end:
                raise ValueError(f"working period {start}–{end} overlaps or is out of order")
            previous_end = end
        if self.extra_workdays & self.extra_holidays:
            raise ValueError("a date cannot be both an extra working day and an extra holiday")
        ZoneInfo(self.tz)  # fail at configuration time, not at the first deadline

    @classmethod
    def from_text(cls, periods: str, **kwargs: object) -> WorkCalendar:
        """Build from a setting such as ``"08:30-12:00 13:30-17:30"``."""
        return cls(periods=parse_periods(periods), **kwargs)  # type: ignore[arg-type]

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    @property
    def day_length(self) -> timedelta:
        """Working time in one working day (7.5 h by default)."""
        return sum((_span(day_start, day_end) for day_start, day_end in self.periods), timedelta())

    def is_workday(self, day: date) -> bool:
        if day in self.extra_workdays:
            return True
        if day in self.extra_holidays:
            return False
        if self.use_holiday_package:
            answer = _library_workday(day)
            if answer is not None:
                return answer
        return day.weekday() < 5

    def periods_on(self, day: date) -> list[tuple[datetime, datetime]]:
        """The working periods of ``day`` as aware local datetimes; empty on a day off."""
        if not self.is_workday(day):
            return []
        zone = self.zone
        return [(datetime.combine(day, start, zone), datetime.combine(day, end, zone)) for start, end in self.periods]


DEFAULT = WorkCalendar()


def parse_periods(text: str) -> tuple[Period, ...]:
    """``"08:30-12:00 13:30-17:30"`` (spaces or commas between periods) → tuple of time pairs."""
    periods: list[Period] = []
    for chunk in text.replace(",", " ").split():
        start, sep, end = chunk.partition("-")
        if not sep:
            raise ValueError(f"working period {chunk!r} must look like 08:30-12:00")
        periods.append((time.fromisoformat(start), time.fromisoformat(end)))
    return tuple(periods)


def _span(start: time, end: time) -> timedelta:
    anchor = date(2000, 1, 1)
    return datetime.combine(anchor, end) - datetime.combine(anchor, start)


def _require_aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (got naive {moment.isoformat()})")


def _walk_periods(start: datetime, calendar: WorkCalendar) -> Iterator[tuple[datetime, datetime]]:
    """Yield the working periods from ``start`` on, the first one clipped to begin at ``start``."""
    local = start.astimezone(calendar.zone)
    day = local.date()
    for _ in range(_MAX_DAYS):
        for period_start, period_end in calendar.periods_on(day):
            if period_end <= local:
                continue
            yield max(period_start, local), period_end
        day += timedelta(days=1)
    raise ValueError(f"no working time found within {_MAX_DAYS} days of {start.isoformat()}")


def _add_working_time(start: datetime, amount: timedelta, calendar: WorkCalendar) -> datetime:
    left = amount
    for period_start, period_end in _walk_periods(start, calendar):
        available = period_end - period_start
        # "<=" so a limit that uses up a period ends at its close (12:00), not after lunch.
        if left <= available:
            return period_start + left
        left -= available
    raise AssertionError("unreachable: _walk_periods raises instead of ending")


def next_working_moment(moment: datetime, calendar: WorkCalendar = DEFAULT) -> datetime:
    """``moment`` itself when inside a working period, else the start of the next one (UTC)."""
    _require_aware(moment, "moment")
    return _add_working_time(moment, timedelta(), calendar).astimezone(UTC)


def due_at(start: datetime, value: float, unit: TimeUnit | str, calendar: WorkCalendar = DEFAULT) -> datetime:
    """The deadline of a limit of ``value`` ``unit`` starting at ``start``; aware in, UTC out."""
    _require_aware(start, "start")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"a time limit must be a finite, non-negative number (got {value!r})")
    unit = TimeUnit(unit)
    if unit is TimeUnit.NATURAL_HOURS:
        return (start + timedelta(hours=value)).astimezone(UTC)
    # A working day is a day's worth of working time, which keeps the clock offset across days.
    amount = timedelta(hours=value) if unit is TimeUnit.WORKING_HOURS else calendar.day_length * value
    return _add_working_time(start, amount, calendar).astimezone(UTC)


def working_time_between(start: datetime, end: datetime, calendar: WorkCalendar = DEFAULT) -> timedelta:
    """Working time inside [start, end); zero when end is not after start. Used for evaluation
    (handling time in working hours) and for warnings on working-time limits."""
    _require_aware(start, "start")
    _require_aware(end, "end")
    if end <= start:
        return timedelta()
    total = timedelta()
    for period_start, period_end in _walk_periods(start, calendar):
        if period_start >= end:
            break
        total += min(period_end, end) - period_start
    return total


def remaining(now: datetime, due: datetime) -> timedelta:
    """Elapsed time left until ``due``; negative once overdue."""
    _require_aware(now, "now")
    _require_aware(due, "due")
    return due - now


def warning_at(
    start: datetime, due: datetime, fraction: float = 0.8, *, calendar: WorkCalendar | None = None
) -> datetime:
    """When to warn that a limit is running out: after ``fraction`` of the time from start to due.

    Without ``calendar`` the fraction is of elapsed time, right for ``natural_hours`` limits.
    For working-time limits pass the calendar, so a Friday-afternoon case warns on Monday
    morning at 80 % of its working time rather than at 3 a.m. on Sunday.
    """
    _require_aware(start, "start")
    _require_aware(due, "due")
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction must be between 0 and 1 (got {fraction!r})")
    if due <= start:
        return due.astimezone(UTC)
    if calendar is None:
        return (start + (due - start) * fraction).astimezone(UTC)
    budget = working_time_between(start, due, calendar)
    if not budget:
        return due.astimezone(UTC)
    return min(_add_working_time(start, budget * fraction, calendar), due).astimezone(UTC)
