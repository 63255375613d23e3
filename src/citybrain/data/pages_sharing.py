"""Conditional sharing (有条件共享) pages: request access, the provider's inbox, grants.

Every action goes through ``sharing`` like the JSON API; a refused action is shown on the page
it came from with the reason, and nothing changes.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from citybrain.core import clock
from citybrain.core.actor import Actor
from citybrain.core.auth import page_require
from citybrain.core.db import DbSession
from citybrain.core.errors import DomainError, Invalid
from citybrain.web.render import gettext_for, render

from . import sharing
from .models import CatalogEntry
from .pages import common
from .pages_manage import Posted

router = APIRouter(include_in_schema=False)
Reader = Annotated[Actor, Depends(page_require("data:read"))]


def _entries(db: Session, ids: set[int]) -> dict[int, CatalogEntry]:
    return {e.id: e for e in db.scalars(select(CatalogEntry).where(CatalogEntry.id.in_(ids)))} if ids else {}


def _days(form: FormData) -> int:
    raw = str(form.get("days", "")).strip()
    if not raw.isdigit():
        raise Invalid("days must be a whole number of days")
    return int(raw)


def _fields(form: FormData) -> list[str]:
    return [str(v) for v in form.getlist("fields") if str(v)]


@router.post("/data/entries/{entry_id}/request")
def request_access(request: Request, entry_id: int, db: DbSession, actor: Reader, form: Posted) -> Response:
    try:
        with db.begin_nested():
            sharing.file_request(db, entry_id=entry_id, actor=actor, purpose=str(form.get("purpose", "")),
                                 fields=_fields(form), unmasked=form.get("unmasked") == "1", days=_days(form))
    except DomainError as exc:
        return _requests_page(request, db, actor, error=exc.message, status_code=422)
    return RedirectResponse(f"/data/entries/{entry_id}", status_code=303)


def _requests_page(request: Request, db: Session, actor: Actor, *, error: str = "", status_code: int = 200) -> Response:
    incoming = sharing.list_requests(db, actor=actor, role="provider") if (
        actor.can("data:publish") or actor.can("data:admin")) else []
    outgoing = sharing.list_requests(db, actor=actor, role="consumer") if actor.department_id else []
    incoming.sort(key=lambda r: (r.status != "pending", -r.id))
    ctx: dict[str, Any] = {**common(db), "incoming": incoming, "outgoing": outgoing, "error": error,
                           "entries": _entries(db, {r.entry_id for r in incoming + outgoing})}
    return render(request, "data/requests.html", ctx, actor=actor, status_code=status_code)


@router.get("/data/requests")
def requests_page(request: Request, db: DbSession, actor: Reader) -> Response:
    return _requests_page(request, db, actor)


@router.post("/data/requests/{request_id}/{action}")
def decide(request: Request, request_id: int, action: str, db: DbSession, actor: Reader, form: Posted) -> Response:
    _ = gettext_for(request)
    try:
        with db.begin_nested():
            if action == "approve":
                sharing.approve(db, request_id=request_id, actor=actor, days=_days(form), fields=_fields(form) or None,
                                unmasked=form.get("unmasked") == "1")
            elif action == "refuse":
                sharing.refuse(db, request_id=request_id, actor=actor, reason=str(form.get("reason", "")))
            elif action == "withdraw":
                sharing.withdraw(db, request_id=request_id, actor=actor)
            else:
                raise Invalid(_("Unknown action."))
    except DomainError as exc:
        return _requests_page(request, db, actor, error=exc.message, status_code=422)
    return RedirectResponse("/data/requests", status_code=303)


def _grants_page(request: Request, db: Session, actor: Actor, *, error: str = "", status_code: int = 200) -> Response:
    mine = sharing.list_grants(db, actor=actor, role="consumer") if actor.department_id else []
    given = sharing.list_grants(db, actor=actor, role="provider") if (
        actor.can("data:publish") or actor.can("data:admin")) else []
    ctx: dict[str, Any] = {**common(db), "mine": mine, "given": given, "error": error, "now": clock.now(),
                           "entries": _entries(db, {g.entry_id for g in mine + given})}
    return render(request, "data/grants.html", ctx, actor=actor, status_code=status_code)


@router.get("/data/grants")
def grants_page(request: Request, db: DbSession, actor: Reader) -> Response:
    return _grants_page(request, db, actor)


@router.post("/data/grants/{grant_id}/revoke")
def revoke(request: Request, grant_id: int, db: DbSession, actor: Reader) -> Response:
    try:
        with db.begin_nested():
            sharing.revoke(db, grant_id=grant_id, actor=actor)
    except DomainError as exc:
        return _grants_page(request, db, actor, error=exc.message, status_code=422)
    return RedirectResponse("/data/grants", status_code=303)
