"""The one door to a resource's rows: ``read_rows`` checks access, narrows, masks and logs.

Every reader of rows (our JSON API, the CKAN ``datastore_search``, pages, exports) calls
``read_rows``; nothing else selects from a ``ds_<id>`` table for a user. Queries are built with
SQLAlchemy Core from the entry's table; names in filters, fields and sort are checked against the
entry's information items first, and values are bound parameters, never SQL text.

Filtering: ``filters`` is equality per item code (a list of values means any of them); ``q`` is a
case-insensitive substring searched in the string columns the reader sees *in clear* (never in
masked columns, so ``q`` cannot be used to guess a masked value piece by piece). Sorting: ``"col asc,
col2 desc"`` over visible items and ``_id``; rows come in ``_id`` order otherwise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Table, func, insert, or_, select
from sqlalchemy.orm import Session

from citybrain.core import audit, clock
from citybrain.core.actor import Actor
from citybrain.core.errors import Forbidden, Invalid

from . import sharing, storage, values
from .enums import ItemType
from .masking import MaskingRules, load_rules
from .models import AccessLog, CatalogEntry, InfoItem

MAX_LIMIT = 32000  # CKAN's ckan.datastore.search.rows_max default
MAX_Q = 200
MAX_FILTER_VALUES = 1000
VIAS = frozenset({"api", "ckan", "page", "export"})
CKAN_TYPES = {ItemType.STRING: "text", ItemType.INTEGER: "int", ItemType.DECIMAL: "numeric",
              ItemType.DATE: "date", ItemType.DATETIME: "timestamp", ItemType.BOOLEAN: "bool"}


@dataclass(frozen=True)
class ReadResult:
    entry: CatalogEntry
    fields: list[dict[str, str]]  # [{"id": code, "type": CKAN type}] in record order
    records: list[dict[str, Any]]  # JSON-ready values (dates as ISO text), masked as the reader must see them
    total: int | None
    limit: int
    offset: int
    masked: list[str]  # item codes whose values were masked
    unmasked: bool  # personal fields were served in clear
    grant_id: int | None


def _visible_items(entry: CatalogEntry, access: sharing.Access) -> list[InfoItem]:
    return [i for i in entry.items if access.fields is None or i.code in access.fields]


def _check_names(names: list[str], entry: CatalogEntry, visible: dict[str, InfoItem], what: str) -> None:
    known = {i.code for i in entry.items}
    unknown = [n for n in names if n not in known and n != "_id"]
    if unknown:
        raise Invalid(f"{what} {', '.join(repr(n) for n in unknown)} not an information item of {entry.code}; "
                      f"known: _id, {', '.join(i.code for i in entry.items)}")
    outside = [n for n in names if n != "_id" and n not in visible]
    if outside:
        raise Forbidden(f"{what} {', '.join(outside)} outside your department's grant for {entry.code}; "
                        f"granted: {', '.join(visible)}")


def _parse_sort(sort: str | None) -> list[tuple[str, bool]]:
    order: list[tuple[str, bool]] = []
    for part in (sort or "").split(","):
        words = part.split()
        if not words:
            continue
        if len(words) > 2 or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
            raise Invalid(f"sort {part.strip()!r} must be '<field>' or '<field> asc|desc'")
        order.append((words[0].strip('"'), len(words) == 2 and words[1].lower() == "desc"))
    return order


def _typed(item: InfoItem, value: Any) -> Any:
    if value is None:
        return None
    if ItemType(item.data_type) is ItemType.STRING:
        if isinstance(value, dict | list):
            raise Invalid(f"filter {item.code}: {value!r} is not a text value")
        return str(value)
    try:
        return values.converter(item)(value)
    except (values.BadValue, TypeError, ValueError) as exc:
        raise Invalid(f"filter {item.code}: {value!r} is not a valid {item.data_type} ({exc})") from exc


def _conditions(table: Table, items: dict[str, InfoItem], filters: dict[str, Any], q: str | None,
                searchable: list[str]) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    for code, raw in filters.items():
        col = table.c[code]
        if code == "_id":
            wanted = raw if isinstance(raw, list) else [raw]
            try:
                typed = [int(v) for v in wanted]
            except (TypeError, ValueError) as exc:
                raise Invalid(f"filter _id: {raw!r} is not a row id") from exc
        else:
            typed = [_typed(items[code], v) for v in (raw if isinstance(raw, list) else [raw])]
        if len(typed) > MAX_FILTER_VALUES:
            raise Invalid(f"filter {code}: at most {MAX_FILTER_VALUES} values")
        present = [v for v in typed if v is not None]
        options = [col.in_(present)] if present else []
        if len(present) < len(typed):
            options.append(col.is_(None))
        conds.append(or_(*options) if options else col.in_([]))
    if q:
        pattern = "%" + q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        conds.append(or_(*(func.lower(table.c[c]).like(pattern, escape="\\") for c in searchable)) if searchable
                     else table.c["_id"].in_([]))
    return conds


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _validate(filters: Any, q: str | None, limit: int, offset: int, via: str) -> dict[str, Any]:
    if via not in VIAS:
        raise Invalid(f"via must be one of {', '.join(sorted(VIAS))}")
    if not isinstance(limit, int) or not 0 <= limit <= MAX_LIMIT:
        raise Invalid(f"limit must be between 0 and {MAX_LIMIT}")
    if not isinstance(offset, int) or offset < 0:
        raise Invalid("offset must be 0 or more")
    if q is not None and len(q) > MAX_Q:
        raise Invalid(f"q is longer than {MAX_Q} characters")
    if filters is None:
        return {}
    if not isinstance(filters, dict):
        raise Invalid('filters must be an object of field: value, e.g. {"township_code": "370306001"}')
    return filters


def read_rows(db: Session, *, entry: CatalogEntry, actor: Actor, via: str, filters: dict[str, Any] | None = None,
              q: str | None = None, fields: list[str] | None = None, sort: str | None = None, limit: int = 100,
              offset: int = 0, include_total: bool = True, rules: MaskingRules | None = None) -> ReadResult:
    """Rows of ``entry`` as ``actor`` may see them; one ``AccessLog`` row per call (and an audit
    entry when personal fields are served in clear under a grant)."""
    filters = _validate(filters, q, limit, offset, via)
    access = sharing.access_for(db, entry=entry, actor=actor)
    visible = {i.code: i for i in _visible_items(entry, access)}
    order = _parse_sort(sort)
    wanted = list(dict.fromkeys(fields)) if fields else ["_id", *visible]
    checks = ((wanted, "field(s)"), (list(filters), "filter field(s)"), ([c for c, _ in order], "sort field(s)"))
    for names, what in checks:
        _check_names(names, entry, visible, what)
    rules = rules or load_rules()
    masked = [c for c in wanted if c in visible and visible[c].personal and not access.unmasked]
    searchable = [c for c, i in visible.items() if i.data_type == ItemType.STRING and c not in
                  {m for m, it in visible.items() if it.personal and not access.unmasked}]
    table = storage.table_for(entry)
    conds = _conditions(table, visible, filters, (q or "").strip() or None, searchable)
    stmt = select(*(table.c[c] for c in wanted)).where(*conds)
    stmt = stmt.order_by(*(table.c[c].desc() if desc else table.c[c].asc() for c, desc in order), table.c["_id"])
    rows = db.execute(stmt.limit(limit).offset(offset)).all() if limit else []
    total = db.scalar(select(func.count()).select_from(table).where(*conds)) if include_total else None
    records = [{c: _json_value(rules.mask(visible[c].personal, v) if c in masked else v)
                for c, v in zip(wanted, row, strict=True)} for row in rows]
    result = ReadResult(entry=entry, fields=[_field(c, visible) for c in wanted], records=records, total=total,
                        limit=limit, offset=offset, masked=masked, grant_id=access.grant.id if access.grant else None,
                        unmasked=access.unmasked and any(visible[c].personal for c in wanted if c in visible))
    _log(db, result, actor, via, wanted, {"filters": filters, "q": q, "sort": sort, "limit": limit,
                                          "offset": offset}, access)
    return result


def _field(code: str, visible: dict[str, InfoItem]) -> dict[str, str]:
    return {"id": code, "type": "int" if code == "_id" else CKAN_TYPES[ItemType(visible[code].data_type)]}


def _log(db: Session, result: ReadResult, actor: Actor, via: str, fields: list[str], query: dict[str, Any],
         access: sharing.Access) -> None:
    text = json.dumps({k: v for k, v in query.items() if v not in (None, {}, "")}, ensure_ascii=False, default=str)
    db.execute(insert(AccessLog).values(
        at=clock.now(), entry_id=result.entry.id, user_id=actor.user_id, actor=actor.label,
        department_id=actor.department_id, grant_id=result.grant_id, via=via, fields=fields,
        rows=len(result.records), unmasked=result.unmasked, query=text[:4000]))
    if result.unmasked and not access.own:
        audit.record(db, actor=actor, action="data.read.unmasked", object_type="data_catalog_entry",
                     object_id=str(result.entry.id), after={"grant": result.grant_id, "via": via, "fields": fields,
                                                            "rows": len(result.records), "query": text[:1000]})


def access_log(db: Session, *, actor: Actor, entry: CatalogEntry, limit: int = 200, offset: int = 0) -> list[AccessLog]:
    """Who read ``entry``'s rows, newest first: for its provider department and data admins."""
    sharing.check_can_decide(actor, entry)
    if not 1 <= limit <= 1000 or offset < 0:
        raise Invalid("limit must be 1..1000 and offset at least 0")
    return list(db.scalars(select(AccessLog).where(AccessLog.entry_id == entry.id)
                           .order_by(AccessLog.id.desc()).limit(limit).offset(offset)))
