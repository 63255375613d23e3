"""Catalog entries as CKAN packages and departments as CKAN organizations (for ``ckan_api``).

One catalog entry is one CKAN package (``id`` = ``package_id``, ``name`` = ``slug``) with one
DataStore resource (``resource_id``); the GB/T 21063 metadata CKAN has no field for goes into
``extras``. An organization is a department that provides at least one resource; its ``name`` is
the department code.

``package_search`` cuts ``q`` into words with ``segment.words`` (every word must be one of the
entry's indexed words, as in the catalog search) and understands these ``fq`` terms, all of which
must hold: ``organization:``, ``tags:``, ``res_format:``, ``sharing_type:``, ``class_kind:``,
``database:``, ``update_cycle:``, ``name:`` (values may be double-quoted; a leading ``+`` is
ignored).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, false, select
from sqlalchemy.orm import Session

from citybrain.core.errors import Invalid, NotFound
from citybrain.org.models import Department

from . import catalog, search
from .models import CatalogEntry

MAX_ROWS = 1000
FQ_FIELDS = ("organization", "tags", "res_format", "sharing_type", "class_kind", "database", "update_cycle", "name")
FACET_FIELDS = ("organization", "tags", "res_format", "sharing_type", "class_kind", "database", "update_cycle")
SORT_FIELDS = ("score", "name", "title", "title_string", "metadata_modified", "metadata_created")
DEFAULT_SORT = "score desc, metadata_modified desc"
_FQ_TERM = re.compile(r'\+?([a-z_]+):(?:"([^"]*)"|(\S+))')
_TAG_SPLIT = re.compile(r"[,，;；、\s]+")


class SearchQueryError(Invalid):
    """A ``q``/``fq``/``sort`` CKAN cannot parse: CKAN answers "Search Query Error"."""


def ckan_time(moment: datetime | None) -> str | None:
    """CKAN writes naive UTC ISO timestamps."""
    return moment.replace(tzinfo=None).isoformat() if moment else None


def tags_of(entry_keywords: str) -> list[str]:
    return list(dict.fromkeys(t for t in _TAG_SPLIT.split(entry_keywords or "") if t))


def organization_dict(dept: Department, package_count: int | None = None) -> dict[str, Any]:
    org = {"id": str(dept.id), "name": dept.code, "title": dept.name, "display_name": dept.name,
           "description": dept.description, "type": "organization", "is_organization": True,
           "state": "active" if dept.active else "deleted", "image_url": "", "approval_status": "approved",
           "created": ckan_time(dept.created_at)}
    if package_count is not None:
        org["package_count"] = package_count
    return org


def _extras(entry: CatalogEntry) -> list[dict[str, str]]:
    items = [{"code": i.code, "name": i.name, "data_type": i.data_type, "description": i.description,
              "personal": i.personal, "source": f"{i.source_entry_code}#{i.source_item_code}"
              if i.source_entry_code else None} for i in entry.items]
    pairs = {"resource_code": entry.code, "class_kind": entry.class_kind, "class_code": entry.class_code,
             "class_name": entry.class_name, "database": entry.database or "", "provider_code": entry.provider_code,
             "sharing_type": entry.sharing_type, "sharing_conditions": entry.sharing_conditions,
             "sharing_method": entry.sharing_method, "open_type": entry.open_type, "update_cycle": entry.update_cycle,
             "published_on": entry.published_on.isoformat() if entry.published_on else "",
             "related_codes": ",".join(entry.related_codes or []), "key_fields": ",".join(entry.key_fields or []),
             "information_items": json.dumps(items, ensure_ascii=False), "row_count": str(entry.row_count),
             "quality_score": "" if entry.quality_score is None else f"{entry.quality_score:.1f}"}
    return [{"key": k, "value": str(v)} for k, v in pairs.items()]


def resource_dict(entry: CatalogEntry, base_url: str) -> dict[str, Any]:
    return {"id": entry.resource_id, "package_id": entry.package_id, "name": entry.name,
            "description": entry.abstract, "format": entry.format, "mimetype": "application/json",
            "url": f"{base_url}/api/3/action/datastore_search?resource_id={entry.resource_id}",
            "url_type": "datastore", "datastore_active": True, "state": "active", "position": 0,
            "created": ckan_time(entry.created_at), "last_modified": ckan_time(entry.loaded_at),
            "metadata_modified": ckan_time(entry.updated_at)}


def package_dict(entry: CatalogEntry, dept: Department, base_url: str) -> dict[str, Any]:
    tags = tags_of(entry.keywords)
    return {
        "id": entry.package_id, "name": entry.slug, "title": entry.name, "notes": entry.abstract,
        "type": "dataset", "state": "active", "private": False, "version": str(entry.version),
        "url": f"{base_url}/data/entries/{entry.id}", "license_id": None, "author": dept.name, "maintainer": dept.name,
        "owner_org": str(dept.id), "organization": organization_dict(dept),
        "metadata_created": ckan_time(entry.created_at), "metadata_modified": ckan_time(entry.updated_at),
        "num_resources": 1, "num_tags": len(tags), "groups": [],
        "tags": [{"name": t, "display_name": t, "state": "active"} for t in tags],
        "extras": _extras(entry), "resources": [resource_dict(entry, base_url)],
        "sharing_type": entry.sharing_type,
    }


def _departments(db: Session) -> dict[int, Department]:
    return {d.id: d for d in db.scalars(select(Department))}


def show_package(db: Session, *, ref: str, base_url: str) -> dict[str, Any]:
    entry = catalog.find(db, ref=ref)
    return package_dict(entry, _departments(db)[entry.provider_department_id], base_url)


def package_list(db: Session, *, limit: int | None, offset: int) -> list[str]:
    q = select(CatalogEntry.slug).order_by(CatalogEntry.slug).offset(offset)
    return list(db.scalars(q.limit(limit) if limit is not None else q))


def _provider_counts(db: Session) -> Counter[int]:
    return Counter(db.scalars(select(CatalogEntry.provider_department_id)))


def organization_list(db: Session, *, all_fields: bool, sort: str, limit: int | None, offset: int) -> list[Any]:
    counts = _provider_counts(db)
    depts = [d for d in _departments(db).values() if counts[d.id]]
    key, _, direction = (sort or "name asc").partition(" ")
    sorters = {"name": lambda d: d.code, "title": lambda d: d.name, "package_count": lambda d: counts[d.id]}
    if key not in sorters or direction.strip() not in ("", "asc", "desc"):
        raise Invalid(f"sort {sort!r} must be name, title or package_count, then asc or desc")
    depts.sort(key=sorters[key], reverse=direction.strip() == "desc")
    page = depts[offset:None if limit is None else offset + limit]
    return [organization_dict(d, counts[d.id]) if all_fields else d.code for d in page]


def organization_show(db: Session, *, ref: str, include_datasets: bool, base_url: str) -> dict[str, Any]:
    dept = next((d for d in _departments(db).values() if ref in (d.code, str(d.id))), None)
    counts = _provider_counts(db)
    if dept is None or not counts[dept.id]:
        raise NotFound(f"organization {ref!r} not found (organizations are departments that provide resources)")
    org = organization_dict(dept, counts[dept.id])
    if include_datasets:
        entries = catalog.list_entries(db, department_id=dept.id)
        org["packages"] = [package_dict(e, dept, base_url) for e in entries[:1000]]
    return org


def parse_fq(fq: str) -> list[tuple[str, str]]:
    terms: list[tuple[str, str]] = []
    rest = _FQ_TERM.sub(lambda m: terms.append((m[1], m[2] if m[2] is not None else m[3])) or "", fq or "")
    if rest.strip():
        raise SearchQueryError(f"cannot parse fq near {rest.strip()[:40]!r}: use field:value terms with fields "
                               f"{', '.join(FQ_FIELDS)}")
    unknown = [f for f, _ in terms if f not in FQ_FIELDS]
    if unknown:
        raise SearchQueryError(f"fq field {unknown[0]!r} is not supported; use {', '.join(FQ_FIELDS)}")
    return terms


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _like(text: str) -> str:
    return "%" + _escape(text) + "%"


def _fq_condition(db: Session, field: str, value: str) -> ColumnElement[bool]:
    if field == "organization":
        dept_id = db.scalar(select(Department.id).where(Department.code == value))
        return CatalogEntry.provider_department_id == dept_id if dept_id is not None else false()
    if field == "tags":
        return CatalogEntry.keywords.like(_like(value), escape="\\")  # refined to whole tags in Python
    if field == "res_format":
        return CatalogEntry.format == value
    if field == "name":
        return CatalogEntry.slug == value
    return getattr(CatalogEntry, field) == value


@dataclass(frozen=True)
class _Row:
    id: int
    slug: str
    name: str
    abstract: str
    keywords: str
    provider_department_id: int
    format: str
    sharing_type: str
    class_kind: str
    database: str | None
    update_cycle: str
    created_at: datetime
    updated_at: datetime


def _parse_sort(sort: str) -> list[tuple[str, bool]]:
    order = []
    for part in (sort or DEFAULT_SORT).split(","):
        field, _, direction = part.strip().partition(" ")
        direction = direction.strip().lower() or "asc"
        if field not in SORT_FIELDS or direction not in ("asc", "desc"):
            raise SearchQueryError(f"cannot sort by {part.strip()!r}: use {', '.join(SORT_FIELDS)} with asc or desc")
        order.append((field, direction == "desc"))
    return order


def _sorted(rows: list[_Row], words: list[str], order: list[tuple[str, bool]]) -> list[_Row]:
    def score(r: _Row) -> int:
        return sum(3 if w in r.name.lower() else 1 if w in f"{r.abstract} {r.keywords}".lower() else 0 for w in words)

    keys = {"score": score, "name": lambda r: r.slug, "title": lambda r: r.name, "title_string": lambda r: r.name,
            "metadata_modified": lambda r: r.updated_at, "metadata_created": lambda r: r.created_at}
    rows = sorted(rows, key=lambda r: r.slug)
    for field, desc in reversed(order):  # stable sorts, last key first
        rows.sort(key=keys[field], reverse=desc)
    return rows


def _facet_values(row: _Row, field: str, depts: dict[int, Department]) -> list[tuple[str, str]]:
    if field == "organization":
        d = depts[row.provider_department_id]
        return [(d.code, d.name)]
    if field == "tags":
        return [(t, t) for t in tags_of(row.keywords)]
    value = row.format if field == "res_format" else getattr(row, field)
    return [(value, value)] if value else []


def _facets(rows: list[_Row], fields: list[str], depts: dict[int, Department], limit: int) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for field in fields:
        if field not in FACET_FIELDS:
            raise SearchQueryError(f"facet.field {field!r} is not supported; use {', '.join(FACET_FIELDS)}")
        counts: Counter[tuple[str, str]] = Counter(v for r in rows for v in _facet_values(r, field, depts))
        top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0][0]))[:limit if limit >= 0 else None]
        result[field] = {"title": field, "items": [{"count": n, "display_name": label, "name": name}
                                                   for (name, label), n in top]}
    return result


def package_search(db: Session, *, q: str, fq: str, rows: int, start: int, sort: str, facet_fields: list[str],
                   facet_limit: int, base_url: str) -> dict[str, Any]:
    if rows < 0 or start < 0:
        raise Invalid("rows and start must be 0 or more")
    rows = min(rows, MAX_ROWS)  # CKAN caps rows at ckan.search.rows_max silently
    q = "" if (q or "").strip() in ("", "*:*") else q
    words = search.query_words(q)
    order = _parse_sort(sort)
    terms = parse_fq(fq)
    conds = [CatalogEntry.search_text.like(f"% {_escape(w)} %", escape="\\") for w in words]
    conds += [_fq_condition(db, f, v) for f, v in terms]
    cols = [getattr(CatalogEntry, n) for n in _Row.__dataclass_fields__]
    found = [_Row(*r) for r in db.execute(select(*cols).where(*conds))]
    wanted_tags = [v for f, v in terms if f == "tags"]
    found = [r for r in found if all(t in tags_of(r.keywords) for t in wanted_tags)]
    depts = _departments(db)
    page_ids = [r.id for r in _sorted(found, words, order)[start:start + rows]]
    loaded = {e.id: e for e in db.scalars(select(CatalogEntry).where(CatalogEntry.id.in_(page_ids)))}
    facets = _facets(found, facet_fields, depts, facet_limit)
    return {"count": len(found), "sort": sort or DEFAULT_SORT,
            "results": [package_dict(loaded[i], depts[loaded[i].provider_department_id], base_url) for i in page_ids],
            "facets": {f: {i["name"]: i["count"] for i in v["items"]} for f, v in facets.items()},
            "search_facets": facets}
