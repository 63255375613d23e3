"""The shipped classification catalog is valid, complete enough, and bad rows are refused by name."""

from __future__ import annotations

import csv
import io
from importlib import resources

import pytest

from citybrain.events.catalog import (
    COLUMNS,
    STAGES,
    best_match,
    format_limit,
    load_catalog_rows,
    parse_catalog,
    parse_limit,
)
from citybrain.events.enums import TimeUnit, Urgency
from citybrain.events.models import EventCategory

ROWS = load_catalog_rows()
BY_NAME = {(row["kind"], row["name"]): row for row in ROWS}


def _event(name: str) -> dict:
    return BY_NAME[("event", name)]


def _shipped_department_codes() -> set[str]:
    text = resources.files("citybrain.org.data").joinpath("departments.csv").read_text("utf-8")
    return {row["code"] for row in csv.DictReader(text.splitlines())}


def test_every_shipped_row_parses_and_there_are_enough() -> None:
    assert len(ROWS) >= 50
    assert all(set(row["time_limits"]) == set(STAGES) for row in ROWS)


def test_codes_are_unique_and_follow_the_pattern() -> None:
    codes = [row["code"] for row in ROWS]
    assert len(codes) == len(set(codes))
    for row in ROWS:
        assert row["code"][0] == ("C" if row["kind"] == "component" else "E")
        assert row["code"].startswith(row["major_code"])


def test_every_department_exists_in_the_org_departments() -> None:
    known = _shipped_department_codes()
    unknown = {row["code"]: row["department_code"] for row in ROWS if row["department_code"] not in known}
    assert not unknown


def test_large_classes_of_gb_t_30428_are_covered() -> None:
    majors = {(row["kind"], row["major_name"]) for row in ROWS}
    for name in ("公用设施", "道路交通", "市容环境", "园林绿化", "房屋土地", "其他设施"):
        assert ("component", name) in majors
    for name in ("市容环境", "宣传广告", "施工管理", "突发事件", "街面秩序", "扩展事件"):
        assert ("event", name) in majors


@pytest.mark.parametrize(
    ("kind", "name"),
    [("component", n) for n in ("上水井盖", "停车场", "交通信号灯", "公共厕所", "行道树", "宣传栏")]
    + [
        ("event", n)
        for n in (
            "暴露垃圾",
            "积存垃圾渣土",
            "非法小广告",
            "施工扰民",
            "道路遗撒",
            "路面塌陷",
            "燃气管道破裂",
            "无照经营游商",
            "机动车乱停放",
            "路面积水",
            "违法搭建",
            "道路不洁",
            "绿地养护",
        )
    ],
)
def test_standard_examples_are_present(kind: str, name: str) -> None:
    assert (kind, name) in BY_NAME


@pytest.mark.parametrize(
    ("name", "limit"),
    [
        ("暴露垃圾", "4 working_hours"),
        ("道路不洁", "2 working_hours"),
        ("路面积水", "4 working_hours"),
        ("绿地养护", "5 working_days"),
        ("违法搭建", "15 working_days"),
    ],
)
def test_handling_limits_follow_the_published_examples(name: str, limit: str) -> None:
    assert _event(name)["time_limits"]["handle"] == parse_limit(limit)


def test_emergencies_are_urgent_and_counted_in_natural_hours() -> None:
    emergencies = [row for row in ROWS if row["kind"] == "event" and row["major_name"] == "突发事件"]
    assert emergencies
    for row in emergencies:
        assert row["urgency"] in (Urgency.URGENT, Urgency.CRITICAL)
        assert {limit["unit"] for limit in row["time_limits"].values()} == {TimeUnit.NATURAL_HOURS}


def test_street_level_problems_go_to_the_township_office() -> None:
    for name in ("暴露垃圾", "积存垃圾渣土", "非法小广告", "无照经营游商"):
        assert _event(name)["township_handles"] is True
    assert _event("燃气管道破裂")["township_handles"] is False


def test_every_row_has_keywords_for_matching() -> None:
    assert all(row["keywords"] for row in ROWS)


# --- parse_limit ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4 working_hours", {"value": 4, "unit": "working_hours"}),
        ("2 working_days", {"value": 2, "unit": "working_days"}),
        ("0.25 natural_hours", {"value": 0.25, "unit": "natural_hours"}),
        ("  1   working_hours ", {"value": 1, "unit": "working_hours"}),
    ],
)
def test_parse_limit(text: str, expected: dict) -> None:
    assert parse_limit(text) == expected
    assert parse_limit(format_limit(expected)) == expected


@pytest.mark.parametrize(
    "text",
    [
        "4 hours",
        "4",
        "working_hours",
        "x working_hours",
        "0 working_days",
        "-1 working_hours",
        "nan working_hours",
        "inf natural_hours",
        "4 working_hours extra",
    ],
)
def test_parse_limit_refuses_malformed_limits(text: str) -> None:
    with pytest.raises(ValueError):
        parse_limit(text)


# --- bad rows ------------------------------------------------------------------------------

GOOD = {
    "code": "E9901",
    "kind": "event",
    "major_code": "E99",
    "major_name": "测试",
    "name": "测试事件",
    "description": "",
    "department_code": "cityadmin",
    "township_handles": "true",
    "urgency": "normal",
    "accept": "1 working_hours",
    "dispatch": "1 working_hours",
    "handle": "4 working_hours",
    "verify": "2 working_hours",
    "close": "1 working_hours",
    "keywords": "测试",
    "public": "true",
}


def _csv(*rows: dict) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def test_a_good_row_parses() -> None:
    (row,) = parse_catalog(_csv(GOOD))
    assert row["time_limits"]["handle"] == {"value": 4, "unit": "working_hours"}
    assert row["township_handles"] is True


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"kind": "thing"}, "kind"),
        ({"code": "X9902"}, "code"),
        ({"code": "E992"}, "code"),
        ({"code": "C9902", "major_code": "C99"}, "kind is 'event'"),
        ({"major_code": "E98"}, "major_code"),
        ({"handle": "4 hours"}, "unknown unit"),
        ({"handle": "-1 working_hours"}, "positive"),
        ({"verify": "0 working_days"}, "positive"),
        ({"close": ""}, "close time limit is missing"),
        ({"township_handles": "yes"}, "township_handles"),
        ({"public": ""}, "public"),
        ({"urgency": "high"}, "urgency"),
        ({"name": ""}, "name"),
        ({"department_code": "区城管局"}, "department_code"),
        ({"code": "E9901"}, "appears twice"),
        ({"name": "测试事件"}, "appears twice"),
        ({"major_name": "别的名字"}, "large class E99"),
    ],
)
def test_a_bad_row_is_refused_naming_the_row(change: dict, problem: str) -> None:
    second = {**GOOD, "code": "E9902", "name": "另一个", **change}
    code = second["code"] or "no code"
    with pytest.raises(ValueError, match=problem) as caught:
        parse_catalog(_csv(GOOD, second))
    assert f"line 3 ({code})" in str(caught.value)


def test_a_missing_column_is_refused() -> None:
    text = _csv(GOOD).replace(",verify", ",verification", 1)
    with pytest.raises(ValueError, match="missing column"):
        parse_catalog(text)


def test_an_empty_catalog_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        parse_catalog(_csv())


# --- keyword matching ----------------------------------------------------------------------

CATEGORIES = [EventCategory(**row, active=True) for row in ROWS]


@pytest.mark.parametrize(
    ("text", "code_name"),
    [
        ("小区门口有人乱扔垃圾，好几天没人清理", "暴露垃圾"),
        ("路口的路面塌陷了一个大坑，很危险", "路面塌陷"),
        ("楼下闻到很重的煤气味，怀疑燃气泄漏", "燃气管道破裂"),
        ("周村古商城门口红绿灯不亮", "交通信号灯"),
        ("电线杆上贴满了办证小广告", "非法小广告"),
        ("工地夜间施工噪音太大睡不着", "施工扰民"),
    ],
)
def test_best_match_finds_the_class_from_free_text(text: str, code_name: str) -> None:
    match = best_match(CATEGORIES, text)
    assert match is not None and match.name == code_name


def test_best_match_returns_none_when_nothing_matches() -> None:
    assert best_match(CATEGORIES, "今天天气很好") is None
