from collections import defaultdict
from dataclasses import FrozenInstanceError
from datetime import date

import pytest

from citybrain.data.identifiers import (
    validate_credit_code,
    validate_id_number,
    validate_mobile,
    validate_org_code,
)
from citybrain.demo.people import (
    ENTERPRISE_STATUSES,
    INDUSTRY_SECTIONS,
    ZHOUCUN_TOWNSHIPS,
    generate_enterprises,
    generate_residents,
)

TODAY = date(2025, 6, 1)
CODES = list(ZHOUCUN_TOWNSHIPS)


def _age(birth: date, today: date = TODAY) -> int:
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


def _is_cjk(text: str) -> bool:
    return all("\u4e00" <= ch <= "\u9fff" for ch in text)


@pytest.fixture(scope="module")
def residents():
    return generate_residents(42, 3000, township_codes=CODES, today=TODAY)


@pytest.fixture(scope="module")
def enterprises():
    return generate_enterprises(42, 1500, township_codes=CODES, today=TODAY)


def test_township_table_matches_division_codes():
    expected = [f"370306{n:03d}" for n in (1, 2, 3, 4, 5, 100, 101, 102, 103, 104)]
    assert expected == CODES
    for code, name in ZHOUCUN_TOWNSHIPS.items():
        assert name.endswith("街道" if code < "370306100" else "镇")


# ---- residents -----------------------------------------------------------------------------


def test_residents_are_deterministic(residents):
    again = generate_residents(42, 3000, township_codes=CODES, today=TODAY)
    assert again == residents


def test_different_seed_gives_different_residents(residents):
    other = generate_residents(43, 3000, township_codes=CODES, today=TODAY)
    assert other != residents
    assert {r.id_number for r in other} != {r.id_number for r in residents}


def test_resident_count_is_exact():
    assert generate_residents(1, 0, township_codes=CODES, today=TODAY) == []
    for count in (1, 2, 7, 101):
        assert len(generate_residents(1, count, township_codes=CODES, today=TODAY)) == count


def test_resident_ids_are_valid_and_agree_with_fields(residents):
    for r in residents:
        info = validate_id_number(r.id_number, today=TODAY)
        assert info.region == "370306"
        assert info.birth_date == r.birth_date
        assert info.sex == r.sex
        order = int(r.id_number[14:17])
        assert order % 2 == (1 if r.sex == "M" else 0)
        assert order != 0


def test_resident_identifiers_are_unique(residents):
    assert len({r.id_number for r in residents}) == len(residents)
    assert len({r.mobile for r in residents}) == len(residents)


def test_resident_mobiles_are_valid(residents):
    for r in residents:
        assert validate_mobile(r.mobile) == r.mobile
        assert "13" <= r.mobile[:2] <= "19"


def test_resident_ages_follow_a_plausible_pyramid(residents):
    ages = [_age(r.birth_date) for r in residents]
    assert min(ages) >= 0
    assert max(ages) <= 95
    assert all(r.birth_date <= TODAY for r in residents)
    minors = sum(a < 18 for a in ages) / len(ages)
    elderly = sum(a >= 80 for a in ages) / len(ages)
    working = sum(18 <= a < 60 for a in ages) / len(ages)
    assert 0.08 < minors < 0.3
    assert elderly < 0.06
    assert working > 0.5


def test_both_sexes_are_represented(residents):
    males = sum(r.sex == "M" for r in residents)
    assert 0.4 < males / len(residents) < 0.6


def test_resident_names_look_chinese(residents):
    for r in residents:
        assert 2 <= len(r.name) <= 3
        assert _is_cjk(r.name)


def test_residents_stay_inside_the_given_townships(residents):
    assert {r.township_code for r in residents} == set(CODES)
    for r in residents:
        assert r.address.startswith(ZHOUCUN_TOWNSHIPS[r.township_code])
        assert "号" in r.address


def test_restricting_townships():
    only = ["370306102"]
    people = generate_residents(5, 200, township_codes=only, today=TODAY)
    assert {p.township_code for p in people} == set(only)
    assert all(p.address.startswith("王村镇") for p in people)


def test_households_share_place_and_have_an_adult_head(residents):
    households = defaultdict(list)
    for r in residents:
        households[r.household_id].append(r)
    assert 1 < len(households) < len(residents)
    for hid, members in households.items():
        assert hid.startswith("H" + members[0].township_code)
        assert len({m.township_code for m in members}) == 1
        assert len({m.address for m in members}) == 1
        assert _age(members[0].birth_date) >= 18


def test_residents_are_frozen(residents):
    with pytest.raises(FrozenInstanceError):
        residents[0].name = "x"  # type: ignore[misc]


def test_leap_day_today_is_handled():
    people = generate_residents(3, 500, township_codes=CODES, today=date(2024, 2, 29))
    for p in people:
        validate_id_number(p.id_number, today=date(2024, 2, 29))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"count": -1, "township_codes": CODES}, "negative"),
        ({"count": 1, "township_codes": []}, "empty"),
        ({"count": 1, "township_codes": ["37030600"]}, "9 digits"),
        ({"count": 1, "township_codes": ["37030600a"]}, "9 digits"),
    ],
)
def test_bad_arguments_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        generate_residents(1, today=TODAY, **kwargs)
    with pytest.raises(ValueError, match=message):
        generate_enterprises(1, today=TODAY, **kwargs)


# ---- enterprises ---------------------------------------------------------------------------


def test_enterprises_are_deterministic(enterprises):
    assert generate_enterprises(42, 1500, township_codes=CODES, today=TODAY) == enterprises


def test_different_seed_gives_different_enterprises(enterprises):
    other = generate_enterprises(43, 1500, township_codes=CODES, today=TODAY)
    assert {e.credit_code for e in other} != {e.credit_code for e in enterprises}


def test_enterprise_count_is_exact():
    assert generate_enterprises(1, 0, township_codes=CODES, today=TODAY) == []
    assert len(generate_enterprises(1, 13, township_codes=CODES, today=TODAY)) == 13


def test_credit_codes_are_valid(enterprises):
    for e in enterprises:
        info = validate_credit_code(e.credit_code)
        assert info.region == "370306"
        assert info.authority + info.entity_type in {"91", "92", "93", "N2"}
        assert validate_org_code(info.org_code) == info.org_code


def test_post_reform_registrations_use_ma_org_codes(enterprises):
    for e in enterprises:
        org = e.credit_code[8:17]
        if e.registered_on >= date(2015, 10, 1):
            assert org.startswith("MA")
        else:
            assert org[:8].isdigit()


def test_all_entity_kinds_appear(enterprises):
    kinds = {e.credit_code[:2] for e in enterprises}
    assert kinds == {"91", "92", "93", "N2"}


def test_enterprise_identifiers_and_names_are_unique(enterprises):
    assert len({e.credit_code for e in enterprises}) == len(enterprises)
    assert len({e.name for e in enterprises}) == len(enterprises)


def test_enterprise_fields_are_plausible(enterprises):
    for e in enterprises:
        assert e.industry in INDUSTRY_SECTIONS
        assert e.industry_name == INDUSTRY_SECTIONS[e.industry]
        assert date(1992, 1, 1) <= e.registered_on <= TODAY
        assert e.registered_capital_wan > 0
        assert e.status in ENTERPRISE_STATUSES
        assert e.township_code in CODES
        assert e.address.startswith(ZHOUCUN_TOWNSHIPS[e.township_code])
        assert _is_cjk(e.name)
        assert 2 <= len(e.legal_representative) <= 3
        assert _is_cjk(e.legal_representative)


def test_company_names_match_their_kind(enterprises):
    for e in enterprises:
        kind = e.credit_code[:2]
        if kind == "91":
            assert e.name.endswith("公司")
        elif kind == "93":
            assert e.name.endswith("专业合作社")
            assert e.industry == "A"
        elif kind == "N2":
            assert e.name.endswith("股份经济合作社")


def test_industry_mix_is_led_by_trade_and_manufacturing(enterprises):
    counts = defaultdict(int)
    for e in enterprises:
        counts[e.industry] += 1
    top_two = sorted(counts, key=counts.__getitem__, reverse=True)[:2]
    assert "F" in top_two
