"""The government information resource catalog (政务信息资源目录): create, change, find entries.

An entry's information items decide the shape of its data table (``storage.py``), so an item
that holds data cannot change type or disappear; new items are added as new columns.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from citybrain.core import audit, clock
from citybrain.core.actor import Actor
from citybrain.core.errors import Conflict, Forbidden, Invalid, NotFound
from citybrain.org import service as org_service

from . import segment, storage
from .models import CatalogEntry, InfoItem
from .schemas import EntryIn

_ITEM_FIELDS = ("code", "name", "data_type", "length", "description", "required", "personal",
                "source_entry_code", "source_item_code")


def slug_for(code: str) -> str:
    """CKAN package names are lower-case ASCII, digits, '-' and '_' (2-100 characters)."""
    return re.sub(r"[^a-z0-9_-]+", "-", code.lower()).strip("-")[:100]


def get_entry(db: Session, *, entry_id: int) -> CatalogEntry:
    entry = db.get(CatalogEntry, entry_id)
    if entry is None:
        raise NotFound(f"catalog entry {entry_id} not found")
    return entry


def get_by_code(db: Session, *, code: str) -> CatalogEntry:
    entry = db.scalar(select(CatalogEntry).where(CatalogEntry.code == code))
    if entry is None:
        raise NotFound(f"no catalog entry with code {code!r}")
    return entry


def find(db: Session, *, ref: str) -> CatalogEntry:
    """An entry by code, slug, CKAN package id or resource id (what API clients may pass)."""
    entry = db.scalar(select(CatalogEntry).where(
        (CatalogEntry.code == ref) | (CatalogEntry.slug == ref) | (CatalogEntry.package_id == ref)
        | (CatalogEntry.resource_id == ref)))
    if entry is None:
        raise NotFound(f"no catalog entry {ref!r}")
    return entry


def check_can_publish(actor: Actor, entry: CatalogEntry) -> None:
    """Department staff describe and load their own department's resources; data admins any."""
    if actor.can("data:admin"):
        return
    actor.check("data:publish")
    if actor.department_id != entry.provider_department_id:
        raise Forbidden("this resource belongs to another department")


def _search_text(data: EntryIn, provider_name: str) -> str:
    parts = [data.name, data.abstract, data.keywords, data.class_name, provider_name,
             *(i.name for i in data.items), *(i.description for i in data.items)]
    return segment.index_text(" ".join(p for p in parts if p))


def _apply(entry: CatalogEntry, data: EntryIn, provider_id: int, provider_code: str, provider_name: str) -> None:
    for name in ("name", "class_kind", "class_code", "class_name", "database", "abstract", "keywords", "format",
                 "sharing_type", "sharing_conditions", "sharing_method", "open_type", "update_cycle",
                 "published_on", "related_codes", "key_fields"):
        value = getattr(data, name)
        setattr(entry, name, value.value if hasattr(value, "value") else value)
    entry.provider_department_id = provider_id
    entry.provider_code = provider_code
    entry.search_text = _search_text(data, provider_name)
    entry.updated_at = clock.now()


def _snapshot(entry: CatalogEntry) -> dict[str, Any]:
    return {"code": entry.code, "name": entry.name, "sharing_type": entry.sharing_type,
            "items": [i.code for i in entry.items]}


def create_entry(db: Session, *, data: EntryIn, actor: Actor, synthetic: bool = False) -> CatalogEntry:
    dept = org_service.get_department_by_code(db, code=data.provider_department_code)
    if not actor.can("data:admin"):
        actor.check("data:publish")
        if actor.department_id != dept.id:
            raise Forbidden("department staff describe their own department's resources only")
    if db.scalar(select(CatalogEntry.id).where(CatalogEntry.code == data.code)) is not None:
        raise Conflict(f"catalog entry {data.code!r} already exists")
    slug = slug_for(data.code)
    if db.scalar(select(CatalogEntry.id).where(CatalogEntry.slug == slug)) is not None:
        raise Conflict(f"catalog entry code {data.code!r} collides with another entry's name {slug!r}")
    now = clock.now()
    entry = CatalogEntry(code=data.code, package_id=str(uuid.uuid4()), slug=slug, resource_id=str(uuid.uuid4()),
                         row_count=0, version=0, synthetic=synthetic, created_at=now)
    _apply(entry, data, dept.id, data.provider_code or dept.code, dept.name)
    entry.items = [InfoItem(position=n, **{f: _item_value(item, f) for f in _ITEM_FIELDS})
                   for n, item in enumerate(data.items)]
    db.add(entry)
    db.flush()
    storage.ensure_table(db, entry)
    audit.record(db, actor=actor, action="data.entry.create", object_type="data_catalog_entry",
                 object_id=str(entry.id), after=_snapshot(entry))
    return entry


def update_entry(db: Session, *, entry_id: int, data: EntryIn, actor: Actor) -> CatalogEntry:
    """Replace an entry's metadata and items. Items holding data keep their code and type."""
    entry = get_entry(db, entry_id=entry_id)
    check_can_publish(actor, entry)
    if data.code != entry.code:
        raise Invalid("a catalog entry's code cannot change; create a new entry instead")
    dept = org_service.get_department_by_code(db, code=data.provider_department_code)
    if dept.id != entry.provider_department_id and not actor.can("data:admin"):
        raise Forbidden("only a data administrator moves a resource to another department")
    before = _snapshot(entry)
    old = {i.code: i for i in entry.items}
    new_codes = {i.code for i in data.items}
    if entry.row_count:
        gone = sorted(set(old) - new_codes)
        if gone:
            raise Invalid(f"item(s) {', '.join(gone)} hold data and cannot be removed")
        retyped = sorted(i.code for i in data.items if i.code in old and old[i.code].data_type != i.data_type.value)
        if retyped:
            raise Invalid(f"item(s) {', '.join(retyped)} hold data and cannot change type")
    _apply(entry, data, dept.id, data.provider_code or dept.code, dept.name)
    kept: list[InfoItem] = []
    for n, item in enumerate(data.items):
        row = old.get(item.code) or InfoItem(code=item.code)
        for f in _ITEM_FIELDS:
            setattr(row, f, _item_value(item, f))
        row.position = n
        kept.append(row)
    entry.items = kept
    db.flush()
    storage.ensure_table(db, entry)
    audit.record(db, actor=actor, action="data.entry.update", object_type="data_catalog_entry",
                 object_id=str(entry.id), before=before, after=_snapshot(entry))
    return entry


def _item_value(item: Any, name: str) -> Any:
    value = getattr(item, name)
    return value.value if hasattr(value, "value") else value


def list_entries(db: Session, *, department_id: int | None = None, database: str | None = None) -> list[CatalogEntry]:
    q = select(CatalogEntry).order_by(CatalogEntry.code)
    if department_id is not None:
        q = q.where(CatalogEntry.provider_department_id == department_id)
    if database is not None:
        q = q.where(CatalogEntry.database == database)
    return list(db.scalars(q))


def entry_input(db: Session, *, entry: CatalogEntry) -> EntryIn:
    """An entry's metadata as the ``EntryIn`` that would describe it again (export, edit forms)."""
    dept = org_service.get_department(db, department_id=entry.provider_department_id)
    fields = {name: getattr(entry, name) for name in EntryIn.model_fields if hasattr(entry, name) and name != "items"}
    fields.update(provider_department_code=dept.code, related_codes=list(entry.related_codes or []),
                  key_fields=list(entry.key_fields or []))
    items = [{f: getattr(i, f) for f in _ITEM_FIELDS} for i in entry.items]
    return EntryIn.model_validate({**fields, "items": items})
