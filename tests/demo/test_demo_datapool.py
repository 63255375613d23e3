"""The demo fills every shipped resource with consistent synthetic rows and a few deliberate errors."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy import func, select

from citybrain.core.actor import system_actor
from citybrain.data import databases, storage
from citybrain.data.identifiers import IdentifierError, validate_credit_code, validate_id_number, validate_mobile
from citybrain.data.models import DataLoad, Resident
from citybrain.demo import datapool
from citybrain.demo.people import ZHOUCUN_TOWNSHIPS, generate_enterprises, generate_residents
from helpers import DEMO_SEED

TODAY = date(2026, 11, 1)  # the day tests/conftest.py loads the demo for
POLICE, MARKET, TAX, HRSS = "101001/police-00001", "102001/market-00001", "301001/tax-00001", "302001/hrss-00001"
LICENSES, CREDIT = "105001/approval-00001", "104001/drc-00001"


def rows(db, code: str) -> list[dict[str, Any]]:
    entry = databases.shipped_entries(db)[code]
    table = storage.table_for(entry)
    return [dict(r._mapping) for r in db.execute(select(table).order_by(table.c._id))]


def _valid_id(number: str) -> bool:
    try:
        validate_id_number(number, today=TODAY)
    except IdentifierError:
        return False
    return True


# --- in the test demo database -------------------------------------------------------------------


def test_every_shipped_resource_has_rows_a_version_and_a_load_record(db) -> None:
    entries = databases.shipped_entries(db)
    assert set(entries) == set(datapool.GENERATORS)
    for code, entry in entries.items():
        table = storage.table_for(entry)
        count = db.scalar(select(func.count()).select_from(table))
        assert count and entry.row_count == count, code
        assert entry.version == 1 and entry.loaded_at is not None and entry.synthetic
        assert db.scalar(select(func.count()).select_from(table).where(table.c._load != 1)) == 0
        load = db.scalar(select(DataLoad).where(DataLoad.entry_id == entry.id))
        assert load.status == "loaded" and load.rows_inserted == count


def test_population_is_the_platform_resident_table(db) -> None:
    people = {r["id_number"]: r for r in rows(db, POLICE)}
    residents = db.scalars(select(Resident)).all()
    assert set(people) == {r.id_number for r in residents}
    for r in residents[:50]:
        assert people[r.id_number]["name"] == r.name
        assert people[r.id_number]["sex"] == ("男" if r.sex == "M" else "女")
    assert all(_valid_id(n) and n.startswith("370306") for n in people)


def test_market_registration_is_valid_and_its_legal_representatives_are_residents(db) -> None:
    people = {r["id_number"]: r["name"] for r in rows(db, POLICE)}
    market = rows(db, MARKET)
    for r in market:
        assert validate_credit_code(r["credit_code"]).code[2:8] == "370306"
        assert people[r["legal_rep_id_number"]] == r["legal_representative"]


def test_copies_cover_the_same_enterprises_and_people(db) -> None:
    market = {r["credit_code"] for r in rows(db, MARKET)}
    assert {r["credit_code"] for r in rows(db, TAX)} == market
    assert {r["credit_code"] for r in rows(db, CREDIT)} == market
    assert market <= {r["holder_code"] for r in rows(db, LICENSES)}
    people = {r["id_number"] for r in rows(db, POLICE)}
    hrss = rows(db, HRSS)
    valid = [r for r in hrss if _valid_id(r["id_number"])]
    assert {r["id_number"] for r in valid} <= people
    assert {r["employer_credit_code"] for r in hrss} - {None} <= market


def test_the_deliberate_errors_are_there_for_the_quality_dashboard(db) -> None:
    hrss = rows(db, HRSS)
    assert any(not _valid_id(r["id_number"]) for r in hrss)
    assert any(r["mobile"] is None for r in hrss)
    registered = {r["credit_code"]: r for r in rows(db, MARKET)}
    tax = rows(db, TAX)
    assert any(r["legal_representative"] != registered[r["credit_code"]]["legal_representative"] for r in tax)
    assert any(r["taxpayer_name"] != registered[r["credit_code"]]["name"] for r in tax)
    expired = [r for r in rows(db, LICENSES) if r["valid_until"] and r["valid_until"] < TODAY]
    assert any(r["status"] == "有效" for r in expired)


def test_loading_the_demo_again_adds_nothing(db) -> None:
    entries = databases.shipped_entries(db)
    before = {code: e.row_count for code, e in entries.items()}
    assert datapool.load_datapool_demo(db, seed=DEMO_SEED, actor=system_actor("test"), residents=200,
                                       enterprises=50, today=TODAY) == {}
    assert {code: e.row_count for code, e in databases.shipped_entries(db).items()} == before


# --- the generators (no database) ----------------------------------------------------------------


@pytest.fixture(scope="module")
def district() -> datapool.Pool:
    codes = list(ZHOUCUN_TOWNSHIPS)
    people = generate_residents(11, 3000, township_codes=codes, today=TODAY)
    firms = generate_enterprises(11, 600, township_codes=codes, today=TODAY)
    pool = datapool.Pool(people=people, firms=firms, today=TODAY, seed=11, market={})
    pool.market = {r["credit_code"]: r for r in datapool.market_rows(pool)}
    return pool


def test_generation_is_deterministic_from_the_seed(district) -> None:
    again = datapool.Pool(people=district.people, firms=district.firms, today=TODAY, seed=11, market=district.market)
    other = datapool.Pool(people=district.people, firms=district.firms, today=TODAY, seed=12, market=district.market)
    for code, make in datapool.GENERATORS.items():
        assert make(district) == make(again), code
    assert datapool.hrss_rows(district) != datapool.hrss_rows(other)


def test_error_shares_are_small(district) -> None:
    hrss = datapool.hrss_rows(district)
    bad_ids = sum(not _valid_id(r["id_number"]) for r in hrss)
    assert 0.005 * len(hrss) <= bad_ids <= 0.015 * len(hrss)
    tax = datapool.tax_rows(district)
    differ = sum(r["legal_representative"] != district.market[r["credit_code"]]["legal_representative"] for r in tax)
    assert 0.01 * len(tax) <= differ <= 0.03 * len(tax)
    population = datapool.population_rows(district)
    assert all(_valid_id(r["id_number"]) for r in population)
    assert all(validate_mobile(r["mobile"]) for r in population)


def test_every_generated_row_fits_its_resource_items(district) -> None:
    shipped = {s.entry.code: {i.code for i in s.entry.items} for s in databases.shipped_resources()}
    for code, make in datapool.GENERATORS.items():
        made = make(district)
        assert made, code
        assert all(set(r) == shipped[code] for r in made), code


def test_an_empty_district_generates_no_rows_and_no_error() -> None:
    pool = datapool.Pool(people=[], firms=[], today=TODAY, seed=1, market={})
    assert {code: make(pool) for code, make in datapool.GENERATORS.items()} == \
        {code: [] for code in datapool.GENERATORS}
