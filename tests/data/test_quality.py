"""Quality runs against stored rows (SQLite and PostgreSQL): counts, cross-source, tasks, bad rules."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, insert, select, update

from citybrain.core.actor import Actor, system_actor
from citybrain.core.errors import Forbidden, Invalid
from citybrain.data import identifiers as ids
from citybrain.data import quality, storage
from citybrain.data.models import CorrectionTask, QualityRule, QualityRun
from data_factories import make_entry

ADMIN = system_actor("test")
GOOD = [ids.make_id_number("370306", date(1980 + n, 3, 4), n) for n in range(4)]
WRONG_CHECK = GOOD[0][:17] + ("0" if GOOD[0][17] != "0" else "1")
BAD_DATE = "37030619990230123" + ids.id_check_digit("37030619990230123")

MARKET_ITEMS = [{"code": "credit_code", "name": "统一社会信用代码", "data_type": "string"},
                {"code": "name", "name": "企业名称", "data_type": "string"},
                {"code": "legal_rep", "name": "法定代表人", "data_type": "string"}]


def load(db, entry, rows: list[dict]) -> None:
    table = storage.table_for(entry)
    blank = dict.fromkeys(i.code for i in entry.items)
    db.execute(insert(table), [{"_load": 1, **blank, **row} for row in rows])
    entry.row_count, entry.version = len(rows), 1
    db.flush()


def people(db):
    entry = make_entry(db)
    load(db, entry, [
        {"id_number": GOOD[0], "name": "张三", "mobile": "13912345678", "household_size": 3,
         "birth_date": date(1980, 3, 4)},
        {"id_number": WRONG_CHECK, "name": "李四", "mobile": "13912345679", "household_size": 2},
        {"id_number": BAD_DATE, "name": None, "mobile": "12345", "household_size": 99},
        {"id_number": "370306800304001", "name": "王五", "mobile": None, "household_size": 1},
    ])
    return entry


def test_a_run_counts_failures_per_rule_with_samples_and_a_score(db) -> None:
    entry = people(db)
    for item, kind, params, severity in [("id_number", "id_number", {}, "error"), ("name", "not_null", {}, "error"),
                                         ("mobile", "mobile", {}, "warning"),
                                         ("household_size", "range", {"min": 1, "max": 20}, "error")]:
        quality.add_rule(db, entry_id=entry.id, item_code=item, kind=kind, params=params, severity=severity,
                         actor=ADMIN)
    qrun = quality.run(db, entry_id=entry.id, actor=ADMIN)
    by_kind = {r["kind"]: r for r in qrun.results}
    assert (by_kind["id_number"]["checked"], by_kind["id_number"]["failed"]) == (4, 3)
    reasons = {s["_id"]: s["reason"] for s in by_kind["id_number"]["samples"]}
    assert sorted(reasons.values()) == ["birth date is not a real date",
                                        "legacy 15-digit ID number (convert it to 18 characters)",
                                        "wrong check character"]
    assert by_kind["mobile"]["failed"] == 1 and by_kind["mobile"]["checked"] == 3  # null mobiles are not checked
    assert by_kind["range"]["samples"][0]["value"] == "99"
    assert (qrun.rows, qrun.failed_rows, qrun.version) == (4, 3, 1)
    assert qrun.score == 25.0  # rows 2-4 fail error rules; row 3's mobile warning is already counted
    assert entry.quality_score == 25.0


def test_failures_open_one_task_and_a_clean_rerun_resolves_it(db) -> None:
    entry = people(db)
    quality.add_rule(db, entry_id=entry.id, item_code="id_number", kind="id_number", actor=ADMIN)
    first = quality.run(db, entry_id=entry.id, actor=ADMIN)
    second = quality.run(db, entry_id=entry.id, actor=ADMIN)
    open_tasks = quality.tasks(db, status="open", department_id=entry.provider_department_id)
    mine = [t for t in open_tasks if t.entry_id == entry.id]
    assert len(mine) == 1 and mine[0].run_id == second.id and mine[0].failed_rows == 3
    assert "id_number id_number: 3" in mine[0].summary
    table = storage.table_for(entry)
    db.execute(update(table).where(table.c.id_number != GOOD[0]).values(id_number=None))  # the fix
    fixed = quality.run(db, entry_id=entry.id, actor=ADMIN)
    db.refresh(mine[0])
    assert (mine[0].status, mine[0].resolved_run_id) == ("resolved", fixed.id)
    assert [r.score for r in quality.trend(db, entry_id=entry.id)] == [first.score, second.score, 100.0]
    scores = {d["department_id"]: d for d in quality.department_scores(db)}
    assert scores[entry.provider_department_id]["score"] is not None


def test_cross_source_lists_each_disagreement_with_both_values(db) -> None:
    org = ids.make_org_code("MA3C1234")
    codes = [ids.make_credit_code("9", "1", "370306", org), ids.make_credit_code("N", "2", "370306", org)]
    market = make_entry(db, code="1020100/market-00001", name="市场主体登记", department="market",
                        class_code="1-02-001", items=MARKET_ITEMS, key_fields=["credit_code"])
    load(db, market, [{"credit_code": codes[0], "name": "周村丝绸有限公司", "legal_rep": "张三"},
                      {"credit_code": codes[1], "name": "周村合作社", "legal_rep": "李四"}])
    tax_items = [dict(i) for i in MARKET_ITEMS]
    tax_items[2] |= {"source_entry_code": market.code, "source_item_code": "legal_rep"}  # 一数一源 declared
    tax = make_entry(db, code="3010100/tax-00001", name="纳税人登记", department="market", class_kind="department",
                     class_code="3-01-001", items=tax_items, key_fields=["credit_code"])
    load(db, tax, [{"credit_code": codes[0], "name": "周村丝绸公司", "legal_rep": "张三"},
                   {"credit_code": codes[1], "name": "周村合作社", "legal_rep": "李斯"},
                   {"credit_code": "91370306MA3C12345X", "name": "无名", "legal_rep": "某"}])
    quality.add_rule(db, entry_id=tax.id, item_code="name", kind="cross_source", actor=ADMIN, params={
        "source_entry_code": market.code, "source_item_code": "name", "key": ["credit_code", "credit_code"]})
    qrun = quality.run(db, entry_id=tax.id, actor=ADMIN)
    found = {d["item_code"]: d for d in qrun.disagreements}
    assert found["name"]["samples"] == [{"_id": found["name"]["samples"][0]["_id"], "key": codes[0], "field": "name",
                                         "value_here": "周村丝绸公司", "value_source": "周村丝绸有限公司"}]
    assert (found["name"]["compared"], found["name"]["unmatched"]) == (2, 1)
    assert found["legal_rep"]["samples"][0]["value_here"] == "李斯"
    assert found["legal_rep"]["samples"][0]["value_source"] == "李四"
    assert found["legal_rep"]["key"] == ["credit_code", "credit_code"]
    bureau = quality.disagreements(db, department_id=tax.provider_department_id)
    assert [d["entry_code"] for d in bureau] == [tax.code]


def test_a_reference_rule_reads_the_other_resource(db) -> None:
    towns = make_entry(db, code="1030100/civil-00001", name="乡镇街道", department="civil", class_code="1-03-001",
                       items=[{"code": "town_code", "name": "乡镇代码"}], key_fields=["town_code"])
    load(db, towns, [{"town_code": "370306001"}, {"town_code": "370306002"}])
    entry = people(db)
    table = storage.table_for(entry)
    db.execute(update(table).values(address="370306001"))
    db.execute(update(table).where(table.c.name == "张三").values(address="370306999"))
    quality.add_rule(db, entry_id=entry.id, item_code="address", kind="reference",
                     params={"entry_code": towns.code, "item_code": "town_code"}, actor=ADMIN)
    result = quality.run(db, entry_id=entry.id, actor=ADMIN).results[0]
    assert result["failed"] == 1 and result["samples"][0]["value"] == "370306999"


@pytest.mark.parametrize(("item", "kind", "params", "message"), [
    ("name", "regex", {"pattern": "([a-z"}, "does not compile"),
    ("household_size", "range", {"min": 5, "max": 1}, "greater than max"),
    ("household_size", "range", {}, "needs min, max or both"),
    ("name", "in_set", {"values": []}, "non-empty list"),
    ("name", "in_set", {"values": "男"}, "non-empty list"),
    ("name", "reference", {"entry_code": "nope/none", "item_code": "x"}, "no catalog entry"),
    ("name", "cross_source", {"source_entry_code": "1010100/police-00001", "source_item_code": "name",
                              "key": ["id_number", "id_number"]}, "another resource"),
    ("name", "not_null", {"extra": 1}, "does not take"),
    ("name", "regex", {}, "needs parameter"),
    ("nope", "not_null", {}, "no information item"),
    ("name", "bogus", {}, "rule kind must be"),
    ("birth_date", "date", {"min": "1999-13-01"}, "ISO dates"),
    ("id_number", "id_number", {"regions": ["0370"]}, "region code prefixes"),
])
def test_bad_rule_params_are_refused_and_nothing_is_stored(db, item, kind, params, message) -> None:
    entry = people(db)
    before = db.scalar(select(func.count()).select_from(QualityRule))
    with pytest.raises(Invalid, match=message):
        quality.add_rule(db, entry_id=entry.id, item_code=item, kind=kind, params=params, actor=ADMIN)
    assert db.scalar(select(func.count()).select_from(QualityRule)) == before


def test_other_departments_cannot_run_or_edit_rules(db) -> None:
    entry = people(db)
    outsider = Actor(user_id=None, username="x", role="staff", department_id=-1,
                     permissions=frozenset({"data:read", "data:publish"}))
    with pytest.raises(Forbidden):
        quality.add_rule(db, entry_id=entry.id, item_code="name", kind="not_null", actor=outsider)
    with pytest.raises(Forbidden):
        quality.run(db, entry_id=entry.id, actor=outsider)
    assert db.scalar(select(func.count()).select_from(QualityRun).where(QualityRun.entry_id == entry.id)) == 0
    assert db.scalar(select(func.count()).select_from(CorrectionTask).where(CorrectionTask.entry_id == entry.id)) == 0


def test_an_empty_resource_scores_100_and_opens_no_task(db) -> None:
    entry = make_entry(db)
    quality.add_rule(db, entry_id=entry.id, item_code="id_number", kind="not_null", actor=ADMIN)
    qrun = quality.run(db, entry_id=entry.id, actor=ADMIN)
    assert (qrun.rows, qrun.score) == (0, 100.0)
    assert not [t for t in quality.tasks(db) if t.entry_id == entry.id]
