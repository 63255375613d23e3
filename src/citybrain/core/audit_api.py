"""Audit log over HTTP: list entries and verify the chain."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict

from . import audit
from .actor import Actor
from .auth import require
from .db import DbSession

router = APIRouter()


class AuditEntryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    at: datetime
    actor: str
    action: str
    object_type: str
    object_id: str | None
    before: Any
    after: Any
    hash: str


class VerifyRead(BaseModel):
    ok: bool
    checked: int
    bad_id: int | None
    reason: str


@router.get("", response_model=list[AuditEntryRead])
def entries(
    db: DbSession, _actor: Annotated[Actor, require("audit:read")],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100, before_id: int | None = None,
    object_type: str | None = None,
) -> list[AuditEntryRead]:
    rows = audit.list_entries(db, limit=limit, before_id=before_id, object_type=object_type)
    return [AuditEntryRead.model_validate(r) for r in rows]


@router.get("/verify", response_model=VerifyRead)
def verify(db: DbSession, _actor: Annotated[Actor, require("audit:read")]) -> VerifyRead:
    r = audit.verify(db)
    return VerifyRead(ok=r.ok, checked=r.checked, bad_id=r.bad_id, reason=r.reason)
