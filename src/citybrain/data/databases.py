"""The district's base and thematic databases (基础库、主题库): shipped schemas and their loader.

The resources of every database, with their information items and quality rules, are data
(``data/pool.toml``). Loading them creates catalog entries through the catalog service, like a
department describing its resources would, and stores each entry's quality rules.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from citybrain.core import clock
from citybrain.core.actor import Actor

from . import catalog
from .enums import RuleKind
from .models import CatalogEntry, QualityRule
from .schemas import EntryIn

SEVERITIES = ("error", "warning")


def N_(msgid: str) -> str:  # noqa: N802 - marks an English msgid; translated where shown
    return msgid


@dataclass(frozen=True)
class Database:
    """A base or thematic database: a named group of catalog entries (``CatalogEntry.database``)."""

    key: str
    kind: str  # CatalogClass value: base | thematic
    name: str  # Chinese name shown in the pages
    msgid: str  # English name, the gettext msgid
    description: str


DATABASES: tuple[Database, ...] = (
    Database("population", "base", "人口基础信息库", N_("Population"),
             "Registered residents: identity, birth date, contact, household (authoritative: police)."),
    Database("legal_entity", "base", "法人单位基础信息库", N_("Legal entities"),
             "Market entities: name, legal representative, industry, status (authoritative: market regulation)."),
    Database("e_license", "base", "电子证照基础信息库", N_("E-certificates"),
             "Electronic licences and certificates issued in the district."),
    Database("credit", "base", "社会信用基础信息库", N_("Credit"),
             "Public credit ratings and red/black-list flags of market entities."),
    Database("economy", "thematic", "经济运行监测主题库", N_("Economic monitoring"),
             "Monthly output, revenue and employment of enterprises above the designated size."),
    Database("gov_service", "thematic", "政务服务主题库", N_("Government services"),
             "Government service cases: items, applicants, processing times, satisfaction."),
    Database("social_governance", "thematic", "社会治理主题库", N_("Social governance"),
             "Community grids, grid workers and social assistance."),
    Database("city_safety", "thematic", "城市安全主题库", N_("City safety"),
             "Enterprises with major hazard sources and their inspections."),
    Database("eco_environment", "thematic", "生态环境主题库", N_("Eco-environment"),
             "Key pollutant-discharging units and their discharge permits."),
)
DATABASE_KEYS = frozenset(d.key for d in DATABASES)


@dataclass(frozen=True)
class RuleIn:
    item: str
    kind: RuleKind
    params: dict[str, Any] = field(default_factory=dict)
    severity: str = "error"
    description: str = ""


@dataclass(frozen=True)
class ShippedResource:
    entry: EntryIn
    rules: tuple[RuleIn, ...]


def _rule(code: str, raw: dict[str, Any]) -> RuleIn:
    unknown = set(raw) - {"item", "kind", "params", "severity", "description"}
    if unknown:
        raise ValueError(f"{code}: unknown rule key(s) {', '.join(sorted(unknown))}")
    try:
        kind = RuleKind(raw["kind"])
    except (KeyError, ValueError):
        raise ValueError(f"{code}: rule kind {raw.get('kind')!r} is not one of "
                         f"{', '.join(k.value for k in RuleKind)}") from None
    severity = raw.get("severity", "error")
    if severity not in SEVERITIES:
        raise ValueError(f"{code}: rule severity {severity!r} must be error or warning")
    return RuleIn(item=raw["item"], kind=kind, params=dict(raw.get("params", {})), severity=severity,
                  description=raw.get("description", ""))


def parse_pool(text: str) -> list[ShippedResource]:
    """Parse and check a pool file; raises ``ValueError`` naming the resource at fault."""
    shipped = []
    for raw in tomllib.loads(text).get("resource", []):
        raw = dict(raw)
        rules_raw = raw.pop("rules", [])
        entry = EntryIn.model_validate(raw)
        rules = tuple(_rule(entry.code, r) for r in rules_raw)
        items = {i.code for i in entry.items}
        for rule in rules:
            if rule.item not in items:
                raise ValueError(f"{entry.code}: rule {rule.kind.value} names unknown item {rule.item!r}")
        if entry.database is not None and entry.database not in DATABASE_KEYS:
            raise ValueError(f"{entry.code}: unknown database {entry.database!r}")
        shipped.append(ShippedResource(entry=entry, rules=rules))
    _check_sources(shipped)
    return shipped


def _check_sources(shipped: list[ShippedResource]) -> None:
    """Every authoritative source and every referenced resource must be a shipped entry and item."""
    items = {s.entry.code: {i.code for i in s.entry.items} for s in shipped}

    def check(code: str, target: str | None, item: str | None, what: str) -> None:
        if target not in items or item not in items[target]:
            raise ValueError(f"{code}: {what} points at {target}#{item}, which is not a shipped item")

    for s in shipped:
        for i in s.entry.items:
            if i.source_entry_code:
                check(s.entry.code, i.source_entry_code, i.source_item_code, f"item {i.code}'s source")
        for r in s.rules:
            if r.kind is RuleKind.REFERENCE:
                check(s.entry.code, r.params.get("entry_code"), r.params.get("item_code"), "a reference rule")
            elif r.kind is RuleKind.CROSS_SOURCE:
                check(s.entry.code, r.params.get("source_entry_code"), r.params.get("source_item_code"),
                      "a cross-source rule")
                key = r.params.get("key")
                if not isinstance(key, list) or len(key) != 2:
                    raise ValueError(f"{s.entry.code}: a cross-source key must be [item here, item in the source]")
                check(s.entry.code, s.entry.code, key[0], "a cross-source key")
                check(s.entry.code, r.params["source_entry_code"], key[1], "a cross-source key")


@cache
def shipped_resources() -> tuple[ShippedResource, ...]:
    text = resources.files("citybrain.data").joinpath("data/pool.toml").read_text(encoding="utf-8")
    return tuple(parse_pool(text))


def load_shipped_catalog(db: Session, *, actor: Actor) -> list[CatalogEntry]:
    """Create every shipped entry that does not exist yet, with its quality rules; returns the new ones."""
    existing = set(db.scalars(select(CatalogEntry.code)))
    created = []
    for resource in shipped_resources():
        if resource.entry.code in existing:
            continue
        entry = catalog.create_entry(db, data=resource.entry, actor=actor)
        now = clock.now()
        db.add_all(QualityRule(entry_id=entry.id, item_code=r.item, kind=r.kind.value, params=r.params,
                               severity=r.severity, description=r.description, created_at=now)
                   for r in resource.rules)
        created.append(entry)
    db.flush()
    return created


def shipped_entries(db: Session) -> dict[str, CatalogEntry]:
    """The shipped entries present in the database, by code."""
    codes = [r.entry.code for r in shipped_resources()]
    return {e.code: e for e in db.scalars(select(CatalogEntry).where(CatalogEntry.code.in_(codes)))}
