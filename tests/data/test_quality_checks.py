"""The vectorised quality checks, each with good and bad values (pure polars, no database)."""

from __future__ import annotations

import random
from datetime import date

import polars as pl
import pytest

from citybrain.data import identifiers as ids
from citybrain.data import quality_checks as qc

TODAY = date(2026, 11, 1)
GOOD_ID = ids.make_id_number("370306", date(1990, 5, 17), 123)
GOOD_ORG = ids.make_org_code("MA3C1234")


def reasons(check: qc.Check, values: list, dtype: pl.DataType = pl.String) -> list[str | None]:
    out = qc.outcome(pl.DataFrame({"v": pl.Series(values, dtype=dtype)}), check)
    assert out["failed"].to_list() == [r is not None for r in out["reason"].to_list()]
    return out["reason"].to_list()


def with_check(number17: str) -> str:
    return number17 + ids.id_check_digit(number17)


@pytest.mark.parametrize(("value", "reason"), [
    (GOOD_ID, None),
    (None, None),
    (GOOD_ID[:17] + ("0" if GOOD_ID[17] != "0" else "1"), "wrong check character"),
    (with_check("37030619990230123"), "birth date is not a real date"),
    (with_check("37030620000229123"), None),  # 2000 is a leap year
    (with_check("37030619000229123"), "birth date is not a real date"),  # 1900 is not
    (with_check("37030620301001123"), "birth date is in the future"),
    (with_check("09030619900517123"), "unknown region code"),
    (with_check("99030619900517123"), "unknown region code"),
    ("370306900517123", "legacy 15-digit ID number (convert it to 18 characters)"),
    ("37030619900517123", "ID number must be 18 characters"),
    ("37030619900517123A", "ID number must be 17 digits followed by a digit or X"),
    ("３70306199005171234", "ID number must be 17 digits followed by a digit or X"),
])
def test_id_numbers(value, reason) -> None:
    assert reasons(qc.id_number("v", today=TODAY), [value]) == [reason]


def test_an_id_ending_in_x_must_use_an_upper_case_x() -> None:
    order = next(n for n in range(1000) if ids.make_id_number("370306", date(1985, 1, 2), n).endswith("X"))
    good = ids.make_id_number("370306", date(1985, 1, 2), order)
    assert reasons(qc.id_number("v", today=TODAY), [good, good[:17] + "x"]) == [
        None, "check character must be an upper-case X"]


def test_id_regions_can_be_narrowed_to_the_district() -> None:
    elsewhere = ids.make_id_number("110101", date(1990, 1, 1), 1)
    check = qc.id_number("v", today=TODAY, regions=["370306"])
    assert reasons(check, [GOOD_ID, elsewhere]) == [None, "unknown region code"]


def test_id_checksum_agrees_with_the_scalar_validator_on_random_numbers() -> None:
    rnd = random.Random(5)
    values = [with_check(f"{rnd.choice(['370306', '110101'])}{rnd.randint(1900, 2025)}{rnd.randint(1, 12):02d}"
                         f"{rnd.randint(1, 28):02d}{rnd.randint(0, 999):03d}") for _ in range(300)]
    values = [v if rnd.random() < 0.5 else v[:17] + rnd.choice("0123456789X") for v in values]
    flags = qc.outcome(pl.DataFrame({"v": values}), qc.id_number("v", today=TODAY))["failed"].to_list()
    for value, flagged in zip(values, flags, strict=True):
        try:
            ids.validate_id_number(value, today=TODAY)
            valid = True
        except ids.IdentifierError:
            valid = False
        assert flagged is not valid, value


def test_credit_codes() -> None:
    letter_first = ids.make_credit_code("N", "2", "370306", GOOD_ORG)
    digit_first = ids.make_credit_code("9", "1", "370306", GOOD_ORG)
    wrong = digit_first[:17] + ("0" if digit_first[17] != "0" else "1")
    out = reasons(qc.credit_code("v"), [letter_first, digit_first, wrong, None, digit_first[:17],
                                        "9137030" + "I" + digit_first[8:], digit_first.lower()])
    assert out[:4] == [None, None, "wrong check character", None]
    assert out[4] == "credit code must be 18 characters"
    assert out[5] == out[6] == "credit code has characters outside 0-9 and upper-case A-Y without I, O, S, V, Z"
    for bad in "IOZSV":
        assert reasons(qc.credit_code("v"), [bad + digit_first[1:]])[0].startswith("credit code has characters")


def test_a_credit_code_whose_check_is_right_but_embedded_org_code_is_wrong() -> None:
    body = "91370306" + GOOD_ORG[:8] + ("0" if GOOD_ORG[8] != "0" else "1")
    code = body + ids.credit_check_char(body)
    assert reasons(qc.credit_code("v"), [code]) == ["embedded organization code is invalid"]


def test_org_codes() -> None:
    wrong = GOOD_ORG[:8] + ("0" if GOOD_ORG[8] != "0" else "1")
    assert reasons(qc.org_code("v"), [GOOD_ORG, GOOD_ORG[:8] + "-" + GOOD_ORG[8], wrong, "ma3c1234x", "12345"]) == [
        None, None, "wrong check character", "organization code must be 8 of 0-9/A-Z and a digit or X",
        "organization code must be 9 characters"]


def test_mobile_numbers() -> None:
    out = reasons(qc.mobile("v"), ["13912345678", "+8613912345678", "008618612345678", "12912345678",
                                   "1391234567", "139-1234-5678"])
    assert [r is None for r in out] == [True, True, True, False, False, False]


def test_not_null_unique_in_set_regex() -> None:
    assert reasons(qc.not_null("v"), ["a", None, "  "]) == [None, "value is missing", "value is blank"]
    assert reasons(qc.unique("v"), ["a", "b", "a", None, None]) == [
        "value occurs more than once", None, "value occurs more than once", None, None]
    assert reasons(qc.in_set("v", ["男", "女"], pl.String()), ["男", "x", None]) == [
        None, "value is not one of the allowed values", None]
    assert reasons(qc.in_set("v", [1, 2], pl.Int64()), [1, 3], pl.Int64) == [
        None, "value is not one of the allowed values"]
    assert reasons(qc.regex("v", r"370306\d{3}"), ["370306001", "x370306001", "370306001x"]) == [
        None, "value does not match the pattern", "value does not match the pattern"]


def test_ranges_on_numbers_dates_and_text() -> None:
    assert reasons(qc.value_range("v", 1, 10, pl.Int64()), [0, 5, 11], pl.Int64) == [
        "value is below the minimum 1", None, "value is above the maximum 10"]
    assert reasons(qc.value_range("v", None, "2026-01-01", pl.Date()), [date(2026, 1, 2)], pl.Date) == [
        "value is above the maximum 2026-01-01"]
    assert reasons(qc.value_range("v", 0, None, pl.String()), ["3", "abc", "-1"]) == [
        None, "value is not a number", "value is below the minimum 0"]


def test_dates_must_be_real_and_written_in_the_format() -> None:
    check = qc.date_value("v", pl.String(), lo="1900-01-01", hi="2026-11-01")
    assert reasons(check, ["1999-02-28", "1999-02-30", "1999-2-3", "1899-12-31", None]) == [
        None, "value is not a real date written %Y-%m-%d", "value is not a real date written %Y-%m-%d",
        "date is before 1900-01-01", None]


def test_reference_values_must_exist_elsewhere() -> None:
    check = qc.reference("v", pl.Series(["370306001", "370306002", None]))
    assert reasons(check, ["370306001", "370306999", None]) == [None, "value does not exist in the referenced resource",
                                                                None]


def test_evaluate_counts_samples_cross_source_and_scores() -> None:
    frame = pl.DataFrame({"_id": [1, 2, 3, 4], "id_number": [GOOD_ID, "bad", None, GOOD_ID],
                          "name": ["张三", "李四", "王五", "赵六"], "mobile": ["139", None, None, "13912345678"]})
    source = pl.DataFrame({"key": [GOOD_ID, "bad"], "value": ["张三丰", "李四"]})
    specs = [qc.RuleSpec(item="id_number", kind="id_number", rule_id=1),
             qc.RuleSpec(item="mobile", kind="mobile", severity="warning", rule_id=2),
             qc.RuleSpec(item="name", kind="cross_source", rule_id=3, source=source,
                         params={"source_entry_code": "src", "source_item_code": "name", "key": ["id_number", "key"]})]
    result = qc.evaluate(frame, specs, today=TODAY)
    by_kind = {r["kind"]: r for r in result.results}
    assert (by_kind["id_number"]["checked"], by_kind["id_number"]["failed"]) == (3, 1)
    assert by_kind["id_number"]["samples"] == [{"_id": 2, "value": "bad", "reason": "ID number must be 18 characters"}]
    assert by_kind["mobile"]["failed"] == 1
    cross = result.disagreements[0]
    # Rows 1 and 4 share a key the source has with another name; row 3 has no key; row 2 agrees.
    assert (cross["compared"], cross["unmatched"], cross["disagreements"]) == (3, 1, 2)
    assert cross["samples"][0] == {"_id": 1, "key": GOOD_ID, "field": "name", "value_here": "张三",
                                   "value_source": "张三丰"}
    # Error rows: 1 (name), 2 (id), 4 (name) = 3; warning-only rows: none (row 1 fails both).
    assert (result.failed_rows, result.warning_rows) == (3, 0)
    assert result.score == 25.0


def test_warnings_count_half_and_an_empty_frame_scores_100() -> None:
    frame = pl.DataFrame({"_id": [1, 2, 3, 4], "m": ["13912345678", "1", "2", "13912345678"]})
    spec = qc.RuleSpec(item="m", kind="mobile", severity="warning")
    assert qc.evaluate(frame, [spec], today=TODAY).score == 75.0
    assert qc.evaluate(frame.clear(), [spec], today=TODAY).score == 100.0


def test_a_date_rule_without_bounds_on_a_date_column_passes_everydate() -> None:
    frame = pl.DataFrame({"_id": [1, 2], "d": [date(2024, 1, 5), None]})
    spec = qc.RuleSpec(item="d", kind="date", params={}, severity="error")
    result = qc.evaluate(frame, [spec], today=date(2026, 11, 27))
    assert (result.failed_rows, result.score) == (0, 100.0)


def _pairs(result: tuple[pl.DataFrame, pl.DataFrame]) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    matched, bad = result
    return sorted(matched.select("_i", "_j").rows()), sorted(bad.select("_i", "_j").rows())


@pytest.mark.parametrize("key_dtype", [pl.String, pl.Int64])
def test_cross_source_through_hashes_matches_the_exact_join(key_dtype) -> None:
    rnd = random.Random(11)
    keys = [rnd.choice([None, *range(40)]) for _ in range(400)]
    frame = pl.DataFrame({"_id": range(1, 401), "k": pl.Series(keys).cast(key_dtype),
                          "v": [rnd.choice([None, "a", "b", "c"]) for _ in keys]})
    # The source repeats keys (its first row counts), lacks some keys and has null keys and values.
    src_keys = [rnd.choice([None, *range(30)]) for _ in range(120)]
    source = pl.DataFrame({"key": pl.Series(src_keys).cast(key_dtype).cast(pl.String),
                           "value": [rnd.choice([None, "a", "b"]) for _ in src_keys]})
    fast = _pairs(qc._cross_source_pairs(frame, "k", "v", source))
    exact = _pairs(qc._cross_source_exact(frame, "k", "v", source))
    assert fast == exact
    assert 0 < len(exact[1]) < len(exact[0]) < frame.height


def test_cross_source_with_an_empty_source_or_frame() -> None:
    frame = pl.DataFrame({"_id": [1, 2], "k": ["a", None], "v": ["x", "y"]})
    empty = pl.DataFrame({"key": [], "value": []}, schema={"key": pl.String, "value": pl.String})
    spec = qc.RuleSpec(item="v", kind="cross_source", source=empty,
                       params={"source_entry_code": "s", "source_item_code": "v", "key": ["k", "key"]})
    mask, summary = qc.cross_source(frame, spec)
    assert mask.to_list() == [False, False]
    assert (summary["compared"], summary["unmatched"], summary["disagreements"]) == (0, 2, 0)
    spec.source = pl.DataFrame({"key": ["a"], "value": ["z"]})
    mask, summary = qc.cross_source(frame.clear(), spec)
    assert (mask.len(), summary["compared"], summary["disagreements"]) == (0, 0, 0)


def test_unique_confirms_hash_suspects_on_the_values() -> None:
    rnd = random.Random(3)
    values = [rnd.choice([None, *(f"v{n}" for n in range(500))]) for _ in range(800)]
    frame = pl.DataFrame({"_id": range(1, 801), "v": values})
    result = qc.evaluate(frame, [qc.RuleSpec(item="v", kind="unique")], today=TODAY)
    expected = frame.filter(pl.col("v").is_not_null() & pl.col("v").is_duplicated())
    assert result.results[0]["failed"] == result.failed_rows == expected.height > 0
    assert [s["_id"] for s in result.results[0]["samples"]] == expected["_id"].head(10).to_list()
    assert qc.outcome(frame, qc.unique("v"))["failed"].sum() == expected.height
