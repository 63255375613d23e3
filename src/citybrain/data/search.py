"""Catalog search: Chinese words, filters, facets and relevance (what CKAN's Solr does, without Solr).

The query is cut into words with ``segment.words``; an entry matches when *every* word is one of
its indexed words (``CatalogEntry.search_text`` holds them space-padded, so ``LIKE '% w %'``
matches whole words only). The district's catalog is ~1,600 entries, so ranking and facet counts
are computed in Python over the matched rows' few columns; only the page of entries is loaded.

Facet counts are taken over the filtered, query-matched set, the facet's own filter included
(as CKAN does): they say how many of the shown results carry each value.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, false, or_, select
from sqlalchemy.orm import Session

from citybrain.core.errors import Invalid
from citybrain.org.models import Department

from . import databases, segment
from . import page_labels as labels
from .enums import CatalogClass, SharingType, UpdateCycle
from .models import CatalogEntry

FACETS = ("department", "class_kind", "sharing_type", "database", "update_cycle")
FILTERS = (*FACETS, "class_code")
SORTS = ("relevance", "name", "code", "updated", "published")
MAX_QUERY_CHARS = 200
MAX_WORDS = 20
MAX_LIMIT = 1000
CLASS_CODE_PREFIX_RE = re.compile(r"^[1-9][0-9-]{0,31}$")
NAME_WEIGHT = 3  # a word in the name counts three times one found only in the abstract or keywords

_ENUM_FILTERS: dict[str, frozenset[str]] = {
    "class_kind": frozenset(CatalogClass),
    "sharing_type": frozenset(SharingType),
    "update_cycle": frozenset(UpdateCycle),
    "database": databases.DATABASE_KEYS,
}


@dataclass(frozen=True)
class SearchResult:
    total: int
    entries: list[CatalogEntry]
    # facet -> [(value, label, count)], most frequent first; labels are English msgids or names.
    facets: dict[str, list[tuple[str, str, int]]] = field(default_factory=dict)
    words: list[str] = field(default_factory=list)


def query_words(q: str) -> list[str]:
    q = (q or "").strip()
    if len(q) > MAX_QUERY_CHARS:
        raise Invalid(f"the search text is longer than {MAX_QUERY_CHARS} characters")
    found = segment.words(q)
    if len(found) > MAX_WORDS:
        raise Invalid(f"the search text has more than {MAX_WORDS} words")
    return found


def _like_word(word: str) -> str:
    escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"% {escaped} %"


def _conditions(db: Session, words: list[str], filters: dict[str, list[str]]) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = [CatalogEntry.search_text.like(_like_word(w), escape="\\") for w in words]
    for name, values in filters.items():
        if name not in FILTERS:
            raise Invalid(f"unknown filter {name!r}; use one of {', '.join(FILTERS)}")
        values = [v.strip() for v in values if v and v.strip()]
        if not values:
            continue
        if name == "department":
            ids = list(db.scalars(select(Department.id).where(Department.code.in_(values))))
            conds.append(CatalogEntry.provider_department_id.in_(ids) if ids else false())
        elif name == "class_code":
            bad = [v for v in values if not CLASS_CODE_PREFIX_RE.match(v)]
            if bad:
                raise Invalid(f"class_code {bad[0]!r} is not a 类-项-目-细目 code prefix such as 1-01")
            conds.append(or_(*(CatalogEntry.class_code.startswith(v) for v in values)))
        else:
            bad = sorted(set(values) - _ENUM_FILTERS[name])
            if bad:
                raise Invalid(f"{name} {bad[0]!r} is not one of {', '.join(sorted(_ENUM_FILTERS[name]))}")
            conds.append(getattr(CatalogEntry, name).in_(values))
    return conds


def _score(words: list[str], name: str, other: str) -> int:
    name, other = name.lower(), other.lower()
    return sum(NAME_WEIGHT if w in name else 1 if w in other else 0 for w in words)


def _order(rows: list[Any], words: list[str], sort: str) -> list[Any]:
    if sort == "name":
        return sorted(rows, key=lambda r: (r.name, r.code))
    if sort == "code":
        return sorted(rows, key=lambda r: r.code)
    if sort == "updated":
        return sorted(rows, key=lambda r: (r.updated_at, r.code), reverse=True)
    if sort == "published":
        return sorted(rows, key=lambda r: (r.published_on is not None, r.published_on, r.code), reverse=True)
    if not words:
        return sorted(rows, key=lambda r: r.code)
    scored = [(-_score(words, r.name, f"{r.abstract} {r.keywords}"), r.code, r) for r in rows]
    return [r for *_key, r in sorted(scored, key=lambda t: (t[0], t[1]))]


def _facet_counts(db: Session, rows: list[Any], wanted: Iterable[str]) -> dict[str, list[tuple[str, str, int]]]:
    depts = {d.id: d for d in db.scalars(select(Department))}
    db_names = {d.key: d.msgid for d in databases.DATABASES}
    maps = {"class_kind": labels.CLASS_KIND, "sharing_type": labels.SHARING_TYPE,
            "update_cycle": labels.UPDATE_CYCLE, "database": db_names}
    result: dict[str, list[tuple[str, str, int]]] = {}
    for facet in wanted:
        if facet not in FACETS:
            raise Invalid(f"unknown facet {facet!r}; use one of {', '.join(FACETS)}")
        if facet == "department":
            counts = Counter(depts[r.provider_department_id].code for r in rows)
            by_code = {d.code: d.name for d in depts.values()}
            result[facet] = [(v, by_code[v], n) for v, n in _most_common(counts)]
        else:
            counts = Counter(getattr(r, facet) for r in rows if getattr(r, facet))
            result[facet] = [(v, maps[facet].get(v, v), n) for v, n in _most_common(counts)]
    return result


def _most_common(counts: Counter[str]) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def search(db: Session, *, q: str = "", filters: dict[str, list[str]] | None = None, sort: str = "relevance",
           limit: int | None = 20, offset: int = 0, facets: Sequence[str] = FACETS) -> SearchResult:
    """Entries whose indexed words contain every word of ``q`` and that pass every filter.

    Filters: ``department`` (department codes), ``class_kind``, ``sharing_type``, ``database``,
    ``update_cycle`` (enum values), ``class_code`` (code prefixes). Values of one filter are
    alternatives (OR); different filters must all hold (AND). ``limit=None``: every match (export).
    """
    if sort not in SORTS:
        raise Invalid(f"sort {sort!r} is not one of {', '.join(SORTS)}")
    if (limit is not None and not 0 <= limit <= MAX_LIMIT) or offset < 0:
        raise Invalid(f"limit must be 0..{MAX_LIMIT} and offset at least 0")
    words = query_words(q)
    conds = _conditions(db, words, filters or {})
    cols = [CatalogEntry.id, CatalogEntry.code, CatalogEntry.name, CatalogEntry.provider_department_id,
            CatalogEntry.class_kind, CatalogEntry.sharing_type, CatalogEntry.database, CatalogEntry.update_cycle,
            CatalogEntry.updated_at, CatalogEntry.published_on]
    if words and sort == "relevance":  # the abstracts are only read to rank
        cols += [CatalogEntry.abstract, CatalogEntry.keywords]
    rows = list(db.execute(select(*cols).where(*conds)))
    ordered = _order(rows, words, sort)
    page_ids = [r.id for r in ordered[offset:None if limit is None else offset + limit]]
    loaded = {e.id: e for e in db.scalars(select(CatalogEntry).where(CatalogEntry.id.in_(page_ids)))}
    return SearchResult(total=len(rows), entries=[loaded[i] for i in page_ids],
                        facets=_facet_counts(db, rows, facets), words=words)
