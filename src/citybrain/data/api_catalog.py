"""JSON API of the government data catalog (mounted at /api/data).

Reading needs ``data:read``. Describing a resource (create, change, import) needs ``data:publish``
for one's own department's resources, or ``data:admin`` for any: ``catalog`` checks per entry.
Filters take repeated values (``?department=police&department=market`` = either).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, File, Query, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict
from sqlalchemy.orm import Session

from citybrain.core import clock
from citybrain.core.actor import Actor
from citybrain.core.auth import require
from citybrain.core.db import DbSession
from citybrain.core.errors import Invalid
from citybrain.org import service as org_service

from . import catalog, catalog_xlsx, search
from .models import CatalogEntry
from .schemas import EntryIn

router = APIRouter()

Reader = Annotated[Actor, require("data:read")]
Publisher = Annotated[Actor, require("data:publish")]
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class ItemRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    code: str
    name: str
    data_type: str
    length: int | None
    description: str
    required: bool
    personal: str | None
    source_entry_code: str | None
    source_item_code: str | None


class EntrySummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    code: str
    name: str
    slug: str
    class_kind: str
    class_code: str
    class_name: str
    database: str | None
    provider_department_id: int
    provider_department_code: str = ""
    provider_department_name: str = ""
    abstract: str
    sharing_type: str
    open_type: str
    update_cycle: str
    published_on: date | None
    row_count: int
    version: int
    quality_score: float | None
    updated_at: datetime


class EntryRead(EntrySummary):
    package_id: str
    resource_id: str
    provider_code: str
    keywords: str
    format: str
    sharing_conditions: str
    sharing_method: str
    related_codes: list[str]
    key_fields: list[str]
    loaded_at: datetime | None
    created_at: datetime
    items: list[ItemRead]


class FacetValue(BaseModel):
    value: str
    label: str  # department name, or the English msgid of an enum value (zh_CN in the catalogs)
    count: int


class EntryPage(BaseModel):
    total: int
    limit: int
    offset: int
    words: list[str]  # the words the query was cut into
    results: list[EntrySummary]
    facets: dict[str, list[FacetValue]]


def _departments(db: Session) -> dict[int, tuple[str, str]]:
    return {d.id: (d.code, d.name) for d in org_service.list_departments(db)}


def _read(model: type[EntrySummary], entry: CatalogEntry, depts: dict[int, tuple[str, str]]) -> Any:
    code, name = depts.get(entry.provider_department_id, ("", ""))
    return model.model_validate(entry).model_copy(update={"provider_department_code": code,
                                                          "provider_department_name": name})


def _filters(department: list[str], class_kind: list[str], sharing_type: list[str], database: list[str],
             update_cycle: list[str], class_code: list[str]) -> dict[str, list[str]]:
    return {"department": department, "class_kind": class_kind, "sharing_type": sharing_type,
            "database": database, "update_cycle": update_cycle, "class_code": class_code}


Many = Annotated[list[str], Query()]


@router.get("/entries", response_model=EntryPage)
def search_entries(db: DbSession, _actor: Reader, q: str = "", department: Many = [],  # noqa: B006
                   class_kind: Many = [], sharing_type: Many = [], database: Many = [],  # noqa: B006
                   update_cycle: Many = [], class_code: Many = [], sort: str = "relevance",  # noqa: B006
                   limit: Annotated[int, Query(ge=0, le=search.MAX_LIMIT)] = 20,
                   offset: Annotated[int, Query(ge=0)] = 0) -> EntryPage:
    filters = _filters(department, class_kind, sharing_type, database, update_cycle, class_code)
    result = search.search(db, q=q, filters=filters, sort=sort, limit=limit, offset=offset)
    depts = _departments(db)
    return EntryPage(total=result.total, limit=limit, offset=offset, words=result.words,
                     results=[_read(EntrySummary, e, depts) for e in result.entries],
                     facets={k: [FacetValue(value=v, label=lb, count=n) for v, lb, n in items]
                             for k, items in result.facets.items()})


@router.get("/entries/{entry_id}", response_model=EntryRead)
def show_entry(entry_id: int, db: DbSession, _actor: Reader) -> EntryRead:
    entry = catalog.get_entry(db, entry_id=entry_id)
    return _read(EntryRead, entry, _departments(db))


@router.post("/entries", response_model=EntryRead, status_code=201)
def create_entry(body: EntryIn, db: DbSession, actor: Publisher) -> EntryRead:
    entry = catalog.create_entry(db, data=body, actor=actor)
    return _read(EntryRead, entry, _departments(db))


@router.put("/entries/{entry_id}", response_model=EntryRead)
def update_entry(entry_id: int, body: EntryIn, db: DbSession, actor: Publisher) -> EntryRead:
    entry = catalog.update_entry(db, entry_id=entry_id, data=body, actor=actor)
    return _read(EntryRead, entry, _departments(db))


@router.post("/catalog/import", response_model=catalog_xlsx.ImportReport)
async def import_catalog(db: DbSession, actor: Publisher, file: Annotated[UploadFile, File()],
                         dry_run: bool = False) -> catalog_xlsx.ImportReport:
    """200 with the report whenever the workbook could be read; refused resources are in it."""
    data = await file.read(catalog_xlsx.MAX_BYTES + 1)
    if not data:
        raise Invalid("the uploaded file is empty")
    return await run_in_threadpool(catalog_xlsx.import_entries, db, data=data, actor=actor, dry_run=dry_run)


@router.get("/catalog/export")
def export_catalog(db: DbSession, _actor: Reader, q: str = "", department: Many = [],  # noqa: B006
                   class_kind: Many = [], sharing_type: Many = [], database: Many = [],  # noqa: B006
                   update_cycle: Many = [], class_code: Many = [], sort: str = "code") -> Response:  # noqa: B006
    filters = _filters(department, class_kind, sharing_type, database, update_cycle, class_code)
    result = search.search(db, q=q, filters=filters, sort=sort, limit=None, facets=())
    body = catalog_xlsx.export_entries(db, entries=result.entries)
    filename = f"{catalog_xlsx.SHEET}-{clock.now().date():%Y%m%d}.xlsx"
    disposition = f"attachment; filename=\"catalog.xlsx\"; filename*=UTF-8''{quote(filename)}"
    return Response(body, media_type=XLSX_TYPE, headers={"Content-Disposition": disposition})
