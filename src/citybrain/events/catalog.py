"""The classification catalog: GB/T 30428 small classes of components and events, shipped as
``data/categories.csv`` (configuration, see ``data/README.md``) and kept in ``event_category``.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from citybrain.core import audit
from citybrain.core.actor import Actor
from citybrain.core.errors import Invalid, NotFound
from citybrain.org import service as org_service

from .enums import Stage, TimeUnit, Urgency
from .models import EventCategory

KINDS = {"C": "component", "E": "event"}
CODE_RE = re.compile(r"^[CE]\d{4}$")
MAJOR_RE = re.compile(r"^[CE]\d{2}$")
DEPARTMENT_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
STAGES = tuple(stage.value for stage in Stage)
COLUMNS = (
    "code",
    "kind",
    "major_code",
    "major_name",
    "name",
    "description",
    "department_code",
    "township_handles",
    "urgency",
    *STAGES,
    "keywords",
    "public",
)
# What an administrator may change at run time; code, kind and the large class are identity.
EDITABLE = frozenset(
    {
        "name",
        "description",
        "department_code",
        "township_handles",
        "urgency",
        "time_limits",
        "keywords",
        "public",
        "active",
    }
)
_BOOLS = {"true": True, "false": False}


# --- parsing the shipped file -------------------------------------------------------------


def parse_limit(text: str) -> dict[str, Any]:
    """``"4 working_hours"`` → ``{"value": 4, "unit": "working_hours"}``; ValueError if malformed."""
    parts = str(text).split()
    if len(parts) != 2:
        raise ValueError(f"time limit {text!r} must be '<value> <unit>', e.g. '4 working_hours'")
    raw_value, raw_unit = parts
    try:
        value = float(raw_value)
    except ValueError:
        raise ValueError(f"time limit {text!r}: {raw_value!r} is not a number") from None
    try:
        unit = TimeUnit(raw_unit)
    except ValueError:
        known = ", ".join(TimeUnit)
        raise ValueError(f"time limit {text!r}: unknown unit {raw_unit!r} (known: {known})") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"time limit {text!r}: the value must be a positive number")
    # Whole numbers stay ints so the stored JSON reads like the CSV.
    return {"value": int(value) if value.is_integer() else value, "unit": unit.value}


def format_limit(limit: Mapping[str, Any]) -> str:
    """The inverse of ``parse_limit``: ``{"value": 4, "unit": "working_hours"}`` → ``"4 working_hours"``."""
    value = limit["value"]
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value} {limit['unit']}"


def _bool(text: str, column: str) -> bool:
    try:
        return _BOOLS[text.strip().lower()]
    except KeyError:
        raise ValueError(f"{column} must be true or false, not {text!r}") from None


def _parse_row(raw: Mapping[str, str | None]) -> dict[str, Any]:
    row = {key: (raw.get(key) or "").strip() for key in COLUMNS}
    code, kind = row["code"], row["kind"]
    if not CODE_RE.match(code):
        raise ValueError(f"code {code!r} must be C or E followed by 4 digits, e.g. E0101")
    if kind not in KINDS.values():
        raise ValueError(f"kind {kind!r} must be component or event")
    if KINDS[code[0]] != kind:
        raise ValueError(f"code {code!r} starts with {code[0]!r} but kind is {kind!r}")
    if not MAJOR_RE.match(row["major_code"]) or not code.startswith(row["major_code"]):
        raise ValueError(f"major_code {row['major_code']!r} must be the first 3 characters of the code")
    for column in ("major_name", "name"):
        if not row[column]:
            raise ValueError(f"{column} is empty")
    if not DEPARTMENT_RE.match(row["department_code"]):
        raise ValueError(f"department_code {row['department_code']!r} is not a department code")
    if row["urgency"] not in set(Urgency):
        raise ValueError(f"urgency {row['urgency']!r} must be one of {', '.join(Urgency)}")
    return {
        "code": code,
        "kind": kind,
        "major_code": row["major_code"],
        "major_name": row["major_name"],
        "name": row["name"],
        "description": row["description"],
        "department_code": row["department_code"],
        "township_handles": _bool(row["township_handles"], "township_handles"),
        "urgency": row["urgency"],
        "time_limits": {stage: _stage_limit(row[stage], stage) for stage in STAGES},
        "keywords": " ".join(row["keywords"].split()),
        "public": _bool(row["public"], "public"),
    }


def _stage_limit(text: str, stage: str) -> dict[str, Any]:
    if not text:
        raise ValueError(f"the {stage} time limit is missing")
    try:
        return parse_limit(text)
    except ValueError as exc:
        raise ValueError(f"{stage}: {exc}") from None


def parse_catalog(text: str, *, origin: str = "categories.csv") -> list[dict[str, Any]]:
    """Parse and validate catalog CSV text; ValueError naming the line and code of a bad row."""
    reader = csv.DictReader(text.splitlines())
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise ValueError(f"{origin}: missing column(s) {', '.join(missing)}")
    rows: list[dict[str, Any]] = []
    seen_codes: set[str] = set()
    seen_names: set[tuple[str, str]] = set()
    major_names: dict[str, str] = {}
    for raw in reader:
        line = reader.line_num
        label = f"{origin} line {line} ({(raw.get('code') or '').strip() or 'no code'})"
        try:
            row = _parse_row(raw)
            _check_consistent(row, seen_codes, seen_names, major_names)
        except ValueError as exc:
            raise ValueError(f"{label}: {exc}") from None
        rows.append(row)
    if not rows:
        raise ValueError(f"{origin}: the catalog is empty")
    return rows


def _check_consistent(
    row: dict[str, Any], codes: set[str], names: set[tuple[str, str]], majors: dict[str, str]
) -> None:
    """Checks across rows; updates the seen sets only for a row that passes."""
    if row["code"] in codes:
        raise ValueError(f"code {row['code']} appears twice")
    if (row["kind"], row["name"]) in names:
        raise ValueError(f"{row['kind']} {row['name']!r} appears twice")
    known_major = majors.setdefault(row["major_code"], row["major_name"])
    if known_major != row["major_name"]:
        raise ValueError(
            f"large class {row['major_code']} is named {row['major_name']!r} here but {known_major!r} before"
        )
    codes.add(row["code"])
    names.add((row["kind"], row["name"]))


def load_catalog_rows(path: Path | None = None) -> list[dict[str, Any]]:
    """The shipped catalog (or ``path``), every row validated, as ``EventCategory`` field dicts."""
    if path is None:
        text = resources.files("citybrain.events.data").joinpath("categories.csv").read_text("utf-8")
        return parse_catalog(text)
    return parse_catalog(path.read_text("utf-8"), origin=str(path))


# --- the table ----------------------------------------------------------------------------


_SNAPSHOT_FIELDS = (
    "code",
    "kind",
    "major_code",
    "major_name",
    "name",
    "description",
    "department_code",
    "township_handles",
    "urgency",
    "time_limits",
    "keywords",
    "public",
    "active",
)


def _snapshot(category: EventCategory) -> dict[str, Any]:
    snapshot = {key: getattr(category, key) for key in _SNAPSHOT_FIELDS}
    # Copy the limits: "before" must not change when the row is edited afterwards.
    snapshot["time_limits"] = {stage: dict(limit) for stage, limit in (category.time_limits or {}).items()}
    return snapshot


def sync_catalog(db: Session, *, actor: Actor) -> int:
    """Add the shipped classes the database does not have yet; returns how many.

    Existing rows are left alone so an administrator's edits survive upgrades and restarts.
    A system loader (CLI, demo, start-up), so it asks for no permission; one audit entry per
    load that created anything.
    """
    rows = load_catalog_rows()
    existing = set(db.scalars(select(EventCategory.code)))
    new = [row for row in rows if row["code"] not in existing]
    for row in new:
        db.add(EventCategory(**row, active=True))
    db.flush()
    if new:
        audit.record(
            db, actor=actor, action="event_category.load", object_type="event_category", after={"created": len(new)}
        )
    return len(new)


def list_categories(db: Session, *, public_only: bool = False, active_only: bool = True) -> list[EventCategory]:
    q = select(EventCategory).order_by(EventCategory.code)
    if public_only:
        q = q.where(EventCategory.public.is_(True))
    if active_only:
        q = q.where(EventCategory.active.is_(True))
    return list(db.scalars(q))


def get_category(db: Session, *, code: str) -> EventCategory:
    category = db.get(EventCategory, code)
    if category is None:
        raise NotFound(f"event category {code!r} does not exist")
    return category


def update_category(db: Session, *, code: str, changes: Mapping[str, Any], actor: Actor) -> EventCategory:
    """Change an editable field of a class (admins). ``time_limits`` may name only some stages
    (``{"handle": "2 working_days"}``); the others keep their limits."""
    actor.check("events:admin")
    category = get_category(db, code=code)
    clean = _validate_changes(db, category, changes)
    before = _snapshot(category)
    for key, value in clean.items():
        setattr(category, key, value)
    after = _snapshot(category)
    if after == before:
        return category
    db.flush()
    audit.record(
        db,
        actor=actor,
        action="event_category.update",
        object_type="event_category",
        object_id=code,
        before=before,
        after=after,
    )
    return category


def _validate_changes(db: Session, category: EventCategory, changes: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(changes) - EDITABLE)
    if unknown:
        raise Invalid(f"cannot change {', '.join(unknown)}; editable: {', '.join(sorted(EDITABLE))}")
    clean: dict[str, Any] = {}
    for key, value in changes.items():
        if key in ("township_handles", "public", "active"):
            if not isinstance(value, bool):
                raise Invalid(f"{key} must be true or false")
            clean[key] = value
        elif key in ("name", "description", "keywords"):
            clean[key] = _text(key, value, required=key == "name")
        elif key == "urgency":
            if not isinstance(value, str) or value not in set(Urgency):
                raise Invalid(f"urgency must be one of {', '.join(Urgency)}")
            clean[key] = value
        elif key == "department_code":
            clean[key] = _known_department(db, value)
        elif key == "time_limits":
            clean[key] = _merged_limits(category.time_limits, value)
    return clean


def _text(key: str, value: Any, *, required: bool) -> str:
    if not isinstance(value, str):
        raise Invalid(f"{key} must be text")
    text = " ".join(value.split()) if key == "keywords" else value.strip()
    if required and not text:
        raise Invalid(f"{key} must not be empty")
    return text


def _known_department(db: Session, value: Any) -> str:
    # Checked against the live departments, not the shipped file: admins may have added some.
    if not isinstance(value, str):
        raise Invalid("department_code must be text")
    try:
        org_service.get_department_by_code(db, code=value)
    except NotFound:
        raise Invalid(f"department {value!r} does not exist") from None
    return value


def _merged_limits(current: Mapping[str, Any], value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise Invalid("time_limits must map stages to limits such as '4 working_hours'")
    merged = {stage: dict(limit) for stage, limit in (current or {}).items()}
    for stage, limit in value.items():
        if stage not in STAGES:
            raise Invalid(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")
        text = f"{limit.get('value')} {limit.get('unit')}" if isinstance(limit, Mapping) else str(limit)
        try:
            merged[stage] = parse_limit(text)
        except ValueError as exc:
            raise Invalid(f"{stage}: {exc}") from None
    # A new dict, not an in-place edit, so SQLAlchemy sees the JSON column change.
    return merged


# --- matching free text -------------------------------------------------------------------


def _score(category: EventCategory, text: str) -> int:
    """Characters of keywords found in the text: longer, more specific words weigh more."""
    words = set(category.keywords.split()) | {category.name}
    return sum(len(word) for word in words if word in text)


def best_match(categories: Iterable[EventCategory], text: str) -> EventCategory | None:
    """The class whose keywords cover most of ``text``; ties go to the lower code. Pure, so a
    bulk classifier can load the categories once and call this per report."""
    best: tuple[int, str] | None = None
    winner: EventCategory | None = None
    for category in categories:
        score = _score(category, text)
        if score and (best is None or (-score, category.code) < best):
            best, winner = (-score, category.code), category
    return winner


def match_category(db: Session, *, text: str) -> EventCategory | None:
    """Suggest an active class for hotline or video-AI text by keyword; None when nothing matches."""
    if not text or not text.strip():
        return None
    return best_match(list_categories(db), text)
