"""Pages of the data resource pool: the catalog browser and a resource's page.

Reading rows on a page goes through ``access.read_rows`` like every API read, so a page shows
what the viewer's grant allows, masked the same way, and the read is logged.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from citybrain.core import clock
from citybrain.core.actor import Actor
from citybrain.core.auth import page_require
from citybrain.core.db import DbSession
from citybrain.core.errors import DomainError
from citybrain.org import service as org_service
from citybrain.web.render import render

from . import access, catalog, databases, search
from . import page_labels as labels
from .models import CatalogEntry, DataLoad, Grant, QualityRun, ShareRequest

router = APIRouter(include_in_schema=False)
Reader = Annotated[Actor, Depends(page_require("data:read"))]

PAGE_SIZE = 20
PREVIEW_ROWS = 20
CHINA = timezone(timedelta(hours=8))


def local(at: datetime | None) -> str:
    return at.astimezone(CHINA).strftime("%Y-%m-%d %H:%M") if at else "—"


def page_number(value: str | None) -> int:
    try:
        return max(1, min(int(value or 1), 10_000))
    except ValueError:
        return 1


def common(db: Session) -> dict[str, Any]:
    """Lookups every data page uses."""
    return {"departments": {d.id: d for d in org_service.list_departments(db)}, "labels": labels,
            "local": local, "urlencode": urlencode}


@router.get("/data")
def catalog_page(request: Request, db: DbSession, actor: Reader) -> Response:
    names = ("q", "department", "class_kind", "sharing_type", "database", "update_cycle")
    query = {n: v for n in names if (v := request.query_params.get(n, "").strip())}
    page = page_number(request.query_params.get("page"))
    filters = {k: [v] for k, v in query.items() if k != "q"}
    result = search.search(db, q=query.get("q", ""), filters=filters, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    ctx = {**common(db), "query": query, "page": page, "result": result,
           "has_next": page * PAGE_SIZE < result.total, "databases": databases.DATABASES}
    return render(request, "data/catalog.html", ctx, actor=actor)


def viewer_access(db: Session, actor: Actor, entry: CatalogEntry) -> dict[str, Any]:
    """What the viewer may do with the resource's rows, for the page to explain."""
    now = clock.now()
    own = actor.department_id is not None and actor.department_id == entry.provider_department_id
    grant = None
    pending = None
    if actor.department_id is not None and not own:
        grant = db.scalar(select(Grant).where(
            Grant.entry_id == entry.id, Grant.consumer_department_id == actor.department_id,
            Grant.revoked_at.is_(None), Grant.expires_at > now).order_by(Grant.expires_at.desc()))
        pending = db.scalar(select(ShareRequest).where(
            ShareRequest.entry_id == entry.id, ShareRequest.consumer_department_id == actor.department_id,
            ShareRequest.status == "pending"))
    return {"own": own, "grant": grant, "pending": pending,
            "can_publish": _can_publish(actor, entry),
            "can_request": (not own and actor.department_id is not None and entry.sharing_type == "conditional"
                            and grant is None and pending is None)}


def _can_publish(actor: Actor, entry: CatalogEntry) -> bool:
    try:
        catalog.check_can_publish(actor, entry)
    except DomainError:
        return False
    return True


@router.get("/data/entries/{entry_id}")
def entry_page(request: Request, entry_id: int, db: DbSession, actor: Reader) -> Response:
    entry = catalog.get_entry(db, entry_id=entry_id)
    loads = list(db.scalars(select(DataLoad).where(DataLoad.entry_id == entry.id)
                            .order_by(DataLoad.id.desc()).limit(10)))
    run = db.scalar(select(QualityRun).where(QualityRun.entry_id == entry.id).order_by(QualityRun.id.desc()))
    rows = None
    rows_error = ""
    if entry.row_count:
        try:
            rows = access.read_rows(db, entry=entry, actor=actor, via="page", limit=PREVIEW_ROWS,
                                    include_total=False)
        except DomainError as exc:
            rows_error = exc.message
    related = list(db.scalars(select(CatalogEntry).where(CatalogEntry.code.in_(entry.related_codes or []))))
    sources = {i.source_entry_code for i in entry.items if i.source_entry_code}
    source_entries = {e.code: e for e in db.scalars(select(CatalogEntry).where(CatalogEntry.code.in_(sources)))}
    ctx = {**common(db), "entry": entry, "loads": loads, "run": run, "rows": rows, "rows_error": rows_error,
           "item_names": {i.code: i.name for i in entry.items}, "related": related,
           "source_entries": source_entries, "access": viewer_access(db, actor, entry),
           "now": datetime.now(UTC)}
    return render(request, "data/entry.html", ctx, actor=actor)
