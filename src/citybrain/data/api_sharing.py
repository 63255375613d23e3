"""JSON API of conditional sharing (mounted at /api/data): requests, decisions, grants, rows, access log.

Every route needs ``data:read``; the service decides the rest per resource (deciding a request or
revoking a grant: the provider department's ``data:publish`` staff or a ``data:admin``).
``GET /entries/{id}/rows`` is ``datastore_search`` with our JSON shape, through ``access.read_rows``.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from citybrain.core.actor import Actor
from citybrain.core.auth import require
from citybrain.core.db import DbSession
from citybrain.core.errors import Invalid

from . import access, catalog, masking, sharing

router = APIRouter()

Reader = Annotated[Actor, require("data:read")]


class RequestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    purpose: str = Field(max_length=sharing.MAX_PURPOSE)
    fields: list[str] = Field(default_factory=list, max_length=300)
    unmasked: bool = False
    days: int = 365


class ApproveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    days: int | None = None
    fields: list[str] | None = Field(default=None, max_length=300)
    unmasked: bool | None = None


class RefuseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(max_length=sharing.MAX_PURPOSE)


class RequestRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    entry_id: int
    consumer_department_id: int
    requested_by_user_id: int | None
    purpose: str
    fields: list[str]
    unmasked: bool
    days: int
    status: str
    decided_by: str
    decision_reason: str
    decided_at: datetime | None
    created_at: datetime


class GrantRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    entry_id: int
    consumer_department_id: int
    request_id: int | None
    fields: list[str]
    unmasked: bool
    expires_at: datetime
    revoked_at: datetime | None
    granted_by: str
    created_at: datetime


class RowsRead(BaseModel):
    entry_id: int
    resource_id: str
    fields: list[dict[str, str]]
    records: list[dict[str, Any]]
    total: int | None
    limit: int
    offset: int
    masked: list[str]
    unmasked: bool
    grant_id: int | None


class AccessLogRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    user_id: int | None
    actor: str
    department_id: int | None
    grant_id: int | None
    via: str
    fields: list[str]
    rows: int
    unmasked: bool
    query: str


@router.post("/entries/{entry_id}/requests", response_model=RequestRead, status_code=201)
def file_request(entry_id: int, body: RequestIn, db: DbSession, actor: Reader) -> Any:
    return sharing.file_request(db, entry_id=entry_id, actor=actor, purpose=body.purpose, fields=body.fields,
                                unmasked=body.unmasked, days=body.days)


@router.get("/requests", response_model=list[RequestRead])
def list_requests(db: DbSession, actor: Reader, role: str = "consumer", status: str | None = None,
                  entry_id: int | None = None) -> Any:
    return sharing.list_requests(db, actor=actor, role=role, status=status, entry_id=entry_id)


@router.post("/requests/{request_id}/approve", response_model=GrantRead)
def approve(request_id: int, body: ApproveIn, db: DbSession, actor: Reader) -> Any:
    return sharing.approve(db, request_id=request_id, actor=actor, days=body.days, fields=body.fields,
                           unmasked=body.unmasked)


@router.post("/requests/{request_id}/refuse", response_model=RequestRead)
def refuse(request_id: int, body: RefuseIn, db: DbSession, actor: Reader) -> Any:
    return sharing.refuse(db, request_id=request_id, actor=actor, reason=body.reason)


@router.post("/requests/{request_id}/withdraw", response_model=RequestRead)
def withdraw(request_id: int, db: DbSession, actor: Reader) -> Any:
    return sharing.withdraw(db, request_id=request_id, actor=actor)


@router.get("/grants", response_model=list[GrantRead])
def list_grants(db: DbSession, actor: Reader, role: str = "consumer", active: bool = False) -> Any:
    return sharing.list_grants(db, actor=actor, role=role, active_only=active)


@router.post("/grants/{grant_id}/revoke", response_model=GrantRead)
def revoke(grant_id: int, db: DbSession, actor: Reader) -> Any:
    return sharing.revoke(db, grant_id=grant_id, actor=actor)


def parse_filters(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise Invalid(f"filters is not valid JSON: {exc.msg}") from exc
    if not isinstance(value, dict):
        raise Invalid('filters must be a JSON object, e.g. {"township_code": "370306001"}')
    return value


@router.get("/entries/{entry_id}/rows", response_model=RowsRead)
def read_rows(entry_id: int, request: Request, db: DbSession, actor: Reader, filters: str | None = None,
              q: str | None = None, fields: str | None = None, sort: str | None = None, limit: int = 100,
              offset: int = 0, include_total: bool = True) -> RowsRead:
    """``filters`` is a JSON object (``{"code": value}`` or ``{"code": [v1, v2]}``), ``fields`` a comma list."""
    entry = catalog.get_entry(db, entry_id=entry_id)
    result = access.read_rows(
        db, entry=entry, actor=actor, via="api", filters=parse_filters(filters), q=q,
        fields=[f.strip() for f in fields.split(",") if f.strip()] if fields else None, sort=sort, limit=limit,
        offset=offset, include_total=include_total, rules=masking.rules_for(request.app.state.settings))
    return RowsRead(entry_id=entry.id, resource_id=entry.resource_id, fields=result.fields, records=result.records,
                    total=result.total, limit=result.limit, offset=result.offset, masked=result.masked,
                    unmasked=result.unmasked, grant_id=result.grant_id)


@router.get("/access-log", response_model=list[AccessLogRead])
def access_log(db: DbSession, actor: Reader, entry_id: int, limit: int = 200, offset: int = 0) -> Any:
    entry = catalog.get_entry(db, entry_id=entry_id)
    return access.access_log(db, actor=actor, entry=entry, limit=limit, offset=offset)
