"""Comprehensive evaluation (综合评价, GB/T 30428 / CJ/T 292) per department or township and period.

All counting happens in two nested GROUP BY queries (see docs/evaluation.md for each formula):
the inner one folds each event's timeline entries that left a time-limited stage into a few
flags (was it ever late, was a handling round late, was an extension approved, handling time),
the outer one sums events per group. Nothing loops over events in Python, so a month of a
million-event history is one index range scan plus a hash join on PostgreSQL.

The timeline facts come from ``workflow._record_stage_left``: every action that leaves a stage
writes ``stage_left``, ``late`` (the deadline was missed) and ``working_s`` (working time spent
in the stage, China working calendar) into its ``event_log.data``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from citybrain.core import clock
from citybrain.core.errors import Invalid
from citybrain.geo import service as geo_service
from citybrain.org import service as org_service

from . import workflow
from .enums import Status
from .models import Event, EventLog

S = Status
CHINA = ZoneInfo("Asia/Shanghai")
GROUPINGS = ("department", "township")
# 立案 and later: the cases that are due to be closed (挂账, merged and not-accepted are not).
DUE = (S.REGISTERED, S.DISPATCHED, S.IN_PROGRESS, S.HANDLED, S.VERIFIED, S.CLOSED)
DISPATCHED = (S.DISPATCHED, S.IN_PROGRESS, S.HANDLED, S.VERIFIED, S.CLOSED)
HANDLED = (S.HANDLED, S.VERIFIED, S.CLOSED)
RUNNING = (S.REGISTERED, S.DISPATCHED, S.IN_PROGRESS, S.HANDLED, S.VERIFIED)
# Timeline entries that carry stage facts (late, working_s), plus approved extensions.
STAGE_ACTIONS = tuple(sorted({a.name for a in workflow.ACTIONS.values() if a.stage is not workflow.KEEP}
                             | {"approve_extension"}))


@dataclass
class Row:
    """One group's counts; rates are fractions (0–1), ``None`` when the denominator is 0."""

    key: str
    name: str
    due: int = 0  # 应结案数
    closed: int = 0  # 结案数
    closed_on_time: int = 0  # 按期结案数
    dispatched: int = 0  # 应处置数
    handled: int = 0  # 处置数
    handled_on_time: int = 0  # 按期处置数
    rework: int = 0  # 返工数
    extended: int = 0  # 延期数
    overdue: int = 0  # 超期数
    handling_s: float = 0.0  # working seconds over all handling rounds
    handling_rounds: int = 0
    rating_sum: int = 0
    rated: int = 0

    @staticmethod
    def _rate(num: float, den: float) -> float | None:
        return num / den if den else None

    @property
    def close_rate(self) -> float | None:  # 结案率
        return self._rate(self.closed, self.due)

    @property
    def on_time_close_rate(self) -> float | None:  # 按期结案率
        return self._rate(self.closed_on_time, self.due)

    @property
    def on_time_handle_rate(self) -> float | None:  # 按期处置率
        return self._rate(self.handled_on_time, self.dispatched)

    @property
    def rework_rate(self) -> float | None:  # 返工率
        return self._rate(self.rework, self.handled)

    @property
    def extension_rate(self) -> float | None:  # 延期率
        return self._rate(self.extended, self.dispatched)

    @property
    def avg_handling_hours(self) -> float | None:
        return self._rate(self.handling_s / 3600, self.handling_rounds)

    @property
    def satisfaction(self) -> float | None:  # mean citizen rating, 1–5
        return self._rate(self.rating_sum, self.rated)


COUNT_FIELDS = tuple(f.name for f in fields(Row) if f.name not in ("key", "name"))


def total(rows: Iterable[Row], *, name: str = "Total") -> Row:
    """The district-wide row: counts add up, so every rate of the total is exact."""
    out = Row(key="", name=name)
    for row in rows:
        for f in COUNT_FIELDS:
            setattr(out, f, getattr(out, f) + getattr(row, f))
    return out


# --- periods (China time) ----------------------------------------------------------------------


def month_period(year: int, month: int) -> tuple[datetime, datetime]:
    """[first day 00:00, next month's first day 00:00) in China time, as aware datetimes."""
    if not 1 <= month <= 12 or not 2000 <= year <= 2100:
        raise Invalid(f"no such month {year}-{month:02d}", field="month")
    start = datetime(year, month, 1, tzinfo=CHINA)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=CHINA)
    return start, end


def parse_month(text: str | None, *, now: datetime | None = None) -> tuple[str, datetime, datetime]:
    """``"2026-11"`` → (label, start, end); empty → the current China month."""
    if not text:
        local = (now or clock.now()).astimezone(CHINA)
        text = f"{local.year:04d}-{local.month:02d}"
    try:
        year, month = (int(part) for part in text.strip().split("-"))
    except ValueError:
        raise Invalid(f"month must look like 2026-11 (got {text!r})", field="month") from None
    start, end = month_period(year, month)
    return f"{year:04d}-{month:02d}", start, end


def day_period(first: date, last: date) -> tuple[datetime, datetime]:
    """Whole China days ``first``..``last`` inclusive."""
    if last < first:
        raise Invalid("the period ends before it starts", field="period")
    return datetime.combine(first, datetime.min.time(), CHINA), \
        datetime.combine(last + timedelta(days=1), datetime.min.time(), CHINA)


# --- the query --------------------------------------------------------------------------------


def _scope(period_start: datetime, period_end: datetime, department_id: int | None,
           township_code: str | None) -> list[Any]:
    where = [Event.created_at >= period_start, Event.created_at < period_end,
             Event.status.in_([str(s) for s in DUE])]
    if department_id is not None:
        where.append(Event.department_id == department_id)
    if township_code is not None:
        where.append(Event.township_code == township_code)
    return where


def _per_event(scope: list[Any]) -> Any:
    late = EventLog.data["late"].as_boolean()
    working = EventLog.data["working_s"].as_float()
    is_handle = EventLog.action == "handle"
    flag = lambda cond: func.max(case((cond, 1), else_=0))  # noqa: E731
    return (
        select(
            EventLog.event_id.label("event_id"),
            flag(late).label("any_late"),
            flag(and_(is_handle, late)).label("handle_late"),
            flag(EventLog.action == "approve_extension").label("extended"),
            func.sum(case((is_handle, working), else_=None)).label("handling_s"),
            func.sum(case((and_(is_handle, working.is_not(None)), 1), else_=0)).label("handling_rounds"),
        )
        .join(Event, Event.id == EventLog.event_id)
        .where(*scope, EventLog.action.in_(STAGE_ACTIONS))
        .group_by(EventLog.event_id)
        .subquery("per_event")
    )


def evaluate(db: Session, *, period_start: datetime, period_end: datetime, by: str = "department",
             department_id: int | None = None, township_code: str | None = None,
             now: datetime | None = None) -> list[Row]:
    """Per-group evaluation of the cases reported in [period_start, period_end), optionally
    narrowed to one lead department or one township."""
    if by not in GROUPINGS:
        raise Invalid(f"by must be one of {', '.join(GROUPINGS)}", field="by")
    if period_start.tzinfo is None or period_end.tzinfo is None:
        raise Invalid("the period must be timezone-aware")
    now = now or clock.now()
    scope = _scope(period_start, period_end, department_id, township_code)
    pe = _per_event(scope)
    key = Event.department_id if by == "department" else Event.township_code
    status = Event.status
    closed = status == S.CLOSED
    handled = or_(status.in_([str(s) for s in HANDLED]), Event.rework_count > 0)
    overdue_now = and_(status.in_([str(s) for s in RUNNING]),
                       or_(Event.overdue.is_(True), Event.due_at < now))
    count = lambda cond: func.sum(case((cond, 1), else_=0))  # noqa: E731
    query = (
        select(
            key.label("key"),
            func.count().label("due"),
            count(closed).label("closed"),
            count(and_(closed, func.coalesce(pe.c.any_late, 0) == 0)).label("closed_on_time"),
            count(status.in_([str(s) for s in DISPATCHED])).label("dispatched"),
            count(handled).label("handled"),
            count(and_(handled, func.coalesce(pe.c.handle_late, 0) == 0)).label("handled_on_time"),
            count(Event.rework_count > 0).label("rework"),
            count(pe.c.extended == 1).label("extended"),
            count(or_(pe.c.any_late == 1, overdue_now)).label("overdue"),
            func.coalesce(func.sum(pe.c.handling_s), 0).label("handling_s"),
            func.coalesce(func.sum(pe.c.handling_rounds), 0).label("handling_rounds"),
            func.coalesce(func.sum(Event.rating), 0).label("rating_sum"),
            func.count(Event.rating).label("rated"),
        )
        .select_from(Event)
        .outerjoin(pe, pe.c.event_id == Event.id)
        .where(*scope)
        .group_by(key)
    )
    names = _group_names(db, by)
    rows = []
    for r in db.execute(query).mappings():
        k = "" if r["key"] is None else str(r["key"])
        code, name = names.get(k, (k, k)) if k else ("", "")
        row = Row(key=code, name=name or "(unassigned)")
        for f in COUNT_FIELDS:
            value = r[f]
            setattr(row, f, float(value or 0) if f == "handling_s" else int(value or 0))
        rows.append(row)
    rows.sort(key=lambda row: (row.key == "", row.key))
    return rows


def _group_names(db: Session, by: str) -> dict[str, tuple[str, str]]:
    if by == "department":
        return {str(d.id): (d.code, d.name) for d in org_service.list_departments(db)}
    return {d.code: (d.code, d.name) for d in geo_service.list_divisions(db)}


# --- export -----------------------------------------------------------------------------------

def N_(message: str) -> str:
    """Marks an English msgid for extraction; the pages translate it when they render."""
    return message


# (column id, English header); the pages translate the headers.
COLUMNS: Sequence[tuple[str, str]] = (
    ("key", N_("Code")), ("name", N_("Name")), ("due", N_("Cases due to close")), ("closed", N_("Closed")),
    ("close_rate", N_("Closure rate %")), ("closed_on_time", N_("Closed on time")),
    ("on_time_close_rate", N_("On-time closure rate %")), ("dispatched", N_("Dispatched")),
    ("handled", N_("Handled")), ("handled_on_time", N_("Handled on time")),
    ("on_time_handle_rate", N_("On-time handling rate %")), ("rework", N_("Reworked")),
    ("rework_rate", N_("Rework rate %")), ("extended", N_("Extended")), ("extension_rate", N_("Extension rate %")),
    ("overdue", N_("Overdue")), ("avg_handling_hours", N_("Average handling time (working hours)")),
    ("satisfaction", N_("Citizen satisfaction (1-5)")), ("rated", N_("Ratings")),
)
_PERCENT = {"close_rate", "on_time_close_rate", "on_time_handle_rate", "rework_rate", "extension_rate"}


def cell(row: Row, column: str) -> Any:
    """A display/export value: rates in percent with 1 decimal, averages with 2, None when undefined."""
    value = getattr(row, column)
    if value is None or column in ("key", "name"):
        return value
    if column in _PERCENT:
        return round(value * 100, 1)
    if column in ("avg_handling_hours", "satisfaction"):
        return round(value, 2)
    return value


def table(rows: Sequence[Row], *, with_total: bool = True, total_name: str = "Total") -> list[list[Any]]:
    data = list(rows) + ([total(rows, name=total_name)] if with_total and rows else [])
    return [[cell(row, column) for column, _ in COLUMNS] for row in data]


def to_csv(rows: Sequence[Row], headers: Sequence[str], *, total_name: str = "Total") -> str:
    """CSV with a BOM so spreadsheet programs read the Chinese names as UTF-8."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(headers)
    for values in table(rows, total_name=total_name):
        writer.writerow(["" if v is None else v for v in values])
    return out.getvalue()


def to_xlsx(rows: Sequence[Row], headers: Sequence[str], *, title: str, total_name: str = "Total") -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    sheet.title = title[:31]
    sheet.append(list(headers))
    for c in sheet[1]:
        c.font = Font(bold=True)
    for values in table(rows, total_name=total_name):
        sheet.append(values)
    sheet.freeze_panes = "C2"
    for letter, width in zip("ABCDEFGHIJKLMNOPQRS", (14, 28), strict=False):
        sheet.column_dimensions[letter].width = width
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
