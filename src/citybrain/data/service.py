"""Population and legal-entity base data: bulk load (validated), counts, lookups."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from citybrain.core import audit, clock
from citybrain.core.actor import Actor
from citybrain.core.errors import Invalid

from .identifiers import IdentifierError, validate_credit_code, validate_id_number, validate_mobile
from .models import Enterprise, Resident

_BATCH = 2000


def count_residents(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(Resident)) or 0


def count_enterprises(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(Enterprise)) or 0


def _rows(items: Iterable[Any]) -> list[dict[str, Any]]:
    return [asdict(i) if not isinstance(i, dict) else dict(i) for i in items]


def load_residents(db: Session, *, residents: Iterable[Any], actor: Actor, synthetic: bool = True) -> int:
    """Insert residents after checking every ID and mobile number; one bad row refuses the batch."""
    rows = _rows(residents)
    for n, row in enumerate(rows, 1):
        try:
            validate_id_number(row["id_number"])
            validate_mobile(row["mobile"])
        except IdentifierError as exc:
            raise Invalid(f"resident row {n}: {exc}") from None
    now = clock.now()
    for start in range(0, len(rows), _BATCH):
        batch = [r | {"synthetic": synthetic, "created_at": now} for r in rows[start:start + _BATCH]]
        db.execute(insert(Resident), batch)
    audit.record(db, actor=actor, action="resident.bulk_load", object_type="resident",
                 after={"rows": len(rows), "synthetic": synthetic})
    return len(rows)


def load_enterprises(db: Session, *, enterprises: Iterable[Any], actor: Actor, synthetic: bool = True) -> int:
    rows = _rows(enterprises)
    for n, row in enumerate(rows, 1):
        try:
            validate_credit_code(row["credit_code"])
        except IdentifierError as exc:
            raise Invalid(f"enterprise row {n}: {exc}") from None
    now = clock.now()
    for start in range(0, len(rows), _BATCH):
        batch = [r | {"synthetic": synthetic, "created_at": now} for r in rows[start:start + _BATCH]]
        db.execute(insert(Enterprise), batch)
    audit.record(db, actor=actor, action="enterprise.bulk_load", object_type="enterprise",
                 after={"rows": len(rows), "synthetic": synthetic})
    return len(rows)


def residents_by_township(db: Session) -> dict[str, int]:
    q = select(Resident.township_code, func.count()).group_by(Resident.township_code)
    return {code: n for code, n in db.execute(q)}
