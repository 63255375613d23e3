"""The shipped base and thematic databases: their schemas parse, point at each other, and load once."""

from __future__ import annotations

import re
from importlib import resources

import pytest
from sqlalchemy import func, select

from citybrain.core.actor import system_actor
from citybrain.data import databases
from citybrain.data.enums import RuleKind, SharingType
from citybrain.data.models import CatalogEntry, InfoItem, QualityRule
from citybrain.data.schemas import EntryIn

SHIPPED = databases.shipped_resources()
POOL_TEXT = resources.files("citybrain.data").joinpath("data/pool.toml").read_text(encoding="utf-8")


def test_the_four_base_and_at_least_five_thematic_databases_have_resources() -> None:
    used = {s.entry.database for s in SHIPPED}
    keys = {d.key: d for d in databases.DATABASES}
    assert {"population", "legal_entity", "e_license", "credit"} <= {k for k, d in keys.items() if d.kind == "base"}
    thematic = {k for k, d in keys.items() if d.kind == "thematic"}
    assert len(thematic) >= 5
    assert set(keys) <= used, "every database has at least one shipped resource"
    for s in SHIPPED:
        if s.entry.database is None:
            assert s.entry.class_kind == "department"
        else:
            assert s.entry.class_kind == keys[s.entry.database].kind


def test_every_shipped_resource_is_a_valid_catalog_entry_with_rules_on_its_own_items() -> None:
    assert len(SHIPPED) >= 11
    for s in SHIPPED:
        EntryIn.model_validate(s.entry.model_dump())
        items = {i.code for i in s.entry.items}
        assert s.rules, f"{s.entry.code} has no quality rules"
        for rule in s.rules:
            assert rule.item in items
            assert rule.kind in RuleKind
            assert rule.severity in ("error", "warning")


def test_codes_follow_the_documented_scheme() -> None:
    codes = [s.entry.code for s in SHIPPED]
    assert len(set(codes)) == len(codes)
    for s in SHIPPED:
        front, back = s.entry.code.split("/")
        assert front == s.entry.class_code.replace("-", "")
        assert re.fullmatch(rf"{re.escape(s.entry.provider_department_code)}-\d{{5}}", back)


def test_sharing_types_are_mixed_and_restricted_ones_state_their_conditions() -> None:
    kinds = {s.entry.sharing_type for s in SHIPPED}
    assert kinds == set(SharingType)
    for s in SHIPPED:
        if s.entry.sharing_type is not SharingType.UNCONDITIONAL:
            assert s.entry.sharing_conditions


def test_every_authoritative_source_and_reference_points_at_a_shipped_item() -> None:
    items = {s.entry.code: {i.code for i in s.entry.items} for s in SHIPPED}
    pointers = 0
    for s in SHIPPED:
        for item in s.entry.items:
            if item.source_entry_code:
                assert item.source_item_code in items[item.source_entry_code]
                pointers += 1
        for rule in s.rules:
            if rule.kind is RuleKind.REFERENCE:
                assert rule.params["item_code"] in items[rule.params["entry_code"]]
            if rule.kind is RuleKind.CROSS_SOURCE:
                assert rule.params["source_item_code"] in items[rule.params["source_entry_code"]]
                here, there = rule.params["key"]
                assert here in items[s.entry.code]
                assert there in items[rule.params["source_entry_code"]]
    assert pointers >= 8


def test_each_field_with_a_source_is_cross_checked_against_it() -> None:
    for s in SHIPPED:
        checked = {(r.item, r.params["source_entry_code"], r.params["source_item_code"])
                   for r in s.rules if r.kind is RuleKind.CROSS_SOURCE}
        for item in s.entry.items:
            if item.source_entry_code:
                assert (item.code, item.source_entry_code, item.source_item_code) in checked


def test_tax_and_social_security_copies_name_the_market_and_police_data_as_source() -> None:
    by_code = {s.entry.code: s.entry for s in SHIPPED}
    tax = {i.code: i for i in by_code["301001/tax-00001"].items}
    assert (tax["legal_representative"].source_entry_code, tax["legal_representative"].source_item_code) == \
        ("102001/market-00001", "legal_representative")
    hrss = {i.code: i for i in by_code["302001/hrss-00001"].items}
    assert hrss["name"].source_entry_code == "101001/police-00001"
    assert hrss["id_number"].personal == "id_number" and hrss["mobile"].personal == "mobile"


@pytest.mark.parametrize(("old", "new", "message"), [
    ('{item = "sex", kind = "in_set"', '{item = "sex", kind = "in_list"', "rule kind 'in_list' is not one of"),
    ('{item = "sex", kind = "in_set"', '{item = "gender", kind = "in_set"', "unknown item 'gender'"),
    ('{item = "name", kind = "not_null"}', '{item = "name", kind = "not_null", severity = "fatal"}',
     "severity 'fatal'"),
    ('{item = "name", kind = "not_null"}', '{item = "name", kind = "not_null", level = 1}', "unknown rule key"),
    ('source_item_code = "legal_representative"}', 'source_item_code = "legal_rep"}', "not a shipped item"),
    ('entry_code = "101001/police-00001", item_code = "id_number"}, severity = "warning", description = "法定',
     'entry_code = "101001/police-09999", item_code = "id_number"}, severity = "warning", description = "法定',
     "not a shipped item"),
    ('database = "credit"', 'database = "credits"', "unknown database 'credits'"),
    ('key = ["holder_code", "credit_code"]', 'key = ["holder_code"]', "must be \\[item here, item in the source\\]"),
    ('key = ["holder_code", "credit_code"]', 'key = ["holder_code", "code"]', "not a shipped item"),
])
def test_a_broken_pool_file_is_refused_naming_the_fault(old, new, message) -> None:
    assert old in POOL_TEXT
    with pytest.raises(ValueError, match=message):
        databases.parse_pool(POOL_TEXT.replace(old, new, 1))


def test_the_shipped_pool_file_parses_as_is() -> None:
    assert [s.entry.code for s in databases.parse_pool(POOL_TEXT)] == [s.entry.code for s in SHIPPED]


# --- in the database (the test demo loads the shipped catalog) ---------------------------------


def _rule_count(db, code: str) -> int:
    return db.scalar(select(func.count()).select_from(QualityRule).join(CatalogEntry)
                     .where(CatalogEntry.code == code)) or 0


def test_the_demo_database_holds_every_shipped_entry_with_its_items_and_rules(db) -> None:
    entries = databases.shipped_entries(db)
    assert set(entries) == {s.entry.code for s in SHIPPED}
    for s in SHIPPED:
        entry = entries[s.entry.code]
        assert [i.code for i in entry.items] == [i.code for i in s.entry.items]
        assert entry.provider_department_id
        assert _rule_count(db, s.entry.code) == len(s.rules)


def test_loading_twice_adds_nothing(db) -> None:
    before = (db.scalar(select(func.count()).select_from(CatalogEntry)),
              db.scalar(select(func.count()).select_from(InfoItem)),
              db.scalar(select(func.count()).select_from(QualityRule)))
    assert databases.load_shipped_catalog(db, actor=system_actor("test")) == []
    assert databases.load_shipped_catalog(db, actor=system_actor("test")) == []
    after = (db.scalar(select(func.count()).select_from(CatalogEntry)),
             db.scalar(select(func.count()).select_from(InfoItem)),
             db.scalar(select(func.count()).select_from(QualityRule)))
    assert after == before


def test_a_missing_shipped_entry_is_created_again_with_its_rules(db) -> None:
    code = "210001/civil-00001"
    entry = databases.shipped_entries(db)[code]
    db.query(QualityRule).filter(QualityRule.entry_id == entry.id).delete()
    entry.code, entry.slug = "210001/civil-99999", "210001-civil-99999"  # out of the way, like a renamed copy
    db.flush()
    created = databases.load_shipped_catalog(db, actor=system_actor("test"))
    assert [e.code for e in created] == [code]
    expected = next(s for s in SHIPPED if s.entry.code == code)
    rules = db.scalars(select(QualityRule).where(QualityRule.entry_id == created[0].id)).all()
    assert sorted((r.item_code, r.kind) for r in rules) == sorted((r.item, r.kind.value) for r in expected.rules)
    assert created[0].version == 0 and created[0].row_count == 0


def test_the_docs_list_every_database_and_resource() -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "data-databases.md").read_text(encoding="utf-8")
    for d in databases.DATABASES:
        assert f"| `{d.key}` | {d.kind} | {d.name} |" in text
    for s in SHIPPED:
        assert f"| `{s.entry.code}` | {s.entry.name} |" in text
