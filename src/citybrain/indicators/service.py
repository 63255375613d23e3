"""Plan indicators: the shipped table, department reports with evidence, and progress.

``progress_summary(db)`` is the one read the cockpit and the pages share.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Mapping
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citybrain.core import audit, clock
from citybrain.core.actor import Actor
from citybrain.core.errors import Forbidden, Invalid, NotFound
from citybrain.core.files import write_once
from citybrain.org import service as org_service

from . import computed, evidence, progress
from .computed import Measurement, Unavailable, register_provider
from .models import Indicator, IndicatorReport

__all__ = ["progress_summary", "register_provider", "submit_report", "sync_indicators"]

COLUMNS = ("code", "domain", "domain_en", "name", "name_en", "unit", "baseline_2020", "target_2025",
           "target_op", "basis", "department_code", "source", "min_value", "max_value")
SOURCES = ("computed", "reported")
CODE_RE = re.compile(r"^[a-z0-9][a-z0-9_]*$")
DEPARTMENT_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
EARLIEST_AS_OF = date(2020, 1, 1)
MAX_NOTE = 2000


# --- the shipped table -------------------------------------------------------------------


def _number(text: str, column: str, *, required: bool) -> float | None:
    if not text:
        if required:
            raise ValueError(f"{column} is empty")
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{column} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{column} must be a finite number")
    return value


def _parse_row(raw: Mapping[str, str | None]) -> dict[str, Any]:
    row = {key: (raw.get(key) or "").strip() for key in COLUMNS}
    if not CODE_RE.match(row["code"]):
        raise ValueError(f"code {row['code']!r} must be lower-case letters, digits and _")
    for column in ("domain", "name"):
        if not row[column]:
            raise ValueError(f"{column} is empty")
    if row["target_op"] not in progress.OPS:
        raise ValueError(f"target_op {row['target_op']!r} must be one of {' '.join(progress.OPS)}")
    if row["source"] not in SOURCES:
        raise ValueError(f"source {row['source']!r} must be computed or reported")
    if not DEPARTMENT_RE.match(row["department_code"]):
        raise ValueError(f"department_code {row['department_code']!r} is not a department code")
    low = _number(row["min_value"], "min_value", required=True)
    high = _number(row["max_value"], "max_value", required=True)
    assert low is not None and high is not None
    if low >= high:
        raise ValueError("min_value must be below max_value")
    parsed: dict[str, Any] = {**row, "min_value": low, "max_value": high}
    for column in ("baseline_2020", "target_2025"):
        value = _number(row[column], column, required=False)
        if value is not None and not low <= value <= high:
            raise ValueError(f"{column} {value:g} is outside the valid range {low:g}–{high:g}")
        parsed[column] = value
    return parsed


def parse_indicators(text: str, *, origin: str = "indicators.csv") -> list[dict[str, Any]]:
    """Parse and validate the indicator table; ValueError naming the line of a bad row."""
    reader = csv.DictReader(text.splitlines())
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise ValueError(f"{origin}: missing column(s) {', '.join(missing)}")
    rows, seen = [], set()
    for number, raw in enumerate(reader, start=2):
        try:
            row = _parse_row(raw)
        except ValueError as exc:
            raise ValueError(f"{origin} line {number}: {exc}") from None
        if row["code"] in seen:
            raise ValueError(f"{origin} line {number}: code {row['code']!r} appears twice")
        seen.add(row["code"])
        rows.append({**row, "position": len(rows) + 1})
    return rows


def load_indicator_rows(path: Path | None = None) -> list[dict[str, Any]]:
    if path is None:
        text = resources.files("citybrain.indicators.data").joinpath("indicators.csv").read_text("utf-8")
        return parse_indicators(text)
    return parse_indicators(path.read_text("utf-8"), origin=str(path))


_FIELDS = ("position", *(c for c in COLUMNS if c != "code"))


def _snapshot(ind: Indicator) -> dict[str, Any]:
    return {"code": ind.code, **{f: getattr(ind, f) for f in _FIELDS}, "active": ind.active}


def sync_indicators(db: Session, *, actor: Actor, path: Path | None = None) -> int:
    """Bring the table in line with the shipped file (the plan is data, edited in the file):
    add new rows, update changed ones, deactivate rows gone from the file. Returns how many
    rows changed; one audit entry per changed row. A system loader: asks for no permission."""
    rows = load_indicator_rows(path)
    known_departments = {d.code for d in org_service.list_departments(db)}
    unknown = sorted({r["department_code"] for r in rows} - known_departments)
    if unknown:
        raise Invalid(f"indicators.csv names unknown department(s): {', '.join(unknown)}")
    existing = {i.code: i for i in db.scalars(select(Indicator))}
    now, changed = clock.now(), 0
    for row in rows:
        ind = existing.pop(row["code"], None)
        if ind is None:
            ind = Indicator(**row, active=True, updated_at=now)
            db.add(ind)
            db.flush()
            audit.record(db, actor=actor, action="indicator.load", object_type="indicator", object_id=ind.code,
                         after=_snapshot(ind))
            changed += 1
            continue
        before = _snapshot(ind)
        for key, value in row.items():
            setattr(ind, key, value)
        ind.active = True
        if _snapshot(ind) != before:
            ind.updated_at = now
            audit.record(db, actor=actor, action="indicator.update", object_type="indicator", object_id=ind.code,
                         before=before, after=_snapshot(ind))
            changed += 1
    for ind in existing.values():
        if ind.active:
            before = _snapshot(ind)
            ind.active, ind.updated_at = False, now
            audit.record(db, actor=actor, action="indicator.deactivate", object_type="indicator",
                         object_id=ind.code, before=before, after=_snapshot(ind))
            changed += 1
    db.flush()
    return changed


def list_indicators(db: Session, *, active_only: bool = True) -> list[Indicator]:
    q = select(Indicator).order_by(Indicator.position, Indicator.code)
    if active_only:
        q = q.where(Indicator.active.is_(True))
    return list(db.scalars(q))


def get_indicator(db: Session, *, code: str) -> Indicator:
    ind = db.get(Indicator, code)
    if ind is None:
        raise NotFound(f"indicator {code!r} does not exist")
    return ind


# --- reports -----------------------------------------------------------------------------


def can_report(db: Session, *, indicator: Indicator, actor: Actor) -> bool:
    """Admin: every reported indicator; department staff: their own department's."""
    if not actor.can("indicators:report") or indicator.source != "reported" or not indicator.active:
        return False
    if actor.role == "admin" or actor.via == "system":
        return True
    if actor.department_id is None:
        return False
    return org_service.get_department(db, department_id=actor.department_id).code == indicator.department_code


def check_can_report(db: Session, *, indicator: Indicator, actor: Actor) -> None:
    actor.check("indicators:report")
    if indicator.source != "reported":
        raise Invalid(f"{indicator.code} is computed from platform data; it is not reported", field="indicator")
    if not indicator.active:
        raise Invalid(f"{indicator.code} is no longer in the plan's table", field="indicator")
    if not can_report(db, indicator=indicator, actor=actor):
        raise Forbidden(f"{indicator.code} is reported by department {indicator.department_code!r}")


def check_value(indicator: Indicator, value: float) -> None:
    if not math.isfinite(value):
        raise Invalid("the value must be a finite number", field="value")
    if not indicator.min_value <= value <= indicator.max_value:
        raise Invalid(f"value {value:g} is outside the valid range {indicator.min_value:g}–"
                      f"{indicator.max_value:g} {indicator.unit}".rstrip(), field="value", reason="out_of_range",
                      min=indicator.min_value, max=indicator.max_value)


def check_as_of(as_of: date) -> None:
    if as_of > computed.today():
        raise Invalid(f"the as-of date {as_of.isoformat()} is in the future", field="as_of", reason="future")
    if as_of < EARLIEST_AS_OF:
        raise Invalid(f"the as-of date must be on or after {EARLIEST_AS_OF.isoformat()}", field="as_of",
                      reason="too_early")


def _report_snapshot(r: IndicatorReport) -> dict[str, Any]:
    return {"indicator_code": r.indicator_code, "value": r.value, "as_of": r.as_of.isoformat(), "note": r.note,
            "department_id": r.department_id, "evidence_sha256": r.evidence_sha256,
            "evidence_filename": r.evidence_filename, "synthetic": r.synthetic}


def submit_report(db: Session, *, code: str, value: float, as_of: date, note: str, evidence_bytes: bytes | None,
                  filename: str, actor: Actor, data_dir: Path | str, synthetic: bool = False) -> IndicatorReport:
    """Check everything first, then store the evidence file and the report row (audited).
    A refused report leaves neither a row nor a file."""
    indicator = get_indicator(db, code=code)
    check_can_report(db, indicator=indicator, actor=actor)
    check_value(indicator, value)
    check_as_of(as_of)
    note = (note or "").strip()
    if len(note) > MAX_NOTE:
        raise Invalid(f"the note is longer than {MAX_NOTE} characters", field="note")
    kind = evidence.check_evidence(evidence_bytes)
    assert evidence_bytes is not None
    now = clock.now()
    relative = evidence.relative_path(evidence_bytes, kind, now)
    write_once(Path(data_dir) / relative, evidence_bytes)
    report = IndicatorReport(
        indicator_code=code, value=value, as_of=as_of, note=note,
        department_id=actor.department_id if actor.role != "admin" else _department_id(db, indicator),
        reported_by=actor.label, reported_by_user_id=actor.user_id,
        evidence_filename=evidence.clean_filename(filename, kind.ext), evidence_content_type=kind.content_type,
        evidence_size=len(evidence_bytes), evidence_sha256=relative.stem, evidence_path=relative.as_posix(),
        synthetic=synthetic, created_at=now,
    )
    db.add(report)
    db.flush()
    audit.record(db, actor=actor, action="indicator_report.create", object_type="indicator_report",
                 object_id=report.id, after=_report_snapshot(report))
    return report


def _department_id(db: Session, indicator: Indicator) -> int | None:
    """An administrator reports on behalf of the responsible department."""
    try:
        return org_service.get_department_by_code(db, code=indicator.department_code).id
    except NotFound:
        return None


def history(db: Session, *, code: str) -> list[IndicatorReport]:
    """Every report of the indicator, newest as-of date first (ties: last filed first)."""
    get_indicator(db, code=code)
    q = (select(IndicatorReport).where(IndicatorReport.indicator_code == code)
         .order_by(IndicatorReport.as_of.desc(), IndicatorReport.id.desc()))
    return list(db.scalars(q))


def get_report(db: Session, *, report_id: int) -> IndicatorReport:
    report = db.get(IndicatorReport, report_id)
    if report is None:
        raise NotFound(f"indicator report {report_id} does not exist")
    return report


def count_reports(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(IndicatorReport)) or 0


def latest_reports(db: Session, *, until: date | None = None) -> dict[str, IndicatorReport]:
    """The latest report of each indicator (by as-of date, then filing order), up to ``until``."""
    q = select(IndicatorReport).order_by(IndicatorReport.as_of, IndicatorReport.id)
    if until is not None:
        q = q.where(IndicatorReport.as_of <= until)
    return {r.indicator_code: r for r in db.scalars(q)}


def all_history(db: Session, *, until: date | None = None) -> dict[str, list[IndicatorReport]]:
    """Reports of every indicator, oldest first (for sparklines and the annual report)."""
    q = select(IndicatorReport).order_by(IndicatorReport.as_of, IndicatorReport.id)
    if until is not None:
        q = q.where(IndicatorReport.as_of <= until)
    found: dict[str, list[IndicatorReport]] = {}
    for r in db.scalars(q):
        found.setdefault(r.indicator_code, []).append(r)
    return found


# --- progress ----------------------------------------------------------------------------


def _latest(db: Session, ind: Indicator, reports: dict[str, IndicatorReport], on: date,
            current: bool) -> tuple[float | None, date | None, str, str, bool]:
    """(value, as-of date, note, why none, synthetic) of one indicator on ``on``."""
    if ind.source == "reported":
        report = reports.get(ind.code)
        if report is None:
            return None, None, "", "no report yet", False
        return report.value, report.as_of, report.note, "", report.synthetic
    if not current:
        return None, None, "", "computed values are not kept for past dates", False
    result = computed.measure(db, ind.code)
    if isinstance(result, Unavailable):
        return None, None, "", result.reason, False
    assert isinstance(result, Measurement)
    return result.value, result.as_of, result.note, "", False


def progress_summary(db: Session, *, on: date | None = None) -> list[dict[str, Any]]:
    """One dict per active indicator, in the plan's order: definition, latest value and
    progress toward 2025 on ``on`` (default: today, China time). Reported values count up to
    ``on``; computed values are measured now, so only when ``on`` is today or later.

    Keys: code, domain, name, unit, baseline_2020, target_2025, target_op, latest_value,
    latest_date, source ('computed'|'reported'), status ('on_track'|'at_risk'|'behind'|
    'no_data'), expected_now; and domain_en, name_en, basis, department_code, reason (why
    no_data; English), note (of the latest value), synthetic (the latest value is demo data)."""
    today = computed.today()
    on = on or today
    reports = latest_reports(db, until=on)
    rows = []
    for ind in list_indicators(db):
        value, as_of, note, why, synthetic = _latest(db, ind, reports, on, current=on >= today)
        result = progress.assess(baseline=ind.baseline_2020, target=ind.target_2025, op=ind.target_op,
                                 value=value, on=on)
        rows.append({
            "code": ind.code, "domain": ind.domain, "name": ind.name, "unit": ind.unit,
            "baseline_2020": ind.baseline_2020, "target_2025": ind.target_2025, "target_op": ind.target_op,
            "latest_value": value, "latest_date": as_of.isoformat() if as_of else None, "source": ind.source,
            "status": result.status,
            "expected_now": None if result.expected_now is None else round(result.expected_now, 2),
            "domain_en": ind.domain_en, "name_en": ind.name_en, "basis": ind.basis,
            "department_code": ind.department_code, "reason": why or result.reason, "note": note,
            "synthetic": synthetic,
        })
    return rows
